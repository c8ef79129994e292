"""Per-layer costs against hand-computed FINN formulas (arithmetic in the comments)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.datatypes import datatype
from splitter.boards import load_board
from splitter.cost import (
    COSTED_OPS,
    Folding,
    IllegalFoldingError,
    UnsupportedLayerError,
    layer_cost,
)
from splitter.graph import DATAFLOW_OP_TYPES, Layer, TensorSpec

ZED = load_board("zedboard")
ZCU = load_board("zcu104")


def make(op: str, attrs: dict, in_shape, in_dt: str, out_shape, out_dt: str, params=None):
    """A one-layer graph: the layer and its tensors."""
    tensors = {"x": TensorSpec("x", tuple(in_shape), datatype(in_dt)),
               "y": TensorSpec("y", tuple(out_shape), datatype(out_dt))}
    return Layer(op, f"{op}_0", "x", "y", attrs, params or {}), tensors


def mvau(no_act: int = 0, out_dt: str = "UINT4", weights=None):
    attrs = {"MW": 64, "MH": 32, "inputDataType": "UINT4", "weightDataType": "INT4", "outputDataType": out_dt,
             "accDataType": "INT12", "noActivation": no_act, "ActVal": 0}
    params = {} if weights is None else {"weights": weights}
    return make("MVAU", attrs, (1, 4, 4, 64), "UINT4", (1, 4, 4, 32), out_dt, params)


def test_every_dataflow_op_has_a_cost_function() -> None:
    assert set(DATAFLOW_OP_TYPES) == set(COSTED_OPS)


def test_mvau_hls_block() -> None:
    layer, t = mvau()
    c = layer_cost(layer, Folding(pe=4, simd=8, ram_style="block", res_type="lut"), ZED, t)
    assert c.impl == "MVAU_hls"
    assert c.cycles == 1024  # (MH/PE) (MW/SIMD) N = 8 * 8 * 16
    # omega = 64*32/(4*8) = 64 words of 4*8*4 = 128 bits: width > 18, depth <= 512 -> ceil(64/512) ceil(128/36) = 4
    assert c.resources.bram18 == 4
    # acc = min(12, ceil(alpha + log2(1 + 2^-alpha) + 1)), alpha = log2(64) + 4 + 4 - 1 = 13 -> min(12, 15) = 12
    # per PE: mult 8*(2*ceil(8/6)-1)*8 = 192, adder 8*(2*8-1) = 120, acc 12,
    #         thresholds 15*12*ceil((32/4)/64) = 180, comparators 15*12 = 180   -> 684
    # FINN (ram_style_thresholds auto): int(300 + 1.1 * 4 * (684 - 360)) = 1725
    # correction "thresholds": int(300 + 1.1 * 4 * 684) - 1725 = 3309 - 1725; LUTRAM = 4 * 180 = 720
    assert c.finn.lut == 1725 and c.correction("thresholds").lut == 3309 - 1725
    assert c.resources.lut == 3309
    assert c.resources.lutram == pytest.approx(720)
    assert c.resources.dsp == 0 and c.resources.ff == pytest.approx(3309)  # FF = 1.0 x LUT
    assert (c.in_width, c.out_width) == (32, 16)  # SIMD*A = 8*4, PE*B = 4*4


def test_mvau_distributed_weights_and_dsp_multipliers() -> None:
    layer, t = mvau()
    dist = layer_cost(layer, Folding(pe=4, simd=8, ram_style="distributed", res_type="lut"), ZED, t)
    # weights in LUTRAM: 128 bits * ceil(64/64) = 128 LUTs, no BRAM
    assert dist.resources.bram18 == 0
    assert dist.resources.lut == 3309 + 128
    assert dist.resources.lutram == pytest.approx(720 + 128)
    dsp = layer_cost(layer, Folding(pe=4, simd=8, ram_style="block", res_type="dsp"), ZED, t)
    # no multiplier LUTs: int(300 + 1.1*4*(684-192)) = 2464; DSP = PE*SIMD*ceil((4+4)/48) = 32
    assert dsp.resources.lut == 2464
    assert dsp.resources.dsp == 32


def test_mvau_ultra_needs_uram() -> None:
    layer, t = mvau()
    with pytest.raises(IllegalFoldingError, match="no URAM"):
        layer_cost(layer, Folding(pe=4, simd=8, ram_style="ultra"), ZED, t)
    c = layer_cost(layer, Folding(pe=4, simd=8, ram_style="ultra", res_type="lut"), ZCU, t)
    assert c.resources.uram == 2 and c.resources.bram18 == 0  # ceil(128/72) * ceil(64/4096)


def test_mvau_rtl_rules_on_7_series() -> None:
    narrow = np.full((64, 32), -7, dtype=np.int8)
    full = narrow.copy()
    full[0, 0] = -8
    layer, t = mvau(no_act=1, out_dt="INT12", weights=narrow)
    c = layer_cost(layer, Folding(pe=4, simd=8, ram_style="block", res_type="dsp"), ZED, t)
    assert c.impl == "MVAU_rtl"
    assert c.resources.dsp == 8  # DSP48E1: ceil(PE/4) * SIMD = 1 * 8
    assert c.resources.lut == pytest.approx(300 + 4 * 12)  # correction: base + PE x accumulator bits
    assert c.out_width == 48  # 4 x INT12 accumulators
    with pytest.raises(IllegalFoldingError, match="resType must be dsp"):
        layer_cost(layer, Folding(pe=4, simd=8, res_type="lut"), ZED, t)
    # non-narrow weights (a -8) keep the HLS MVAU on DSP48E1 but not on DSP48E2
    wide, t = mvau(no_act=1, out_dt="INT12", weights=full)
    assert layer_cost(wide, Folding(pe=4, simd=8, res_type="dsp"), ZED, t).impl == "MVAU_hls"
    assert layer_cost(wide, Folding(pe=4, simd=8, res_type="dsp"), ZCU, t).impl == "MVAU_rtl"
    # with thresholds embedded it is always HLS
    act, t = mvau(no_act=0, weights=narrow)
    assert layer_cost(act, Folding(pe=4, simd=8), ZED, t).impl == "MVAU_hls"


def test_mvau_illegal_folding() -> None:
    layer, t = mvau()
    with pytest.raises(IllegalFoldingError, match="PE must divide MH=32"):
        layer_cost(layer, Folding(pe=3), ZED, t)


def vvau():
    attrs = {"Channels": 16, "Kernel": (3, 3), "Dim": (8, 8), "inputDataType": "UINT4", "weightDataType": "INT4",
             "outputDataType": "UINT4", "accDataType": "INT10", "noActivation": 0, "ActVal": 0}
    return make("VVAU", attrs, (1, 8, 8, 144), "UINT4", (1, 8, 8, 16), "UINT4")


def test_vvau_hls() -> None:
    layer, t = vvau()
    c = layer_cost(layer, Folding(pe=4, simd=1, ram_style="block", res_type="lut"), ZED, t)
    assert c.impl == "VVAU_hls"
    assert c.cycles == 2304  # C*k*k/(PE*SIMD) * H*W = 144/4 * 64
    # omega = 9*16/4 = 36 words of 4*1*4 = 16 bits: width <= 18 -> ceil(36/1024) * ceil(16/16) = 1
    assert c.resources.bram18 == 1
    # acc: alpha = log2(9) + 4 + 4 - 1 = 10.17 -> bound 12, min(10, 12) = 10
    # per PE: mult 1*3*8 = 24, adder 8*(2-1) = 8, acc 10, thr 15*10*(16/4)/64 = 9.375, comp 15*10 = 150 -> 201.375
    # LUT = int(300 + 1.1 * 4 * 201.375) = int(1186.05); LUTRAM = 4 * 9.375 = 37.5
    assert c.resources.lut == c.finn.lut == 1186
    assert c.resources.lutram == pytest.approx(37.5)
    assert (c.in_width, c.out_width) == (16, 16)
    auto = layer_cost(layer, Folding(pe=4, simd=1, ram_style="auto", res_type="lut"), ZED, t)
    # auto with omega <= 128: FINN counts 0 BRAM; correction puts it in LUTRAM: 16 * ceil(36/64) = 16
    assert auto.resources.bram18 == 0 and auto.resources.lut == 1186 + 16
    assert auto.correction("small_weights").lut == 16
    dsp = layer_cost(layer, Folding(pe=16, simd=9, ram_style="distributed", res_type="dsp"), ZED, t)
    assert dsp.cycles == 64  # fully parallel: 144/144 * 64
    assert dsp.resources.dsp == 16 * 9 and dsp.finn.dsp == 16  # FINN's estimate omits the SIMD factor
    with pytest.raises(IllegalFoldingError, match="SIMD > 1 needs PE = Channels"):
        layer_cost(layer, Folding(pe=4, simd=3), ZED, t)


def swg(depthwise: int = 1, stride: int = 1, ifm: int = 10, channels: int = 16):
    ofm = (ifm - 3) // stride + 1
    attrs = {"ConvKernelDim": (3, 3), "IFMChannels": channels, "IFMDim": (ifm, ifm), "OFMDim": (ofm, ofm),
             "Stride": (stride, stride), "Dilation": (1, 1), "depthwise": depthwise}
    return make("ConvolutionInputGenerator", attrs, (1, ifm, ifm, channels), "UINT4",
                (1, ofm, ofm, 9 * channels), "UINT4")


def test_swg_rtl_default_style() -> None:
    layer, t = swg()
    c = layer_cost(layer, Folding(simd=4, ram_style="distributed"), ZED, t)
    assert c.impl == "ConvolutionInputGenerator_rtl"
    # CF = 16/4 = 4; buffer = ((3-1)*10 + (3-1) + 1) * 4 = 92
    # cycles = 92 + OH * max(OW*k*k*CF, s*IW*CF) = 92 + 8 * max(288, 40) = 2396
    assert c.cycles == 2396
    assert c.resources.lut == 300 + 16 * 3  # 300 + width * ceil(92/38)
    assert c.resources.lutram == 48 and c.out_width == 16
    block = layer_cost(layer, Folding(simd=4, ram_style="block"), ZED, t)
    assert block.resources.bram18 == 1 and block.resources.lut == 300  # depth 92 -> 36-bit wide, 16 bits: 1
    strided, t = swg(depthwise=0, stride=2, ifm=9, channels=8)
    # CF = 1; buffer 2*9 + 2 + 1 = 21; cycles = 21 + 4 * max(4*9, 2*9) = 165
    assert layer_cost(strided, Folding(simd=8, ram_style="distributed"), ZED, t).cycles == 165


def test_swg_rtl_parallel_window() -> None:
    layer, t = swg()
    c = layer_cost(layer, Folding(simd=16, parallel_window=1, ram_style="distributed"), ZED, t)
    assert c.cycles == 102  # H*W*C/SIMD + 2
    assert c.out_width == 16 * 4 * 9  # a whole 3x3 window of 16 channels per cycle
    assert c.resources.lut == 300 + 64 * 1  # buffer depth (2*10 + 2) * 1 + 2 = 24 -> ceil(24/38) = 1
    block = layer_cost(layer, Folding(simd=16, parallel_window=1, ram_style="block"), ZED, t)
    # k_h - 1 = 2 line buffers of depth 10 - 3 = 7, 64 bits wide: 2 * ceil(64/36) = 4
    assert block.resources.bram18 == 4
    with pytest.raises(IllegalFoldingError, match="parallel_window needs SIMD"):
        layer_cost(layer, Folding(simd=4, parallel_window=1), ZED, t)


def test_fmpadding() -> None:
    attrs = {"ImgDim": (8, 8), "Padding": (1, 1, 1, 1), "NumChannels": 16, "inputDataType": "UINT4"}
    layer, t = make("FMPadding", attrs, (1, 8, 8, 16), "UINT4", (1, 10, 10, 16), "UINT4")
    c = layer_cost(layer, Folding(simd=4), ZED, t)
    assert c.impl == "FMPadding_rtl"
    assert c.cycles == 400  # C/SIMD * padded H*W = 4 * 100
    assert c.resources.lut == 100 + 16  # correction: base + output width (FINN: 0)


def test_thresholding_rtl() -> None:
    attrs = {"NumChannels": 16, "numSteps": 3, "inputDataType": "INT8", "outputDataType": "UINT2"}
    layer, t = make("Thresholding", attrs, (1, 4, 4, 16), "INT8", (1, 4, 4, 16), "UINT2")
    c = layer_cost(layer, Folding(pe=2), ZED, t)
    assert c.impl == "Thresholding_rtl"
    assert c.cycles == 128  # N*C/PE = 16 * 16 / 2
    # per PE, stage 0: 8 bits x 8 thresholds, stage 1: 8 x 16 -> least waste is LUTRAM: 8 + 8 LUTs; x 2 PE = 32
    assert c.resources.lutram == 32 and c.resources.bram18 == 0
    assert c.resources.lut == 32 + 100 + 2 * 2 * 8  # + correction: base + PE * stages * input bits


def test_channelwise_op() -> None:
    attrs = {"Func": "add", "NumChannels": 10, "inputDataType": "INT18", "paramDataType": "INT16",
             "outputDataType": "INT19"}
    layer, t = make("ChannelwiseOp", attrs, (1, 1, 1, 10), "INT18", (1, 1, 1, 10), "INT19")
    c = layer_cost(layer, Folding(pe=5, ram_style="distributed"), ZED, t)
    assert c.cycles == 2  # N*C/PE = 10/5
    # FINN sizes both by the input width A = 18: A*PE = 90, LUTRAM PE*A*ceil(2/64) = 90
    assert c.resources.lut == 180 and c.resources.lutram == 90 and not c.corrections[:-1]
    block = layer_cost(layer, Folding(pe=5, ram_style="block"), ZED, t)
    assert block.resources.bram18 == 6 and block.resources.lut == 90  # ceil(18*5/16) * ceil(2/1024)


def test_pool_globalaccpool_maxpool_labelselect() -> None:
    pool, t = make("Pool", {"Function": "QuantAvgPool", "KernelSize": (2, 2), "Channels": 8, "AccumBits": 6},
                   (1, 4, 4, 32), "UINT4", (1, 4, 4, 8), "UINT4")
    c = layer_cost(pool, Folding(pe=4), ZED, t)
    assert (c.cycles, c.resources.lut) == (128, 100 + 2 * 4 * 6)  # C*k*k/PE * H*W = 8 * 16
    gap, t = make("GlobalAccPool", {"NumChannels": 8}, (1, 4, 4, 8), "UINT4", (1, 1, 1, 8), "UINT8")
    c = layer_cost(gap, Folding(pe=2), ZED, t)
    assert c.cycles == 68  # N*C/PE + C/PE = 16*4 + 4
    assert c.resources.lut == 100 + 2 * 8 + 16  # accumulators: 2 * 8 bits * ceil(4/64) LUTRAM
    smp, t = make("StreamingMaxPool", {"ImgDim": (8, 8), "PoolDim": (2, 2), "NumChannels": 4},
                  (1, 8, 8, 4), "UINT4", (1, 4, 4, 4), "UINT4")
    c = layer_cost(smp, Folding(), ZED, t)
    assert c.cycles == 80 and c.resources.lut == 100 + 16 + 16  # 64 * (1 + 1/4); row buffer 16 bits x 4
    with pytest.raises(IllegalFoldingError):
        layer_cost(smp, Folding(pe=2), ZED, t)
    sel, t = make("LabelSelect", {"Labels": 10, "K": 3}, (1, 1, 1, 10), "INT19", (1, 1, 1, 3), "UINT4")
    c = layer_cost(sel, Folding(pe=2), ZED, t)
    assert c.cycles == 5 and c.resources.lut == 100 + 2 * 3 * (19 + 4) * 2


def test_unsupported_and_unknown_ops_name_the_layer() -> None:
    layer, t = make("StreamingConcat", {"NumChannels": 4}, (1, 2, 2, 4), "UINT4", (1, 2, 2, 4), "UINT5")
    with pytest.raises(UnsupportedLayerError, match=r"'StreamingConcat_0' \(op type StreamingConcat\).*not lowered"):
        layer_cost(layer, Folding(), ZED, t)
    odd = dataclasses.replace(layer, op_type="Mystery", name="m1")
    with pytest.raises(UnsupportedLayerError, match=r"'m1' \(op type Mystery\): no cost model"):
        layer_cost(odd, Folding(), ZED, t)

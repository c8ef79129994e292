"""Costs of the weightless streaming layers: sliding window, padding, thresholds, pooling, top-K.

Formulas follow FINN's rtl/convolutioninputgenerator_rtl.py, fmpadding_rtl.py, rtl/thresholding_rtl.py,
hls/channelwise_op_hls.py, pool.py, globalaccpool.py, streamingmaxpool.py, labelselect.py.
Where FINN estimates 0 resources, the LUTs here are corrections (docs/cost-model.md#corrections).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from core.datatypes import threshold_datatype
from splitter.cost.errors import check_folding
from splitter.cost.memory import least_waste_memory, lutram_luts, swg_bram, uram_blocks
from splitter.cost.model import CostConfig, Folding, LayerCost, LayerIO, costed
from splitter.cost.resources import Resources
from splitter.graph import Layer, pair

if TYPE_CHECKING:
    from splitter.boards import Board


def _divides(layer: Layer, f: Folding, value: int, total: int, what: str) -> None:
    check_folding(layer, f, total % value == 0, f"{what}={value} must divide {total}")


def swg_geometry(layer: Layer, f: Folding) -> dict[str, int]:
    """Buffer depth, buffer count and cycles of a ConvolutionInputGenerator_rtl with folding `f`."""
    (h, w), (oh, ow) = pair(layer.attr("IFMDim")), pair(layer.attr("OFMDim"))
    (kh, kw), (sh, sw) = pair(layer.attr("ConvKernelDim")), pair(layer.attr("Stride"))
    dh, dw = pair(layer.attrs.get("Dilation", (1, 1)))
    channels, dwise = int(layer.attr("IFMChannels")), int(layer.attrs.get("depthwise", 0))
    cf = channels // f.simd
    parallel = bool(f.parallel_window) or (kh, kw) == (1, 1)
    if parallel:
        depth = ((kh - 1) * dh * w + (kw - 1) * dw) * cf + 2
        count = 0 if 1 in (h, w) else kh - 1
        line = (w - ((kw - 1) * dw + 1)) + w * (dh - 1)
        return {"depth": depth, "bram_depth": line, "count": count, "cycles": h * w * cf + 2, "parallel": 1}
    bmin = ((kh - 1) * dh * w + (kw - 1) * dw + 1) * cf
    depth = bmin + max(0, (sw - 1 - kh * kw) * cf) + max(0, ((sh - 1) * w - kh * kw) * cf)
    if 1 in (h, w):  # 1D: FINN normalizes to a 1 x W image
        k1, s1, o1 = max(kh, kw), max(sh, sw), max(oh, ow)
        cycles = o1 * k1 * cf + 2 + (cf * (k1 - 1) * (s1 - 1) - (k1 - 1) if dwise else 0)
    else:
        step = max(ow * kw * kh * cf, sw * w * cf) + (ow * (sw - 1) * (cf - 1) if dwise else 0)
        cycles = bmin + oh * step + ((sh - 1) * w * cf if dwise else 0)
    return {"depth": depth, "bram_depth": depth, "count": 1, "cycles": cycles, "parallel": 0}


def swg_cost(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """ConvolutionInputGenerator_rtl: line buffer in LUTRAM (FINN default), BRAM or URAM."""
    channels = int(layer.attr("IFMChannels"))
    kh, kw = pair(layer.attr("ConvKernelDim"))
    _divides(layer, f, f.simd, channels, "SIMD")
    check_folding(layer, f, not f.parallel_window or f.simd == channels, "parallel_window needs SIMD = IFMChannels")
    check_folding(layer, f, f.ram_style != "ultra" or board.resources.uram > 0, f"board {board.name} has no URAM")
    geo = swg_geometry(layer, f)
    a = io.in_dtype.bitwidth
    width = f.simd * a
    if f.ram_style == "distributed":
        luts = width * math.ceil(geo["depth"] / 38)  # FINN lut_estimation
        mem = Resources(lut=luts, lutram=luts)
    elif f.ram_style == "ultra":
        mem = Resources(uram=uram_blocks(width, geo["bram_depth"]) * geo["count"])
    else:
        mem = Resources(bram18=swg_bram(width, geo["bram_depth"], geo["count"]))
    out_width = width * (kh * kw if geo["parallel"] and (kh, kw) != (1, 1) else 1)
    return costed(mem + Resources(lut=300), geo["cycles"], "ConvolutionInputGenerator_rtl", width, out_width, cfg)


def fmpadding_cost(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """FMPadding_rtl: FINN estimates nothing; correction for counters and the output mux."""
    channels = int(layer.attr("NumChannels"))
    _divides(layer, f, f.simd, channels, "SIMD")
    _, oh, ow, _ = io.out_shape
    width = f.simd * io.in_dtype.bitwidth
    control = Resources(lut=cfg.small_layer_base_lut + width)
    return costed(Resources(), channels // f.simd * oh * ow, "FMPadding_rtl", width, width, cfg, control=control)


def thresholding_cost(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """Thresholding_rtl: per PE and output bit a stage memory of (C/PE) * 2^stage thresholds."""
    channels = int(layer.attr("NumChannels"))
    _divides(layer, f, f.pe, channels, "PE")
    a, b = io.in_dtype.bitwidth, io.out_dtype.bitwidth
    thresholds = layer.params.get("thresholds")
    t = threshold_datatype(thresholds, io.in_dtype).bitwidth if thresholds is not None else a
    finn_mem, mem = Resources(), Resources()
    for stage in range(b):
        depth = channels // f.pe * 2**stage
        finn_mem = finn_mem + least_waste_memory(t, depth, True).scale(f.pe)  # FINN ranks URAM on every part
        mem = mem + least_waste_memory(t, depth, board.resources.uram > 0).scale(f.pe)
    # FINN reports BRAM under a key it never reads (0) and no comparator LUTs
    finn = Resources(lut=finn_mem.lut, uram=finn_mem.uram, lutram=finn_mem.lutram)
    return costed(finn, io.out_vectors * channels // f.pe, "Thresholding_rtl", f.pe * a, f.pe * b, cfg,
                  threshold_memory=mem - finn, control=Resources(lut=cfg.small_layer_base_lut + f.pe * b * a))


def channelwise_cost(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """ChannelwiseOp_hls: FINN's estimate, which sizes the parameter memory and the operators by the input width."""
    channels = int(layer.attr("NumChannels"))
    _divides(layer, f, f.pe, channels, "PE")
    a, b = io.in_dtype.bitwidth, io.out_dtype.bitwidth
    tmem = channels // f.pe
    style = "distributed" if f.ram_style == "auto" else f.ram_style
    bram = math.ceil(a * f.pe / 16) * math.ceil(tmem / 1024) if style == "block" and tmem > 1 else 0
    ram_luts = f.pe * a * math.ceil(tmem / 64) if style == "distributed" and tmem > 1 else 0
    finn = Resources(lut=a * f.pe + ram_luts, bram18=bram, lutram=ram_luts)
    return costed(finn, io.out_vectors * tmem, "ChannelwiseOp_hls", f.pe * a, f.pe * b, cfg)


def pool_cost(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """Pool_hls behind a depthwise sliding window (FINN estimates 0; correction: adder/compare per PE)."""
    channels = int(layer.attr("Channels"))
    kh, kw = pair(layer.attr("KernelSize"))
    _divides(layer, f, f.pe, channels, "PE")
    a, b = io.in_dtype.bitwidth, io.out_dtype.bitwidth
    acc = int(layer.attrs.get("AccumBits", 0)) or a
    cycles = channels * kh * kw // f.pe * io.out_vectors
    control = Resources(lut=cfg.small_layer_base_lut + 2 * f.pe * acc)
    return costed(Resources(), cycles, "Pool_hls", f.pe * a, f.pe * b, cfg, control=control)


def globalaccpool_cost(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """GlobalAccPool_hls (FINN estimates 0; correction: adders and C/PE accumulators in LUTRAM)."""
    channels = int(layer.attr("NumChannels"))
    _divides(layer, f, f.pe, channels, "PE")
    a, b = io.in_dtype.bitwidth, io.out_dtype.bitwidth
    ram = f.pe * lutram_luts(b, channels // f.pe)
    cycles = io.in_vectors * channels // f.pe + channels // f.pe
    control = Resources(lut=cfg.small_layer_base_lut + f.pe * b + ram, lutram=ram)
    return costed(Resources(), cycles, "GlobalAccPool_hls", f.pe * a, f.pe * b, cfg, control=control)


def maxpool_cost(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """StreamingMaxPool_hls, 2D: a whole pixel per cycle; correction: comparators and a row buffer."""
    h, w = pair(layer.attr("ImgDim"))
    kh, kw = pair(layer.attr("PoolDim"))
    channels = int(layer.attr("NumChannels"))
    check_folding(layer, f, f.pe == 1 and f.simd == 1, "2D StreamingMaxPool has no folding (PE is 1D only)")
    a = io.in_dtype.bitwidth
    ram = lutram_luts(channels * a, max(1, w // kw))
    cycles = h * w + (h * w) // (kh * kw)  # FINN: IFMDim^2 * (1 + 1/k^2)
    control = Resources(lut=cfg.small_layer_base_lut + channels * a + ram, lutram=ram)
    return costed(Resources(), cycles, "StreamingMaxPool_hls", channels * a, channels * a, cfg, control=control)


def labelselect_cost(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """LabelSelect_hls (FINN estimates 0; correction: a K-entry insertion sorter per PE)."""
    labels, k = int(layer.attr("Labels")), int(layer.attr("K"))
    _divides(layer, f, f.pe, labels, "PE")
    a, b = io.in_dtype.bitwidth, io.out_dtype.bitwidth
    control = Resources(lut=cfg.small_layer_base_lut + 2 * k * (a + b) * f.pe)
    return costed(Resources(), labels // f.pe, "LabelSelect_hls", f.pe * a, b, cfg, control=control)

"""Costs of the weight-carrying layers: MVAU (dense / 1x1 / im2col convolution) and VVAU (depthwise).

Formulas follow FINN's matrixvectoractivation.py, hls/matrixvectoractivation_hls.py,
rtl/matrixvectoractivation_rtl.py, hls/vectorvectoractivation_hls.py; corrections are marked
"correction" and listed in docs/cost-model.md.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from splitter.cost.errors import IllegalFoldingError
from splitter.cost.memory import lutram_luts, weight_memory
from splitter.cost.model import CostConfig, Folding, LayerCost, LayerIO, costed
from splitter.cost.resources import Resources
from splitter.cost.xnor import finn_xnor_accumulator
from splitter.graph import Layer, dtype_attr, pair

if TYPE_CHECKING:
    from splitter.boards import Board


def accumulator_bits(acc_bits: int, dot_length: int, w_bits: int, a_bits: int, a_signed: bool) -> int:
    """FINN's LUT-estimate accumulator width: min(accDataType, bound of arXiv 2301.13376)."""
    alpha = math.log2(dot_length) + w_bits + a_bits - 1 - int(a_signed)
    return int(min(acc_bits, math.ceil(alpha + math.log2(1 + 2.0**-alpha) + 1)))


def mvau_rtl_possible(layer: Layer, board: Board) -> bool:
    """FINN's default MVAU variant is RTL (specialize_layers._determine_impl_style without a preference).

    Input and weights at least 4 bits wide, and _mvu_rtl_possible: no thresholds, no XNOR mode,
    signed weights of at most 8 bits, input of at most 8 bits (9 if signed), narrow-range weights
    on DSP48E1.
    """
    if int(layer.attrs.get("noActivation", 0)) != 1 or int(layer.attrs.get("binaryXnorMode", 0)):
        return False
    wdt, idt = dtype_attr(layer, "weightDataType"), dtype_attr(layer, "inputDataType")
    if wdt.bitwidth < 4 or idt.bitwidth < 4:
        return False
    if not wdt.signed or wdt.is_bipolar or wdt.bitwidth > 8:
        return False
    if not (idt.bitwidth <= 8 or (idt.bitwidth == 9 and idt.signed)):
        return False
    if board.dsp_block == "DSP48E1":
        # DSP48E1 packing needs narrow-range weights (min > datatype min); unknown weights: not narrow.
        weights = layer.params.get("weights")
        return weights is not None and int(np.min(weights)) > wdt.min
    return True


def _check(layer: Layer, folding: Folding, ok: bool, why: str) -> None:
    if not ok:
        raise IllegalFoldingError(layer.name, layer.op_type, folding, why)


def _mac_luts(q: int, w: int, a: int, res_type: str, acc: int, thr: float, comp: float) -> float:
    """Per-PE LUTs of an HLS MAC lane set: multipliers, adder tree, accumulator, thresholds."""
    mult = 0 if res_type == "dsp" else q * (2 * math.ceil((w + a) / 6) - 1) * (w + a)
    adder = (w + a) * (2 * q - 1)
    return mult + adder + acc + thr + comp


def mvau_cost(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """MVAU_hls (thresholds embedded) or MVAU_rtl (no activation, DSP packing) as FINN picks."""
    mw, mh = int(layer.attr("MW")), int(layer.attr("MH"))
    p, q = f.pe, f.simd
    _check(layer, f, mh % p == 0 and mw % q == 0, f"PE must divide MH={mh} and SIMD must divide MW={mw}")
    _check(layer, f, f.ram_style != "ultra" or board.resources.uram > 0, f"board {board.name} has no URAM")
    idt, wdt, odt = io.in_dtype, dtype_attr(layer, "weightDataType"), dtype_attr(layer, "outputDataType")
    a, w, b = idt.bitwidth, wdt.bitwidth, odt.bitwidth
    acc_dt = dtype_attr(layer, "accDataType") if "accDataType" in layer.attrs else odt
    if int(layer.attrs.get("binaryXnorMode", 0)):  # FINN re-derives it (splitter/cost/xnor.py)
        acc_dt = finn_xnor_accumulator(layer, f.ram_style == "ultra")
    omega = mw * mh // (p * q)
    cycles = (mh // p) * (mw // q) * io.in_vectors
    mem = weight_memory(p * q * w, omega, f.ram_style, "mvau")
    acc = accumulator_bits(acc_dt.bitwidth, mw, w, a, idt.signed)
    if mvau_rtl_possible(layer, board):
        _check(layer, f, f.res_type != "lut", "MVAU_rtl has no LUT multipliers (resType must be dsp)")
        # FINN: LUT 0, DSP ceil(PE/4)*SIMD (DSP48E1/E2), memory as the generic MVAU
        finn = Resources(bram18=mem.bram18, uram=mem.uram, dsp=math.ceil(p / 4) * q)
        fabric = Resources(lut=cfg.rtl_mvau_base_lut + p * acc + mem.lut, lutram=mem.lut)
        return costed(finn, cycles, "MVAU_rtl", q * a, p * b, cfg, rtl_fabric=fabric)
    thr = comp = 0.0
    if int(layer.attrs.get("noActivation", 0)) == 0:
        steps = 2**b - 1
        thr, comp = steps * acc * math.ceil((mh // p) / 64), steps * acc
    # FINN counts thr and comp only with ram_style_thresholds=distributed; finnsplit leaves it auto
    lut = int(300 + 1.1 * p * _mac_luts(q, w, a, f.res_type, acc, 0, 0) + mem.lut)
    thresholds = int(300 + 1.1 * p * _mac_luts(q, w, a, f.res_type, acc, thr, comp) + mem.lut) - lut
    dsp = p * q * math.ceil((w + a) / 48) if f.res_type == "dsp" else 0
    finn = Resources(lut=lut, bram18=mem.bram18, uram=mem.uram, dsp=dsp, lutram=mem.lut)
    return costed(finn, cycles, "MVAU_hls", q * a, p * b, cfg,
                  thresholds=Resources(lut=thresholds, lutram=p * thr))


def vvau_cost(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """VVAU_hls (FINN's only VVAU backend off Versal), thresholds embedded."""
    channels = int(layer.attr("Channels"))
    kh, kw = pair(layer.attr("Kernel"))
    p, q = f.pe, f.simd
    _check(layer, f, channels % p == 0 and (kh * kw) % q == 0, f"PE must divide {channels}, SIMD {kh * kw}")
    _check(layer, f, q == 1 or p == channels, "SIMD > 1 needs PE = Channels (FINN SWG parallel window)")
    _check(layer, f, f.ram_style != "ultra" or board.resources.uram > 0, f"board {board.name} has no URAM")
    idt, wdt, odt = io.in_dtype, dtype_attr(layer, "weightDataType"), dtype_attr(layer, "outputDataType")
    a, w, b = idt.bitwidth, wdt.bitwidth, odt.bitwidth
    acc_dt = dtype_attr(layer, "accDataType") if "accDataType" in layer.attrs else odt
    omega = kh * kw * channels // (p * q)
    cycles = channels * kh * kw // (p * q) * io.out_vectors
    small = f.ram_style == "auto" and omega <= 128  # FINN counts this memory nowhere
    mem = Resources() if small else weight_memory(p * q * w, omega, f.ram_style, "vvau")
    acc = accumulator_bits(acc_dt.bitwidth, kh * kw, w, a, idt.signed)
    thr = comp = 0.0
    if int(layer.attrs.get("noActivation", 0)) == 0:
        steps = 2**b - 1
        thr, comp = steps * acc * (channels // p) / 64, steps * acc  # FINN: no ceil here
    lut = int(300 + 1.1 * p * _mac_luts(q, w, a, f.res_type, acc, thr, comp) + mem.lut)
    # FINN's VVAU dsp_estimation has no SIMD factor
    dsp = p * math.ceil((w + a) / 48) if f.res_type == "dsp" else 0
    finn = Resources(lut=lut, bram18=mem.bram18, uram=mem.uram, dsp=dsp, lutram=mem.lut + p * thr)
    extra = {}
    if small:
        luts = lutram_luts(p * q * w, omega)
        extra["small_weights"] = Resources(lut=luts, lutram=luts)
    if q > 1 and f.res_type == "dsp":
        extra["simd_dsp"] = Resources(dsp=p * (q - 1) * math.ceil((w + a) / 48))
    return costed(finn, cycles, "VVAU_hls", p * q * a, p * b, cfg, **extra)

"""Costs of the weight-carrying layers: MVAU (dense / 1x1 / im2col convolution) and VVAU (depthwise).

Formulas follow FINN's matrixvectoractivation.py, hls/matrixvectoractivation_hls.py,
rtl/matrixvectoractivation_rtl.py, hls/vectorvectoractivation_hls.py; corrections are marked
"correction" and listed in docs/cost-model.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from core.datatypes import threshold_datatype
from splitter.cost.errors import check_folding
from splitter.cost.memory import dwc, fifo, lutram_luts, weight_memory
from splitter.cost.model import CostConfig, Folding, LayerCost, LayerIO, composite, costed
from splitter.cost.resources import Resources
from splitter.cost.xnor import finn_xnor_accumulator
from splitter.graph import Layer, dtype_attr, pair

if TYPE_CHECKING:
    from splitter.boards import Board


def accumulator_bits(acc_bits: int, dot_length: int, w_bits: int, a_bits: int, a_signed: bool) -> int:
    """FINN's LUT-estimate accumulator width: min(accDataType, bound of arXiv 2301.13376)."""
    alpha = math.log2(dot_length) + w_bits + a_bits - 1 - int(a_signed)
    return int(min(acc_bits, math.ceil(alpha + math.log2(1 + 2.0**-alpha) + 1)))


def mvau_rtl_possible(layer: Layer, board: Board, preferred: bool = False) -> bool:
    """Whether FINN builds this MVAU as MVAU_rtl (specialize_layers._determine_impl_style).

    FINN's rule, _mvu_rtl_possible: no thresholds, no XNOR mode, signed weights of at most 8 bits,
    input of at most 8 bits (9 if signed), narrow-range weights on DSP48E1. Without a preference
    FINN also wants input and weights at least 4 bits wide; with `preferred` (the node asks for
    "rtl") it does not.
    """
    if int(layer.attrs.get("noActivation", 0)) != 1 or int(layer.attrs.get("binaryXnorMode", 0)):
        return False
    wdt, idt = dtype_attr(layer, "weightDataType"), dtype_attr(layer, "inputDataType")
    if not preferred and (wdt.bitwidth < 4 or idt.bitwidth < 4):
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


def _mac_luts(q: int, w: int, a: int, res_type: str, acc: int, thr: float, comp: float) -> float:
    """Per-PE LUTs of an HLS MAC lane set: multipliers, adder tree, accumulator, thresholds."""
    mult = 0 if res_type == "dsp" else q * (2 * math.ceil((w + a) / 6) - 1) * (w + a)
    adder = (w + a) * (2 * q - 1)
    return mult + adder + acc + thr + comp


def accumulator_layer(layer: Layer) -> Layer:
    """The MVAU/VVAU without its activation: the node FINN builds before a standalone Thresholding_rtl."""
    attrs = {**layer.attrs, "noActivation": 1, "ActVal": 0, "outputDataType": layer.attr("accDataType")}
    params = {k: v for k, v in layer.params.items() if k != "thresholds"}
    return dataclasses.replace(layer, attrs=attrs, params=params)


def threshold_layer(layer: Layer, f: Folding, out_shape: tuple[int, ...]) -> Layer:
    """The standalone Thresholding_rtl that reads `layer`'s accumulator and applies its thresholds."""
    thresholds = layer.params["thresholds"]
    acc = dtype_attr(layer, "accDataType")
    channels = int(layer.attr("MH" if layer.op_type == "MVAU" else "Channels"))
    attrs = {"NumChannels": channels, "PE": f.thr_pe, "numSteps": int(thresholds.shape[1]),
             "inputDataType": acc.name, "weightDataType": threshold_datatype(thresholds, acc).name,
             "outputDataType": layer.attr("outputDataType"), "ActVal": int(layer.attrs.get("ActVal", 0)),
             "numInputVectors": tuple(out_shape[:-1])}
    return Layer("Thresholding", f"{layer.name}_thresholds", f"{layer.output}_acc", layer.output, attrs,
                 {"thresholds": thresholds}, layer.source)


NodeCost = Callable[[Layer, Folding, "Board", LayerIO, CostConfig], LayerCost]


def _standalone(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig, node: NodeCost) -> LayerCost:
    """An MVAU/VVAU and its thresholds as two FINN nodes: the accumulator layer, then Thresholding_rtl."""
    from splitter.cost.stream import thresholding_cost  # stream.py imports this module

    check_folding(layer, f, int(layer.attrs.get("noActivation", 0)) == 0 and "thresholds" in layer.params,
           "standalone thresholds need a layer with an activation")
    check_folding(layer, f, not int(layer.attrs.get("binaryXnorMode", 0)), "XNOR layers keep their thresholds embedded")
    acc = dtype_attr(layer, "accDataType")
    compute = node(accumulator_layer(layer), dataclasses.replace(f, thresholds="embedded", thr_pe=1), board,
                   dataclasses.replace(io, out_dtype=acc), cfg)
    thr_layer = threshold_layer(layer, f, io.out_shape)
    thr = thresholding_cost(thr_layer, Folding(pe=f.thr_pe), board, LayerIO(io.out_shape, io.out_shape, acc,
                                                                              io.out_dtype), cfg)
    link = fifo(thr.in_width, cfg.fifo_depth, cfg.ff_per_lut) + dwc(compute.out_width, thr.in_width, cfg.ff_per_lut)
    return composite((compute, thr), link)


def mvau_cost(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """MVAU_hls (thresholds embedded) or MVAU_rtl (no activation, DSP packing); standalone thresholds apart."""
    if f.standalone:
        return _standalone(layer, f, board, io, cfg, _mvau_node)
    return _mvau_node(layer, f, board, io, cfg)


def _mvau_node(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """One MVAU node: MVAU_rtl where FINN builds it (or the node asks for it), else MVAU_hls."""
    mw, mh = int(layer.attr("MW")), int(layer.attr("MH"))
    p, q = f.pe, f.simd
    check_folding(layer, f, mh % p == 0 and mw % q == 0, f"PE must divide MH={mh} and SIMD must divide MW={mw}")
    check_folding(layer, f, f.ram_style != "ultra" or board.resources.uram > 0, f"board {board.name} has no URAM")
    idt, wdt, odt = io.in_dtype, dtype_attr(layer, "weightDataType"), dtype_attr(layer, "outputDataType")
    a, w, b = idt.bitwidth, wdt.bitwidth, odt.bitwidth
    acc_dt = dtype_attr(layer, "accDataType") if "accDataType" in layer.attrs else odt
    if int(layer.attrs.get("binaryXnorMode", 0)):  # FINN re-derives it (splitter/cost/xnor.py)
        acc_dt = finn_xnor_accumulator(layer, f.ram_style == "ultra")
    omega = mw * mh // (p * q)
    cycles = (mh // p) * (mw // q) * io.in_vectors
    mem = weight_memory(p * q * w, omega, f.ram_style, "mvau")
    acc = accumulator_bits(acc_dt.bitwidth, mw, w, a, idt.signed)
    rtl = f.impl_style != "hls" and mvau_rtl_possible(layer, board, preferred=f.impl_style == "rtl")
    check_folding(layer, f, rtl or f.impl_style != "rtl", "FINN builds no MVAU_rtl for it (thresholds, XNOR, wide or "
           "unsigned weights, wide inputs, or full-range weights on DSP48E1)")
    if rtl:
        check_folding(layer, f, f.res_type != "lut", "MVAU_rtl has no LUT multipliers (resType must be dsp)")
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
    """VVAU_hls (FINN's only VVAU backend off Versal), thresholds embedded or standalone."""
    check_folding(layer, f, f.impl_style != "rtl", "VVAU_rtl exists only on Versal")
    if f.standalone:
        return _standalone(layer, f, board, io, cfg, _vvau_node)
    return _vvau_node(layer, f, board, io, cfg)


def _vvau_node(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """One VVAU_hls node."""
    channels = int(layer.attr("Channels"))
    kh, kw = pair(layer.attr("Kernel"))
    p, q = f.pe, f.simd
    check_folding(layer, f, channels % p == 0 and (kh * kw) % q == 0, f"PE must divide {channels}, SIMD {kh * kw}")
    check_folding(layer, f, q == 1 or p == channels, "SIMD > 1 needs PE = Channels (FINN SWG parallel window)")
    check_folding(layer, f, f.ram_style != "ultra" or board.resources.uram > 0, f"board {board.name} has no URAM")
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

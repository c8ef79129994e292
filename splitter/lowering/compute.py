"""Conv / MatMul / Gemm, the elementwise epilogue after it and its quantizer: an MVAU or VVAU.

`conv` and `matmul` emit what feeds the compute layer (padding, sliding window) and lay the integer
weights out as FINN expects; `compute` derives the thresholds from the epilogue and emits the layer.
Without a quantizer after it the layer keeps its accumulator (lowering/accumulator.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from core.datatypes import DataType, datatype, smallest_datatype
from core.errors import UnsupportedNodeError
from splitter.lowering.accumulator import finish_accumulator
from splitter.lowering.binary import binary_form, flip_decreasing, popcount_range
from splitter.lowering.cursor import Cursor, store
from splitter.lowering.elementwise import Activation, ElementwiseOp, derive_thresholds
from splitter.lowering.emitter import ComputeLayer
from splitter.lowering.host_stages import collect_elementwise
from splitter.lowering.onnx_view import attributes, per_channel
from splitter.lowering.weights import conv_weights, matmul_weights, real_bias
from splitter.lowering.window import padding, sliding_window

if TYPE_CHECKING:
    from splitter.lowering.emitter import Emitter

QUANTIZERS = ("Quant", "BipolarQuant")


def compute(lw: Emitter, node: onnx.NodeProto, cur: Cursor) -> Cursor:
    """Conv / MatMul / Gemm, the elementwise epilogue after it and its quantizer."""
    if node.op_type == "Conv" and any(attributes(node).get("pads", ())) and np.any(cur.offset):
        cur = lw.shift_input(cur, node)  # FMPadding's 0 must be the model's 0.0 (lowering/shift.py)
    acc_cur, layer = conv(lw, node, cur) if node.op_type == "Conv" else matmul(lw, node, cur)
    layer = binary_form(lw.view, node, cur, layer)
    ops, end = collect_elementwise(lw.view, node.output[0])
    if layer.bias is not None:
        ops = [ElementwiseOp("Add", (layer.bias.astype(np.float32),)), *ops]
    if layer.xnor:
        lo, hi = popcount_range(layer)
        acc_dtype = smallest_datatype(0, int(hi.max()) + 1)  # holds the "never reached" threshold K + 1
        weight_dtype = datatype("BINARY")
    else:
        lo, hi = _acc_range(layer.weights, cur.dtype, layer.op_type)
        acc_dtype = smallest_datatype(int(lo.min()), int(hi.max()))
        weight_dtype = smallest_datatype(int(layer.weights.min()), int(layer.weights.max()))
    layer.attrs.update(inputDataType=cur.dtype.name, weightDataType=weight_dtype.name, accDataType=acc_dtype.name)
    if end is not None and end.op_type in QUANTIZERS:
        return _with_thresholds(lw, node, cur, acc_cur, layer, ops, end, (lo, hi))
    return finish_accumulator(lw, node, acc_cur, layer, ops, end, acc_dtype)


def _with_thresholds(lw: Emitter, node, cur: Cursor, acc_cur: Cursor, layer: ComputeLayer, ops, end, acc_range):
    """The compute layer with its activation (epilogue + `end`, a Quant) folded into thresholds."""
    quant = lw.view.quant_params(end)
    channels = layer.alpha.shape[0]
    qscale = per_channel(quant.scale, channels, cur.rank, end.name).astype(np.float32)
    act = Activation(layer.alpha, layer.beta, ops, quant, qscale)
    thresholds, sign, act_val = derive_thresholds(act, *acc_range)
    if layer.xnor:
        weights, thresholds = flip_decreasing(layer.weights, thresholds, sign)
    else:
        # A decreasing channel's weights are negated, as FINN's streamlining factors out negative scales.
        weights = layer.weights * (sign[None, :] if layer.op_type == "MVAU" else sign[:, None])
    attrs = layer.attrs
    attrs.update(noActivation=0, ActVal=int(act_val), outputDataType=quant.dtype.name)
    params = {"weights": store(weights), "thresholds": store(thresholds)}
    out = lw.emit(layer.op_type, acc_cur, attrs, acc_cur.shape, quant.dtype, params, (*layer.source, end.name))
    step, offset = quant.code(qscale)
    nxt = Cursor(
        end.output[0],
        out,
        step,
        offset,
        quant.dtype,
        acc_cur.shape,
        rank=cur.rank if node.op_type == "Conv" else 2,
        bipolar=quant.bipolar,
    )
    lw.record(nxt)
    return nxt


def conv(lw: Emitter, node: onnx.NodeProto, cur: Cursor) -> tuple[Cursor, ComputeLayer]:
    """Emit padding and sliding window for a Conv; returns the cursor feeding the MVAU/VVAU."""
    attrs = attributes(node)
    w_int, w_scale = conv_weights(lw.view, node)
    out_ch, _, kh, kw = w_int.shape
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    strides = list(attrs.get("strides", [1, 1]))
    dilations = list(attrs.get("dilations", [1, 1]))
    depthwise = _check_conv(node, cur, w_int.shape, int(attrs.get("group", 1)))
    source = (node.name,)
    x = padding(lw, cur, pads, source)
    _, ph, pw, _ = x.shape
    oh = (ph - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (pw - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    if (kh, kw) != (1, 1) or strides != [1, 1] or depthwise:
        x = sliding_window(lw, x, (kh, kw), strides, (oh, ow), source, dilations, depthwise)
    acc_cur = replace(x, shape=(1, oh, ow, out_ch))
    bias = real_bias(lw.view, node, out_ch)
    if depthwise:
        weights = w_int.reshape(out_ch, kh * kw)  # (C, K): tap k = ky*KW + kx
        alpha = w_scale * cur.scale
        beta = w_scale * cur.offset * weights.sum(axis=1)
        attrs = {"PE": 1, "SIMD": 1, "Channels": out_ch, "Kernel": (kh, kw), "Dim": (oh, ow), "numInputVectors": 1}
        return acc_cur, ComputeLayer("VVAU", attrs, weights, alpha, beta, bias, source)
    weights = w_int.transpose(2, 3, 1, 0).reshape(kh * kw * cur.channels, out_ch)  # rows (ky, kx, c)
    offsets = np.tile(cur.offset, kh * kw)
    alpha = w_scale * cur.scale[0]
    beta = w_scale * (offsets @ weights)
    attrs = _mvau_attrs(kh * kw * cur.channels, out_ch, (1, oh, ow))
    return acc_cur, ComputeLayer("MVAU", attrs, weights, alpha, beta, bias, source)


def _check_conv(node: onnx.NodeProto, cur: Cursor, w_shape, group: int) -> bool:
    """Reject convolutions without an integer-exact dataflow form; returns whether it is depthwise."""
    out_ch, in_per_group = w_shape[0], w_shape[1]
    depthwise = group > 1
    if depthwise and not (group == cur.channels == out_ch and in_per_group == 1):
        raise UnsupportedNodeError(
            node.name,
            "Conv",
            f"grouped convolution with group={group} (only depthwise with one output per input channel is supported)",
        )
    if cur.rank != 4:
        raise UnsupportedNodeError(node.name, "Conv", "input is not an NCHW tensor")
    if not depthwise and not np.all(cur.scale == cur.scale[0]):
        raise UnsupportedNodeError(node.name, "Conv", "per-channel scaled input to a dense convolution")
    return depthwise


def matmul(lw: Emitter, node: onnx.NodeProto, cur: Cursor) -> tuple[Cursor, ComputeLayer]:
    """MatMul / Gemm on a flattened tensor: an MVAU with rows reordered to NHWC."""
    if cur.rank != 2:
        raise UnsupportedNodeError(node.name, node.op_type, "input must be a 2D (N, K) tensor")
    w_int, w_scale = matmul_weights(lw.view, node)  # (K, N) in ONNX row order
    if cur.flattened_from is not None:
        channels, height, width = cur.flattened_from
        order = np.arange(channels * height * width).reshape(channels, height, width).transpose(1, 2, 0)
        w_int = w_int[order.reshape(-1)]  # dataflow row (h, w, c) reads ONNX row c*H*W + h*W + w
    mw, mh = w_int.shape
    if mw != int(np.prod(cur.shape[1:])):
        raise UnsupportedNodeError(node.name, node.op_type, f"weight rows {mw} do not match input {cur.shape}")
    alpha = w_scale * cur.scale[0]
    beta = np.zeros(mh)
    bias = real_bias(lw.view, node, mh)
    acc_cur = replace(cur, shape=(1, 1, 1, mh))
    return acc_cur, ComputeLayer("MVAU", _mvau_attrs(mw, mh, (1, 1, 1)), w_int, alpha, beta, bias, (node.name,))


def _mvau_attrs(mw: int, mh: int, vectors: tuple[int, int, int]) -> dict:
    """FINN's MVAU attributes known before the activation (fully folded: SIMD = PE = 1)."""
    return {
        "MW": mw,
        "MH": mh,
        "SIMD": 1,
        "PE": 1,
        "numInputVectors": vectors,
        "binaryXnorMode": 0,
        "mem_mode": "internal_decoupled",
        "ram_style": "auto",
        "resType": "auto",
    }


def _acc_range(weights: np.ndarray, in_dtype: DataType, op_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel accumulator bounds for inputs anywhere in `in_dtype`'s range."""
    w = weights.astype(np.int64) if op_type == "MVAU" else weights.astype(np.int64).T  # (K, C)
    low, high = in_dtype.min, in_dtype.max
    lo = np.minimum(w * low, w * high).sum(axis=0)
    hi = np.maximum(w * low, w * high).sum(axis=0)
    return lo, hi

"""A compute layer with no quantizer after it: it outputs its accumulator.

The float ops after it become the host's output affine (y = integer * scale + bias per channel);
an integer bias (brevitas Int32Bias) instead becomes a `ChannelwiseOp(add)` layer, and a `TopK`
on the scores becomes `LabelSelect` (docs/lowering.md).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from core.datatypes import DataType, datatype, smallest_datatype
from core.errors import UnsupportedNodeError
from splitter.lowering.cursor import Cursor, store
from splitter.lowering.host_stages import affine_of_elementwise
from splitter.lowering.onnx_view import attributes
from splitter.lowering.residual import RESIDUAL_UNQUANTIZED, is_join

if TYPE_CHECKING:
    from splitter.lowering.emitter import ComputeLayer, Emitter


def finish_accumulator(lw: Emitter, node, acc_cur: Cursor, layer: ComputeLayer, ops, end, acc_dtype) -> Cursor:
    """A compute layer with no quantizer after it: output, optional bias and top-K (else the host's stage)."""
    if end is not None and end.name not in lw.tail and is_join(lw, end):
        raise UnsupportedNodeError(end.name, end.op_type, f"reached from {node.name!r}: {RESIDUAL_UNQUANTIZED}")
    if end is not None and end.op_type != "TopK" and end.name not in lw.tail:
        raise UnsupportedNodeError(
            end.name,
            end.op_type,
            f"reached from {node.name!r} without a quantizer "
            "in between (float tensors can only flow to the model output or TopK)",
        )
    scale, bias = affine_of_elementwise(ops, layer.alpha, layer.beta, node.name)
    attrs = layer.attrs
    attrs.update(noActivation=1, ActVal=0, outputDataType=acc_dtype.name)
    params = {"weights": store(layer.weights)}
    out = lw.emit(layer.op_type, acc_cur, attrs, acc_cur.shape, acc_dtype, params, (node.name,))
    cur = replace(acc_cur, tensor=out, dtype=acc_dtype, scale=scale, offset=np.zeros_like(scale))
    steps = bias / scale
    if np.all(np.abs(steps - np.rint(steps)) < 1e-3) and np.any(bias):
        # An integer bias (brevitas Int32Bias: scale = input scale * weight scale) stays exact.
        cur = _integer_bias(lw, node, cur, np.rint(steps).astype(np.int64))
        bias = np.zeros_like(bias)
    if end is not None and (end.op_type != "TopK" or labelselect_refusal(lw, end, scale, bias)):
        if end.name not in lw.tail:
            raise UnsupportedNodeError(end.name, "TopK", labelselect_refusal(lw, end, scale, bias))
        lw.finish_on_host(float_input(lw, end), scale, bias)  # Softmax, a float head, TopK of float scores
        return cur
    if end is not None:
        return topk(lw, end, cur, scale, bias)
    lw.finish(scale, bias)
    return cur


def float_input(lw: Emitter, node: onnx.NodeProto) -> str:
    """The computed (non-constant) input of `node`: where the host's output stage starts."""
    return next(name for name in node.input if name and lw.view.const(name) is None)


def _integer_bias(lw: Emitter, node: onnx.NodeProto, cur: Cursor, param: np.ndarray) -> Cursor:
    """Add an integer bias (in accumulator steps) to the accumulator with a ChannelwiseOp."""
    acc_dtype: DataType = cur.dtype
    dtype = smallest_datatype(acc_dtype.min + int(param.min()), acc_dtype.max + int(param.max()))
    out = lw.emit(
        "ChannelwiseOp",
        cur,
        {
            "Func": "add",
            "NumChannels": cur.channels,
            "PE": 1,
            "inputDataType": acc_dtype.name,
            "paramDataType": smallest_datatype(int(param.min()), int(param.max())).name,
            "outputDataType": dtype.name,
        },
        cur.shape,
        dtype,
        {"param": store(param)},
        (node.name,),
    )
    return replace(cur, tensor=out, dtype=dtype)


def labelselect_refusal(lw: Emitter, node: onnx.NodeProto, scale: np.ndarray, bias: np.ndarray) -> str:
    """Why TopK `node` on integer * scale + bias cannot be FINN's LabelSelect ("" when it can)."""
    attrs = attributes(node)
    if np.any(bias) or not np.all(scale == scale[0]) or scale[0] <= 0:
        return "the scores are not a positive per-tensor multiple of integers, so top-K cannot run on integers"
    if lw.view.const(node.input[1]) is None or int(attrs.get("largest", 1)) != 1 \
            or int(attrs.get("axis", -1)) not in (-1, 1):
        return "needs a constant K, largest=1, axis=-1"
    if node.output[0] in lw.view.outputs:
        return "the values output is a model output; only indices are"
    return ""


def topk(lw: Emitter, node: onnx.NodeProto, cur: Cursor, scale: np.ndarray, bias: np.ndarray) -> Cursor:
    """TopK on the logits: LabelSelect (the integer order equals the float order; see labelselect_refusal)."""
    k = int(np.asarray(lw.view.const(node.input[1])).reshape(-1)[0])
    labels = cur.channels
    out_dtype = datatype(f"UINT{max(1, (labels - 1).bit_length())}")
    out = lw.emit(
        "LabelSelect",
        cur,
        {"Labels": labels, "PE": 1, "K": k, "inputDataType": cur.dtype.name, "outputDataType": out_dtype.name},
        (1, 1, 1, k),
        out_dtype,
        source=(node.name,),
    )
    nxt = Cursor(node.output[1], out, np.ones(k), np.zeros(k), out_dtype, (1, 1, 1, k), rank=2)
    lw.record(nxt)
    lw.finish(None)
    return nxt

"""Integer weights, their scales and biases of Conv / MatMul / Gemm nodes."""

from __future__ import annotations

import numpy as np
import onnx

from core.errors import UnsupportedNodeError
from splitter.lowering.elementwise import quant_int
from splitter.lowering.onnx_view import OnnxView, attributes


def _quantized_const(view: OnnxView, node: onnx.NodeProto, index: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(integer values, scale broadcastable to them) of a node input that is Quant(constant) or an integer constant."""
    name = node.input[index]
    producer = view.producer.get(name)
    if producer is not None and producer.op_type == "BipolarQuant" and view.const(producer.input[0]) is not None:
        quant = view.quant_params(producer)  # weights take the values -1 and +1 themselves (not a code)
        values = view.const(producer.input[0]).astype(np.float32)
        return np.where(values >= 0, 1, -1).astype(np.int64), quant.scale.astype(np.float64)
    if producer is not None and producer.op_type == "Quant" and view.const(producer.input[0]) is not None:
        quant = view.quant_params(producer)
        values = view.const(producer.input[0]).astype(np.float32)
        return quant_int(values, quant, quant.scale), quant.scale.astype(np.float64)
    values = view.const(name)
    if values is None:
        raise UnsupportedNodeError(node.name, node.op_type, f"{what} {name!r} is not a constant")
    if not np.all(values == np.rint(values)):
        raise UnsupportedNodeError(
            node.name,
            node.op_type,
            f"{what} {name!r} are float; export the model with a weight quantizer (brevitas QuantConv2d / QuantLinear)",
        )
    return values.astype(np.int64), np.ones(1)


def _scale_along(scale: np.ndarray, axis: int, ndim: int, size: int, node: onnx.NodeProto) -> np.ndarray:
    """A weight scale as one value per output channel (along `axis` of an ndim-D weight)."""
    if scale.size == 1:
        return np.full(size, float(scale.reshape(-1)[0]))
    full = scale.reshape((1,) * (ndim - scale.ndim) + scale.shape)
    if full.shape[axis] != size or any(d != 1 for i, d in enumerate(full.shape) if i != axis):
        raise UnsupportedNodeError(
            node.name, node.op_type, f"weight scale of shape {scale.shape} is not per output channel"
        )
    return full.reshape(-1).astype(np.float64)


def bipolar_weights(view: OnnxView, node: onnx.NodeProto) -> bool:
    """True when the node's weights come from a BipolarQuant (values -1 and +1 times a scale)."""
    producer = view.producer.get(node.input[1])
    return producer is not None and producer.op_type == "BipolarQuant"


def conv_weights(view: OnnxView, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
    """Integer Conv weights (O, I/group, KH, KW) and one scale per output channel."""
    w_int, scale = _quantized_const(view, node, 1, "weights")
    if w_int.ndim != 4:
        raise UnsupportedNodeError(node.name, "Conv", f"only 2D convolutions are supported (weights {w_int.shape})")
    return w_int, _scale_along(scale, 0, 4, w_int.shape[0], node)


def matmul_weights(view: OnnxView, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
    """Integer weights as a (K, N) matrix (output = input @ W) and one scale per output column."""
    w_int, scale = _quantized_const(view, node, 1, "weights")
    if w_int.ndim != 2:
        raise UnsupportedNodeError(node.name, node.op_type, f"weights must be 2D, got {w_int.shape}")
    if node.op_type == "Gemm":
        attrs = attributes(node)
        if int(attrs.get("transA", 0)) or float(attrs.get("alpha", 1.0)) != 1.0 or float(attrs.get("beta", 1.0)) != 1.0:
            raise UnsupportedNodeError(node.name, "Gemm", "transA, alpha or beta other than the defaults")
        if int(attrs.get("transB", 0)):
            return w_int.T, _scale_along(scale, 0, 2, w_int.shape[0], node)
    return w_int, _scale_along(scale, 1, 2, w_int.shape[1], node)


def real_bias(view: OnnxView, node: onnx.NodeProto, channels: int) -> np.ndarray | None:
    """The float bias of a Conv/Gemm (third input) as the reference sees it, per output channel."""
    if len(node.input) < 3 or not node.input[2]:
        return None
    name = node.input[2]
    producer = view.producer.get(name)
    if producer is not None and producer.op_type == "Quant" and view.const(producer.input[0]) is not None:
        quant = view.quant_params(producer)
        values = quant_int(view.const(producer.input[0]).astype(np.float32), quant, quant.scale)
        bias = values.astype(np.float32) * quant.scale.astype(np.float32)
    else:
        bias = view.const(name)
        if bias is None:
            raise UnsupportedNodeError(node.name, node.op_type, f"bias {name!r} is not a constant")
    return np.broadcast_to(np.asarray(bias, dtype=np.float64).reshape(-1), (channels,)).copy()

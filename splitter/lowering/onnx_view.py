"""Read-only helpers over a QONNX ModelProto: producers, consumers, constants, Quant parameters."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from core.datatypes import DataType, datatype
from core.errors import LoweringError, UnsupportedNodeError


@dataclass(frozen=True)
class QuantParams:
    """A QONNX Quant node's parameters: output integer = clip(round(x / scale + zeropt)).

    A BipolarQuant (`bipolar`) outputs scale * (+1 if x >= 0 else -1); its integer is the BINARY
    code b of that value (+1 -> 1, -1 -> 0), as FINN carries bipolar activations into XNOR layers:
    value = scale * (2b - 1) (docs/lowering.md#binarized-networks).
    """

    scale: np.ndarray
    zeropt: np.ndarray
    bitwidth: int
    signed: bool
    narrow: bool
    rounding_mode: str
    bipolar: bool = False

    @property
    def dtype(self) -> DataType:
        """FINN datatype of the integer output."""
        if self.bipolar:
            return datatype("BINARY")
        return datatype(f"{'INT' if self.signed else 'UINT'}{self.bitwidth}")

    def code(self, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(step, offset) per channel of the integer output: value = integer * step + offset."""
        scale = np.asarray(scale, dtype=np.float64)
        if self.bipolar:
            return 2 * scale, -scale
        return scale, np.zeros_like(scale)

    @property
    def int_range(self) -> tuple[int, int]:
        """Smallest and largest integer the Quant node can output."""
        if self.bipolar:
            return 0, 1
        if self.signed:
            low = -(1 << (self.bitwidth - 1)) + (1 if self.narrow else 0)
            return low, (1 << (self.bitwidth - 1)) - 1
        return 0, (1 << self.bitwidth) - 1


class OnnxView:
    """Index of a model's graph: who produces and who consumes each tensor, and its constants."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.initializers = {init.name: numpy_helper.to_array(init) for init in self.graph.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for out in node.output:
                self.producer[out] = node
            for inp in node.input:
                if inp:
                    self.consumers.setdefault(inp, []).append(node)
        for node in self.graph.node:
            if node.op_type == "Constant" and node.attribute:
                self.initializers[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.shapes = _shapes(model)
        self.outputs = [o.name for o in self.graph.output]

    def const(self, name: str) -> np.ndarray | None:
        """The constant value of tensor `name` (initializer or Constant node), else None."""
        return self.initializers.get(name)

    def shape(self, name: str) -> tuple[int, ...]:
        """Static shape of tensor `name` (LoweringError when shape inference could not fix it)."""
        try:
            return self.shapes[name]
        except KeyError:
            raise LoweringError(f"the shape of tensor {name!r} is unknown or not static after shape inference; "
                                "export the model with a fixed input size") from None

    def single_consumer(self, tensor: str) -> onnx.NodeProto | None:
        """The one node reading `tensor`, None if none; raises if the graph branches there."""
        users = self.consumers.get(tensor, [])
        if len(users) > 1:
            names = ", ".join(f"{n.name or '?'} ({n.op_type})" for n in users)
            raise UnsupportedNodeError(
                users[1].name,
                users[1].op_type,
                f"tensor {tensor!r} feeds {len(users)} nodes ({names}); a branch must start at a quantized "
                "tensor (a quantizer's output), where FINN duplicates the integer stream",
            )
        return users[0] if users else None

    def quant_params(self, node: onnx.NodeProto) -> QuantParams:
        """Parameters of a Quant or BipolarQuant node whose scale, zero point and bit width are constants."""
        if node.op_type == "BipolarQuant":
            scale = self.const(node.input[1]) if len(node.input) > 1 else None
            if scale is None or np.any(scale <= 0):
                raise UnsupportedNodeError(node.name, node.op_type, "the scale must be a positive constant")
            scale = np.asarray(scale, dtype=np.float32)
            return QuantParams(scale, np.zeros(1, np.float32), 1, True, False, "ROUND", bipolar=True)
        consts = [self.const(name) for name in node.input[1:4]]
        if any(c is None for c in consts):
            raise UnsupportedNodeError(node.name, node.op_type, "scale, zero point and bit width must be constants")
        scale, zeropt, bitwidth = consts
        attrs = attributes(node)
        if np.any(zeropt != 0):
            raise UnsupportedNodeError(node.name, node.op_type, "non-zero zero points are not supported")
        if np.size(bitwidth) != 1 or float(bitwidth) != int(bitwidth):
            raise UnsupportedNodeError(node.name, node.op_type, f"bit width {bitwidth} is not one integer")
        if np.any(scale <= 0):
            raise UnsupportedNodeError(node.name, node.op_type, "scales must be positive")
        if int(bitwidth) == 1 and bool(attrs.get("signed", 1)):
            raise UnsupportedNodeError(
                node.name, node.op_type, "a 1-bit signed Quant (values -1 and 0) has no FINN datatype; brevitas "
                "exports bipolar quantizers as BipolarQuant, which is supported"
            )
        return QuantParams(
            scale=np.asarray(scale, dtype=np.float32),
            zeropt=np.asarray(zeropt, dtype=np.float32),
            bitwidth=int(bitwidth),
            signed=bool(attrs.get("signed", 1)),
            narrow=bool(attrs.get("narrow", 0)),
            rounding_mode=str(attrs.get("rounding_mode", "ROUND")),
        )


def attributes(node: onnx.NodeProto) -> dict[str, object]:
    """A node's attributes as plain Python values (bytes decoded to str)."""
    out = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        out[attr.name] = value.decode() if isinstance(value, bytes) else value
    return out


# Shape inference of a big model takes seconds, and a build asks for the same model's shapes twice
# (lowering, then cutting it into sub-models; verification a third time). The last few results are
# kept, serialized (so no caller can change them), keyed by a hash of the serialized model.
_INFERRED: OrderedDict[bytes, bytes] = OrderedDict()
_INFERRED_KEEP = 2
_INFERRED_LOCK = threading.Lock()


def with_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the model with every tensor shape inferred, custom QONNX ops included."""
    data = model.SerializeToString()
    key = hashlib.blake2b(data).digest()
    with _INFERRED_LOCK:
        shaped = _INFERRED.get(key)
        if shaped is not None:
            _INFERRED.move_to_end(key)
    if shaped is None:
        shaped = _infer_shapes(data)
        with _INFERRED_LOCK:
            _INFERRED[key] = shaped
            while len(_INFERRED) > _INFERRED_KEEP:
                _INFERRED.popitem(last=False)
    return onnx.ModelProto.FromString(shaped)


def graph_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The model's first graph input that is not an initializer (older exports list weights as inputs)."""
    inits = {init.name for init in model.graph.initializer}
    return next(i for i in model.graph.input if i.name not in inits)


def _infer_shapes(data: bytes) -> bytes:
    """qonnx InferShapes on a serialized model; returns the result serialized."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    return ModelWrapper(onnx.ModelProto.FromString(data)).transform(InferShapes()).model.SerializeToString()


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    inferred = with_shapes(model)
    shapes = {}
    infos = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    for info in infos:
        dims = info.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = tuple(d.dim_value for d in dims)
    for init in model.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def per_channel(value: np.ndarray, channels: int, ndim: int, where: str) -> np.ndarray:
    """Broadcast a constant of a (N, C, ...) tensor op to a float array of shape (channels,)."""
    arr = np.asarray(value)
    if arr.size == 1:
        return np.full(channels, arr.reshape(()), dtype=arr.dtype)
    if arr.ndim > ndim:
        raise ValueError(f"{where}: constant of shape {arr.shape} does not broadcast to a rank-{ndim} tensor")
    full = arr.reshape((1,) * (ndim - arr.ndim) + arr.shape)
    if full.shape[1] not in (1, channels) or any(d != 1 for i, d in enumerate(full.shape) if i != 1):
        raise ValueError(f"{where}: constant of shape {arr.shape} is not per-channel (channel axis 1)")
    return np.broadcast_to(full.reshape(-1), (channels,)).copy()


def resolve_rounding(mode: str) -> Callable[[np.ndarray], np.ndarray]:
    """numpy rounding function of a QONNX rounding_mode (as qonnx resolves it)."""
    from qonnx.custom_op.general.quant import resolve_rounding_mode

    return resolve_rounding_mode(mode)

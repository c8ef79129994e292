"""A tiny builder of QONNX graphs for lowering tests (nodes named, shapes inferred by qonnx)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QONNX = "qonnx.custom_op.general"


class GraphBuilder:
    """Append nodes to a graph with one float NCHW input."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.input = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0
        self.last_scale: np.ndarray = np.ones(1, np.float32)  # scale of the latest qweight

    def const(self, value: np.ndarray | float, dtype: type = np.float32) -> str:
        """Add an initializer; returns its name."""
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], domain: str = "", outputs: int = 1, **attrs: object) -> str:
        """Add a node; returns its (first) output name."""
        self.count += 1
        names = [f"t{self.count}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=f"{op}_{self.count}", domain=domain, **attrs))
        return names[0]

    def quant(self, x: str, scale: float | np.ndarray, bits: int, signed: bool, narrow: bool = False,
              domain: str = QONNX) -> str:
        """A Quant node with constant scale (scalar or per-channel), zero point 0 and bit width."""
        return self.node("Quant", [x, self.const(scale), self.const(0.0), self.const(float(bits))], domain,
                         signed=int(signed), narrow=int(narrow), rounding_mode="ROUND")

    def qweight(self, shape: tuple[int, ...], bits: int, per_channel_axis: int | None = 0) -> str:
        """Random float weights behind a narrow signed Quant (per output channel scales)."""
        w = self.rng.uniform(-1, 1, size=shape).astype(np.float32)
        if per_channel_axis is None:
            scale = np.float32(np.abs(w).max() / (2 ** (bits - 1) - 1))
        else:
            axes = tuple(i for i in range(len(shape)) if i != per_channel_axis)
            scale = (np.abs(w).max(axis=axes, keepdims=True) / (2 ** (bits - 1) - 1)).astype(np.float32)
        self.last_scale = np.asarray(scale, dtype=np.float32)
        return self.quant(self.const(w), scale, bits, signed=True, narrow=True)

    def batchnorm(self, x: str, channels: int, negative: float = 0.2) -> str:
        """BatchNormalization with random statistics; a fraction of the gammas negative."""
        gamma = self.rng.uniform(0.5, 1.5, channels) * np.where(self.rng.random(channels) < negative, -1, 1)
        beta = self.rng.uniform(-0.5, 0.5, channels)
        mean = self.rng.uniform(-0.2, 0.2, channels)
        var = self.rng.uniform(0.5, 2.0, channels)
        return self.node("BatchNormalization", [x, *(self.const(v) for v in (gamma, beta, mean, var))],
                         epsilon=1e-5)

    def model(self, output: str, elem_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
        """The finished model with `output` as its only output."""
        out = helper.make_tensor_value_info(output, elem_type, None)
        graph = helper.make_graph(self.nodes, "test", [self.input], [out], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 2)])
        model.ir_version = 8
        return model

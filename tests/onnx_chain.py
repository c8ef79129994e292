"""Running (Q)ONNX models and chains of sub-models the way the laptop and the boards would."""

from __future__ import annotations

import numpy as np
import onnx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from splitter.graph import DataflowGraph
from splitter.model_io import dataflow_input, model_float_input


def run_onnx(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """Execute a (Q)ONNX model on its single input with qonnx's executor."""
    wrapper = ModelWrapper(model)
    return execute_onnx(wrapper, {wrapper.graph.input[0].name: x})[wrapper.graph.output[0].name]


def run_onnx_all(model: onnx.ModelProto, xs: list[np.ndarray]) -> list[np.ndarray]:
    """Execute a (Q)ONNX model on its inputs in graph order; its outputs in graph order."""
    wrapper = ModelWrapper(model)
    names = [i.name for i in wrapper.graph.input]
    assert len(names) == len(xs), f"{len(xs)} inputs for {names}"
    result = execute_onnx(wrapper, dict(zip(names, xs, strict=True)))
    return [result[o.name] for o in wrapper.graph.output]


def onnx_shape(info: onnx.ValueInfoProto) -> list[int]:
    """Static shape of a graph input or output."""
    return [d.dim_value for d in info.type.tensor_type.shape.dim]


def raw_inputs(model: onnx.ModelProto, graph: DataflowGraph, count: int, seed: int) -> list[np.ndarray]:
    """User inputs: integer pixels for a declared input, floats in [-1, 1] for a self-quantizing model."""
    rng = np.random.default_rng(seed)
    shape = onnx_shape(model.graph.input[0])
    if graph.input_quant.kind == "declared":
        return [rng.integers(0, 256, size=shape).astype(np.float32) for _ in range(count)]
    return [rng.uniform(-1, 1, size=shape).astype(np.float32) for _ in range(count)]


def first_sub_model_input(graph: DataflowGraph, first: onnx.ModelProto, raw: np.ndarray) -> np.ndarray:
    """What the laptop sends the first board, in the first sub-model's ONNX layout."""
    iq = graph.input_quant
    if iq.kind == "declared" and not iq.shift:
        return raw
    nhwc = dataflow_input(graph, raw)
    shape = onnx_shape(first.graph.input[0])
    values = nhwc.transpose(0, 3, 1, 2) if len(shape) == 4 else nhwc.reshape(shape)
    return values.astype(np.float32)


def whole_model_output(model: onnx.ModelProto, graph: DataflowGraph, raw: np.ndarray) -> np.ndarray:
    """The original model's output for user input `raw`."""
    iq = graph.input_quant
    return run_onnx(model, model_float_input(iq, raw) if iq.kind == "declared" else raw)


def chain_output(subs: list[onnx.ModelProto], graph: DataflowGraph, raw: np.ndarray,
                 every: bool = False) -> list:
    """Every sub-model's output, each fed with the previous one's; a cut inside a residual block hands
    on several tensors, in the graph order of the outputs and inputs (`every`: all of them per sub-model,
    else the first)."""
    outputs = []
    values = [first_sub_model_input(graph, subs[0], raw)]
    for sub in subs:
        values = run_onnx_all(sub, values)
        outputs.append(values if every else values[0])
    return outputs

"""Host-side conversions around the dataflow: user input -> first integer tensor -> ... -> final output."""

from __future__ import annotations

import numpy as np
import onnx

from splitter.graph import DataflowGraph, InputQuant


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """An ONNX tensor (NCHW, or NC: one pixel) in the dataflow's NHWC layout."""
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x.reshape(x.shape[0], 1, 1, -1)


def model_float_input(iq: InputQuant, raw: np.ndarray) -> np.ndarray:
    """The float tensor the original model takes, for user input `raw` (declared: integer NCHW pixels)."""
    if iq.kind != "declared":
        return np.asarray(raw, dtype=np.float32)
    mean = np.asarray(iq.mean or (0.0,), dtype=np.float32).reshape(1, -1, 1, 1)
    x = np.asarray(raw, dtype=np.float32) * np.float32(iq.scale)
    return (x - mean) / np.float32(iq.std)


def dataflow_input(graph: DataflowGraph, raw: np.ndarray) -> np.ndarray:
    """The first layer's integer NHWC input for user input `raw` (NCHW, batch first)."""
    iq = graph.input_quant
    if iq is None or iq.kind == "declared":
        x = np.asarray(raw)
        if not np.all(x == np.rint(x)):
            raise ValueError("declared integer input contains non-integer values")
        x = nchw_to_nhwc(x.astype(np.int64))
    else:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx

        sub = ModelWrapper(onnx.load_from_string(iq.model))
        name = sub.graph.input[0].name
        out = execute_onnx(sub, {name: np.asarray(raw, dtype=np.float32)})[sub.graph.output[0].name]
        x = nchw_to_nhwc(np.rint(out / np.float32(iq.scale)).astype(np.int64))
    if not graph.input.dtype.allowed(x):
        raise ValueError(f"input values outside {graph.input.dtype.name}")
    return x


def final_output(graph: DataflowGraph, y: np.ndarray) -> np.ndarray:
    """The model's output for the last layer's integer output `y` (logits as float32, or top-K indices)."""
    if graph.output_affine is None:
        return y.reshape(y.shape[0], -1)
    values = graph.output_affine.apply(y)
    return values.reshape(values.shape[0], -1) if values.shape[1:3] == (1, 1) else values.transpose(0, 3, 1, 2)

"""Host-side conversions around the dataflow: user input -> first integer tensor -> ... -> final output."""

from __future__ import annotations

import functools

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


@functools.lru_cache(maxsize=4)
def _input_quant_model(model: bytes):  # qonnx's ModelWrapper, imported lazily
    from qonnx.core.modelwrapper import ModelWrapper

    return ModelWrapper(onnx.load_from_string(model))


def integer_input(kind: str, scale: float, model: bytes, raw: np.ndarray) -> np.ndarray:
    """The first layer's integer NHWC input for user input `raw` (NCHW, batch first).

    kind "declared" (or "integer"): `raw` already holds the integers; kind "onnx": `model` is the
    host's input-quantization sub-model, whose output divided by `scale` and rounded is the input.
    """
    if kind != "onnx":
        x = np.asarray(raw)
        if not np.all(x == np.rint(x)):
            raise ValueError("declared integer input contains non-integer values")
        return nchw_to_nhwc(x.astype(np.int64))
    from qonnx.core.onnx_exec import execute_onnx

    sub = _input_quant_model(model)
    out = execute_onnx(sub, {sub.graph.input[0].name: np.asarray(raw, dtype=np.float32)})[sub.graph.output[0].name]
    return nchw_to_nhwc(np.rint(out / np.float32(scale)).astype(np.int64))


def dataflow_input(graph: DataflowGraph, raw: np.ndarray) -> np.ndarray:
    """The first layer's integer NHWC input for user input `raw` (NCHW, batch first)."""
    iq = graph.input_quant
    x = integer_input("integer", 1.0, b"", raw) if iq is None else integer_input(iq.kind, iq.scale, iq.model, raw)
    if not graph.input.dtype.allowed(x):
        raise ValueError(f"input values outside {graph.input.dtype.name}")
    return x


def final_output(graph: DataflowGraph, y: np.ndarray) -> np.ndarray:
    """The model's output for the last layer's integer output `y` (logits as float32, or top-K indices)."""
    if graph.output_affine is None:
        return y.reshape(y.shape[0], -1)
    values = graph.output_affine.apply(y)
    return values.reshape(values.shape[0], -1) if values.shape[1:3] == (1, 1) else values.transpose(0, 3, 1, 2)

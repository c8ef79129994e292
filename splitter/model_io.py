"""Host-side conversions around the dataflow: user input -> first integer tensor -> ... -> final output.

What the laptop does to a model's inputs and outputs (orchestrator/dataplane/bundle_io.py applies it from a
bundle's manifest; the tests call it directly).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import onnx

from splitter.graph import Affine, DataflowGraph, InputQuant


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


def integer_input(kind: str, scale: float, model: bytes, raw: np.ndarray, factor: int = 1,
                  shift: tuple[int, ...] = ()) -> np.ndarray:
    """The first layer's integer NHWC input for user input `raw` (NCHW, batch first).

    kind "declared" (or "integer"): `raw` already holds the integers x, sent as x * factor - shift[c]
    (factor 1 and no shift unless a padded first convolution needs them, splitter/lowering/shift.py);
    kind "onnx": `model` is the host's input-quantization sub-model, whose output divided by `scale`
    and rounded is the input.
    """
    if kind != "onnx":
        x = np.asarray(raw)
        if not np.all(x == np.rint(x)):
            raise ValueError("declared integer input contains non-integer values")
        x = x.astype(np.int64) * int(factor)
        if shift:
            x = x - np.asarray(shift, dtype=np.int64).reshape((1, -1) + (1,) * (x.ndim - 2))
        return nchw_to_nhwc(x)
    from qonnx.core.onnx_exec import execute_onnx

    sub = _input_quant_model(model)
    out = execute_onnx(sub, {sub.graph.input[0].name: np.asarray(raw, dtype=np.float32)})[sub.graph.output[0].name]
    return nchw_to_nhwc(np.rint(out / np.float32(scale)).astype(np.int64))


def dataflow_input(graph: DataflowGraph, raw: np.ndarray) -> np.ndarray:
    """The first layer's integer NHWC input for user input `raw` (NCHW, batch first)."""
    iq = graph.input_quant
    if iq is None:
        x = integer_input("integer", 1.0, b"", raw)
    else:
        x = integer_input(iq.kind, iq.scale, iq.model, raw, iq.factor, iq.shift)
    if not graph.input.dtype.allowed(x):
        raise ValueError(f"input values outside {graph.input.dtype.name}")
    return x


def final_output(graph: DataflowGraph, y: np.ndarray) -> np.ndarray:
    """The model's output for the last layer's integer output `y` (logits as float32, or top-K indices)."""
    stage = graph.output_stage
    return model_output(y, graph.output_affine, None if stage is None else (stage.model, stage.input_shape))


def model_output(y: np.ndarray, affine: Affine | None, stage: tuple[bytes, Sequence[int]] | None) -> np.ndarray:
    """The one conversion from the last board's integer NHWC output `y` (batch first) to the model's output.

    The output affine (float32), then the host's output stage (onnxruntime) if there is one; a
    spatial output comes back in the model's NCHW layout, one pixel as (N, C). Used by the tests
    (final_output) and by what users run (orchestrator.dataplane.bundle_io.finish_output) alike.
    """
    if affine is None:
        return y.reshape(y.shape[0], -1)
    values = affine.apply(y)
    if stage is not None:
        return run_output_stage(stage[0], to_onnx_layout(values, stage[1]))
    return values.reshape(values.shape[0], -1) if values.shape[1:3] == (1, 1) else values.transpose(0, 3, 1, 2)


def to_onnx_layout(values: np.ndarray, shape: tuple[int, ...] | list[int]) -> np.ndarray:
    """NHWC dataflow values as the ONNX tensor of `shape` (NCHW, or (N, C) for one pixel)."""
    if len(shape) == 4:
        values = values.reshape(values.shape[0], int(shape[2]), int(shape[3]), int(shape[1])).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(values.reshape(values.shape[0], *(int(d) for d in shape[1:])), dtype=np.float32)


@functools.lru_cache(maxsize=4)
def _stage_session(model: bytes):  # an onnxruntime InferenceSession, made once per stage
    import onnxruntime

    return onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])


def run_output_stage(model: bytes, x: np.ndarray) -> np.ndarray:
    """The host's output stage (float ONNX ops after the last board) on `x`, with onnxruntime."""
    session = _stage_session(model)
    return session.run(None, {session.get_inputs()[0].name: x})[0]

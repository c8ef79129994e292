"""The laptop's part of the model, from the bundle manifest: input quantization and output affine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from splitter.errors import FinnsplitError


class HostInputError(FinnsplitError):
    """A user input that does not match what the model's first board expects."""


def _to_nhwc(x: np.ndarray, shape: list[int]) -> np.ndarray:
    """ONNX layout (NCHW, or flat) -> the dataflow's NHWC, as splitter.host does."""
    return (x.transpose(0, 2, 3, 1) if x.ndim == 4 else x).reshape(shape)


def prepare_input(manifest: dict[str, Any], root: str | Path, raw: np.ndarray) -> np.ndarray:
    """The first board's integer NHWC tensor for one user input (NCHW as the original model takes it)."""
    spec = manifest["input"]
    host = manifest["host"]["input"]
    if host["kind"] == "onnx":
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx

        sub = ModelWrapper(str(Path(root) / manifest["host"]["files"]["input_quant"]["path"]))
        out = execute_onnx(sub, {sub.graph.input[0].name: np.asarray(raw, dtype=np.float32)})
        values = np.rint(out[sub.graph.output[0].name] / np.float32(host["scale"]))
    else:
        values = np.asarray(raw)
        if not np.all(values == np.rint(values)):
            raise HostInputError(f"input must hold integers of {spec['dtype']} (raw pixels), got fractional values")
    values = values.astype(np.int64)
    if values.size != int(np.prod(spec["shape"])):
        raise HostInputError(f"input has {values.size} values, the first board expects shape {spec['shape']}")
    return _to_nhwc(values, spec["shape"])


def finish_output(manifest: dict[str, Any], y: np.ndarray) -> np.ndarray:
    """The model's output (float32 logits, or integer labels) for the last board's integer output."""
    host = manifest["host"]["output"]
    flat = np.asarray(y).reshape(1, -1)
    if host["kind"] != "affine":
        return flat
    scale = np.asarray(host["scale"], dtype=np.float32)
    bias = np.asarray(host["bias"], dtype=np.float32)
    return flat.astype(np.float32) * scale + bias

"""A bundle's host conversions, from its manifest: input quantization, host stages and the output affine."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from core.errors import FinnsplitError
from core.manifest import Manifest
from splitter.graph import Affine
from splitter.model_io import integer_input, model_output


class HostInputError(FinnsplitError):
    """A user input that does not match what the model's first board expects."""


def prepare_input(manifest: Manifest, root: str | Path, raw: np.ndarray) -> np.ndarray:
    """The first board's integer NHWC tensor for one user input (NCHW as the original model takes it)."""
    spec = manifest.input
    host = manifest.host.input
    model = b""
    if host.kind == "onnx":
        path = Path(root) / manifest.host.files["input_quant"].path
        model = _host_file(str(path), path.stat().st_mtime_ns)
    try:
        values = integer_input(host.kind, 1.0 if host.scale is None else host.scale, model, raw,
                               1 if host.factor is None else host.factor, tuple(host.shift or ()))
    except ValueError:
        raise HostInputError(f"input must hold integers of {spec.dtype} (raw pixels), "
                             "got fractional values") from None
    if values.size != int(np.prod(spec.shape)):
        raise HostInputError(f"input has {values.size} values, the first board expects shape {list(spec.shape)}")
    return values.reshape(spec.shape)


@functools.lru_cache(maxsize=4)
def _host_file(path: str, mtime_ns: int) -> bytes:
    """A bundle's host file, read once per version (not once per input)."""
    return Path(path).read_bytes()


def finish_output(manifest: Manifest, y: np.ndarray, root: str | Path | None = None) -> np.ndarray:
    """The model's output (float32 logits, or integer labels) for the last board's integer output.

    splitter.model_io.model_output with the manifest's output affine and host output stage (Softmax,
    float post-processing; its file is read from the bundle at `root`): the tests' conversion.
    """
    host = manifest.host.output
    values = np.asarray(y).reshape(1, *manifest.output.shape[1:])
    if host.kind != "affine":
        return values.reshape(1, -1)
    affine = Affine(np.asarray(host.scale), np.asarray(host.bias))
    stage = host.stage
    if stage is None:
        return model_output(values, affine, None)
    if root is None:
        raise ValueError("this bundle has a host output stage: finish_output needs the bundle folder (root)")
    path = Path(root) / manifest.host.files["output_stage"].path
    return model_output(values, affine, (_host_file(str(path), path.stat().st_mtime_ns), list(stage.shape)))

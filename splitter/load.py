"""Reading a model and how its input is quantized: what `build`, `inspect` and the reference checks share.

Below the CLI (cli/model.py) and the runtime commands, so both can call it without importing each other.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import click

from core.errors import FinnsplitError

if TYPE_CHECKING:
    import onnx

    from core.manifest import Manifest
    from splitter.graph import DataflowGraph
    from splitter.lowering import InputSpec


def _number(text: str) -> float:
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(f"{text!r} is not a number (fractions such as 1/255 are fine)") from None


def resolve_input_spec(
    input_dtype: str | None, input_scale: str | None, mean: str | None, std: str | None
) -> InputSpec | None:
    """An InputSpec from the CLI options, or None when none was given."""
    from core.datatypes import datatype
    from splitter.lowering import InputSpec

    if input_dtype is None:
        if input_scale or mean or std:
            raise click.UsageError("--input-scale/--mean/--std need --input-dtype as well")
        return None
    means = tuple(_number(v) for v in mean.split(",")) if mean else ()
    if std and "," in std:
        raise click.UsageError("--std takes one value: a per-channel std cannot be folded into integer weights")
    return InputSpec(datatype(input_dtype), _number(input_scale or "1"), means, _number(std) if std else 1.0)


def input_spec_of_bundle(manifest: Manifest) -> InputSpec | None:
    """The declared input quantization a bundle was built with (manifest host.input), None if not declared."""
    from core.datatypes import datatype
    from splitter.lowering import InputSpec

    host = manifest.host.input
    if host.kind != "declared":
        return None  # the model quantizes its input itself, or takes integers
    return InputSpec(datatype(host.dtype), float(host.scale or 0.0), tuple(float(m) for m in host.mean or ()),
                     float(1.0 if host.std is None else host.std))


def load_and_lower(
    model_path: str, spec: InputSpec | None, name: str | None = None
) -> tuple[onnx.ModelProto, DataflowGraph]:
    """Read a QONNX file, import it as FINN does and lower it (the zoo's declared input when it came from the zoo).

    Returns the imported model (qonnx's cleanup applied, every shape inferred: what the graph's
    reference names) and the dataflow graph.
    """
    import onnx

    from splitter.lowering import lower_model

    path = Path(model_path)
    if not path.is_file():
        raise FinnsplitError(f"model file {model_path!r} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises several unrelated types for a bad file
        raise FinnsplitError(f"{model_path}: not a readable ONNX model ({exc})") from None
    if spec is None:
        spec = _declared_in_metadata(model)
    return lower_model(model, name or path.stem.replace(" ", "_"), spec)


def _declared_in_metadata(model):
    """The input quantization a zoo export recorded in its metadata, if any."""
    meta = {p.key: p.value for p in model.metadata_props}
    if "finnsplit.input_dtype" not in meta:
        return None
    return resolve_input_spec(
        meta["finnsplit.input_dtype"],
        meta.get("finnsplit.input_scale"),
        meta.get("finnsplit.mean") or None,
        meta.get("finnsplit.std") or None,
    )

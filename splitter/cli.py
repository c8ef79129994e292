"""The `finnsplit` command line."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import click

from splitter.errors import FinnsplitError


def _number(text: str) -> float:
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(f"{text!r} is not a number (fractions such as 1/255 are fine)") from None


def input_options(func):
    """The options that declare how a float model input is quantized."""
    options = [
        click.option("--input-dtype", help="Integer datatype of the raw input, e.g. UINT8."),
        click.option("--input-scale", help="Real value of one input step, e.g. 1/255."),
        click.option("--mean", help="Per-channel mean subtracted after scaling, e.g. 0.485,0.456,0.406."),
        click.option("--std", help="One standard deviation divided by after the mean, e.g. 0.226."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def resolve_input_spec(input_dtype: str | None, input_scale: str | None, mean: str | None, std: str | None):
    """An InputSpec from the CLI options, or None when none was given."""
    from splitter.datatypes import datatype
    from splitter.lowering import InputSpec

    if input_dtype is None:
        if input_scale or mean or std:
            raise click.UsageError("--input-scale/--mean/--std need --input-dtype as well")
        return None
    means = tuple(_number(v) for v in mean.split(",")) if mean else ()
    if std and "," in std:
        raise click.UsageError("--std takes one value: a per-channel std cannot be folded into integer weights")
    return InputSpec(datatype(input_dtype), _number(input_scale or "1"), means, _number(std) if std else 1.0)


def load_and_lower(model_path: str, spec, name: str | None = None):
    """Read a QONNX file and lower it, with the zoo's declared input when the file came from the zoo."""
    import onnx

    from splitter.lowering import lower

    path = Path(model_path)
    if not path.is_file():
        raise FinnsplitError(f"model file {model_path!r} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises several unrelated types for a bad file
        raise FinnsplitError(f"{model_path}: not a readable ONNX model ({exc})") from None
    if spec is None:
        spec = _declared_in_metadata(model)
    return model, lower(model, name or path.stem.replace(" ", "_"), spec)


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


@click.group()
@click.version_option(package_name="finnsplit")
def cli() -> None:
    """Split a quantized CNN across a chain of small FPGA boards, built with FINN."""


@cli.command()
@click.argument("name", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Where to write the QONNX model.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random weights.")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), help="Load real weights (state_dict).")
@click.option("--torchscript", is_flag=True, help="Use brevitas' TorchScript exporter instead of dynamo.")
def zoo(name: str | None, output: str | None, seed: int, checkpoint: str | None, torchscript: bool) -> None:
    """Export a test model (list them without NAME)."""
    from splitter import zoo as zoo_models

    if name is None:
        for entry in zoo_models.MODELS.values():
            click.echo(f"{entry.name:<20} {entry.description}")
        return
    path = zoo_models.export(name, output or f"{name}.onnx", seed=seed, checkpoint=checkpoint, dynamo=not torchscript)
    click.echo(f"wrote {path}")


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@input_options
def inspect(model: str, input_dtype, input_scale, mean, std) -> None:
    """Print the dataflow layer table of a QONNX model."""
    from splitter.inspect import format_table

    _, graph = load_and_lower(model, resolve_input_spec(input_dtype, input_scale, mean, std))
    click.echo(format_table(graph))


def main() -> None:
    """Entry point: run the CLI, printing finnsplit errors without a traceback."""
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except FinnsplitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)

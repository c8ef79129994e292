"""The model side of `finnsplit`: zoo, inspect, build, finn-build (composed by cli/main.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.common import progress_printer, quantization_options
from core.errors import FinnsplitError
from splitter.load import load_and_lower, resolve_input_spec

if TYPE_CHECKING:
    from splitter.build import BuildConfig


@click.command()
@click.argument("name", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Where to write the QONNX model.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random weights.")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), help="Load real weights (state_dict).")
@click.option("--torchscript", is_flag=True, help="brevitas 0.13: its TorchScript exporter instead of dynamo.")
@click.option("--exporter", type=click.Choice(["brevitas-0.13", "brevitas-0.10"]), default="brevitas-0.13",
              show_default=True, help="brevitas-0.10: FINN's pinned brevitas, run in FINN's venv (.venv-finn).")
def zoo(name: str | None, output: str | None, seed: int, checkpoint: str | None, torchscript: bool,
        exporter: str) -> None:
    """Export a test model (list them without NAME)."""
    from splitter import zoo as zoo_models

    if name is None:
        for entry in zoo_models.MODELS.values():
            click.echo(f"{entry.name:<20} {entry.description}")
        return
    if torchscript and exporter != "brevitas-0.13":
        raise click.UsageError("--torchscript selects brevitas 0.13's TorchScript exporter; brevitas 0.10 has only it")
    path = zoo_models.export(name, output or f"{name}.onnx", seed=seed, checkpoint=checkpoint,
                             dynamo=not torchscript, exporter=exporter)
    click.echo(f"wrote {path}")


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@quantization_options
def inspect(model: str, input_dtype: str | None, input_scale: str | None, mean: str | None, std: str | None) -> None:
    """Print the dataflow layer table of a QONNX model."""
    from splitter.inspect import format_table

    _, graph = load_and_lower(model, resolve_input_spec(input_dtype, input_scale, mean, std))
    click.echo(format_table(graph))


def _objective(objective: str | None, target_fps: float | None, strategy: str) -> str:
    """The build's objective; "boards" and "power" need --target-fps, the others refuse it."""
    if objective is None:
        return "boards" if target_fps is not None else "fps"
    if strategy == "balanced" and (objective in ("boards", "power")) != (target_fps is not None):
        if target_fps is None:
            raise click.UsageError(f"--objective {objective} needs --target-fps (the rate to meet)")
        raise click.UsageError(f"--objective {objective} is for plans without --target-fps; with a target, "
                               "use --objective boards (fewest boards) or power (least power)")
    return objective


@click.command()
@click.argument("model", type=click.Path(dir_okay=False), required=False)
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="A build.yaml whose keys are these options' fields (docs/config.md#build-config); "
                   "options given here override its values.")
@click.option("--boards", default="6", show_default=True,
              help="Number of boards of --board, or a list such as zedboard:4,pynq-z2:2.")
@click.option("--board", default="zedboard", show_default=True, help="Board type when --boards is a number.")
@click.option("--strategy", type=click.Choice(["balanced", "greedy"]), default="balanced", show_default=True,
              help="balanced: fastest pipeline; greedy: the reference paper's fixed folding, boards filled in order.")
@click.option("--target-fps", type=float,
              help="balanced: the fewest boards that reach this rate; greedy: FINN SetFolding's target "
                   "(default PE=SIMD=1).")
@click.option("--power-cap", "power_cap", type=float, help="balanced: the best plan predicted to draw at most W watts.")
@click.option("--objective", type=click.Choice(["fps", "fps-per-watt", "boards", "power"]), default=None,
              help="balanced: the fastest plan (fps, the default), or the one with the most frames per joule; "
                   "with --target-fps: the fewest boards (boards, the default) or the least power meeting it.")
@click.option("--link-gbps", type=float, help="Override the boards' link rate (Gbit/s).")
@click.option("--no-replicate", is_flag=True, help="Never run a stage on several boards.")
@click.option("--thresholds", type=click.Choice(["choose", "embedded", "standalone"]), default="choose",
              show_default=True, help="MVAU/VVAU thresholds: chosen per layer, in the layer (FINN's default) "
                                      "or a Thresholding_rtl after each.")
@click.option("--finn", type=click.Choice(["auto", "yes", "no", "estimates"]), default="auto", show_default=True,
              help="Build bitstreams with FINN: when installed (auto), required (yes), or not (no); or run FINN "
                   "only to its estimate reports (estimates: FINN's Python, no Vivado).")
@click.option("--finn-jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --finn estimates: partitions run at once.")
@click.option("-o", "--output", default="build", show_default=True, type=click.Path(file_okay=False),
              help="Bundle directory (an older bundle there is replaced).")
@quantization_options
@click.pass_context
def build(ctx: click.Context, model: str | None, config_file: str | None, boards: str, board: str, strategy: str,
          target_fps: float | None, power_cap: float | None, objective: str | None, link_gbps: float | None,
          no_replicate: bool, thresholds: str, finn: str, finn_jobs: int, output: str, input_dtype: str | None,
          input_scale: str | None, mean: str | None, std: str | None) -> None:
    """Split MODEL over boards and write a deployment bundle (MODEL may come from --config's `model:`)."""
    from splitter.build import build as run_build
    from splitter.report import format_plan

    options = {"model": model, "output": output, "boards": boards, "board": board, "strategy": strategy,
               "target_fps": target_fps, "power_cap_w": power_cap, "objective": objective, "link_gbps": link_gbps,
               "replicate": not no_replicate, "thresholds": thresholds, "finn": finn, "finn_jobs": finn_jobs,
               "input_spec": (input_dtype, input_scale, mean, std)}
    cfg = _build_config(ctx, config_file, options)
    state = run_build(cfg, progress_printer())
    click.echo(format_plan(state.plan))
    if state.finn_estimates:
        from splitter.report import format_finn_estimates

        click.echo("FINN's estimates (FINN / the plan's FINN term):")
        click.echo(format_finn_estimates(state.finn_estimates))
    from splitter.inspect import host_lines

    for line in host_lines(state.graph):
        click.echo(f"host {line}")
    for note in (*state.graph.notes, *state.notes):
        click.echo(f"note: {note}")


# The build command's parameters behind each BuildConfig field (input_spec: the four input options).
_BUILD_PARAMS = {"power_cap_w": ("power_cap",), "replicate": ("no_replicate",),
                 "input_spec": ("input_dtype", "input_scale", "mean", "std")}


def _build_config(ctx: click.Context, config_file: str | None, options: dict) -> BuildConfig:
    """BuildConfig's defaults, overridden by the build file's values, overridden by options given here."""
    from click.core import ParameterSource

    from splitter.boards import parse_board_list
    from splitter.build import BuildConfig
    from splitter.build_file import input_spec_options, read_build_file

    values = read_build_file(config_file) if config_file else {}
    if "input_spec" in values:
        values["input_spec"] = input_spec_options(values["input_spec"])
    for key, value in options.items():
        given = [ctx.get_parameter_source(p) for p in _BUILD_PARAMS.get(key, (key,))]
        if any(g not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP) for g in given):
            values[key] = value
        values.setdefault(key, value)
    if values["model"] is None:
        raise click.UsageError("missing MODEL: give it as an argument or as `model:` in --config")
    values["input_spec"] = resolve_input_spec(*values["input_spec"])
    parse_board_list(values["boards"], values["board"])  # a bad --boards is reported before the model is read
    values["objective"] = _objective(values["objective"], values["target_fps"], values["strategy"])
    return BuildConfig(**values)


@click.command("finn-build")
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--partition", "partitions", type=int, multiple=True, help="Only this partition (repeatable).")
@click.option("--estimates-only", is_flag=True,
              help="FINN's flow up to its estimate reports, in FINN's own Python (no Vivado needed).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --estimates-only: partitions built at once.")
@click.option("--codegen", is_flag=True, help="With --estimates-only: also run step_hw_codegen.")
@click.option("--verify", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --estimates-only: run FINN's execution of each partition on N seeded frames and "
                   "compare with finnsplit's executor at every boundary.")
def finn_build(bundle: str, partitions: tuple[int, ...], estimates_only: bool, jobs: int, codegen: bool,
               verify: int) -> None:
    """Build a bundle's partitions with FINN: bitstreams (FINN's docker) or FINN's estimates (anywhere)."""
    if not estimates_only:
        if jobs != 1 or codegen or verify:
            raise click.UsageError("--jobs, --codegen and --verify go with --estimates-only")
        from splitter.finn import run_builds

        for bitfile in run_builds(Path(bundle), list(partitions) or None, progress_printer()):
            click.echo(f"bitstream: {bitfile}")
        return
    from splitter.finn_check import finn_estimates
    from splitter.report import format_finn_estimates

    results, problems = finn_estimates(Path(bundle), list(partitions) or None, jobs, codegen, verify,
                                       progress_printer())
    click.echo(format_finn_estimates(results, verify))
    if problems:
        raise FinnsplitError("FINN and the plan disagree:\n  " + "\n  ".join(problems))


COMMANDS = (zoo, inspect, build, finn_build)

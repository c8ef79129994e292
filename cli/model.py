"""The `finnsplit` command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from core.errors import ConfigError, FinnsplitError
from splitter.load import load_and_lower, resolve_input_spec

if TYPE_CHECKING:
    from splitter.build import BuildConfig


def input_options(func: Callable) -> Callable:
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


@click.group()
@click.version_option(package_name="finnsplit")
def cli() -> None:
    """Split a quantized CNN across a chain of small FPGA boards, built with FINN."""


@cli.command()
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


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@input_options
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


@cli.command()
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
@input_options
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
    state = run_build(cfg, _progress())
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


@cli.command("finn-build")
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

        for bitfile in run_builds(Path(bundle), list(partitions) or None, _progress()):
            click.echo(f"bitstream: {bitfile}")
        return
    from splitter.report import format_finn_estimates

    results, problems = finn_estimates(Path(bundle), list(partitions) or None, jobs, codegen, verify, _progress())
    click.echo(format_finn_estimates(results, verify))
    if problems:
        raise FinnsplitError("FINN and the plan disagree:\n  " + "\n  ".join(problems))


def finn_estimates(bundle: Path, partitions: list[int] | None, jobs: int, codegen: bool, verify: int,
                   progress: Callable[[str], None]) -> tuple[list, list[str]]:
    """FINN's estimate flow on a bundle (and with `verify`, FINN's execution); results and every disagreement."""
    from splitter.finn.estimates import run_estimates
    from splitter.finn_check import boundary_frames, check_finn_outputs

    frames = None
    if verify:
        progress(f"executor: {verify} seeded frame(s) through every partition (FINN's inputs and expected outputs)")
        frames = boundary_frames(bundle, verify)
    results = run_estimates(bundle, partitions, jobs, codegen, frames.inputs if frames else None, progress)
    problems = [f"partition {r.index}: {m}" for r in results for m in r.comparison.get("mismatches", [])]
    if frames is not None:
        problems += check_finn_outputs(bundle, results, frames)
    return results, problems


def _progress() -> Callable[[str], None]:
    """A progress printer that stamps each line with the seconds since the command started."""
    from orchestrator.commands import progress_printer

    return progress_printer()


def _register_runtime_commands() -> None:
    """`virtual`, `run`, `daemon`: the deployment side, and `calibrate`, composed into one `finnsplit` command."""
    from orchestrator.commands import COMMANDS
    from splitter.calibration_cli import calibrate

    for command in (*COMMANDS, calibrate):
        cli.add_command(command)


_register_runtime_commands()


def main() -> None:
    """Entry point: run the CLI, printing finnsplit errors without a traceback."""
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:  # one line per problem of the file
        for line in str(exc).splitlines():
            click.echo(f"error: {line}", err=True)
        sys.exit(2)
    except FinnsplitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)

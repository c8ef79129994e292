"""The `finnsplit` command line."""

from __future__ import annotations

import contextlib
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


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--boards", default="6", show_default=True,
              help="Number of boards of --board, or a list such as zedboard:4,pynq-z2:2.")
@click.option("--board", default="zedboard", show_default=True, help="Board type when --boards is a number.")
@click.option("--strategy", type=click.Choice(["balanced", "greedy"]), default="balanced", show_default=True,
              help="balanced: fastest pipeline; greedy: the reference paper's fixed folding, boards filled in order.")
@click.option("--target-fps", type=float, help="greedy only: FINN SetFolding target (default PE=SIMD=1).")
@click.option("--link-gbps", type=float, help="Override the boards' link rate (Gbit/s).")
@click.option("--no-replicate", is_flag=True, help="Never run a stage on several boards.")
@click.option("--finn", type=click.Choice(["auto", "yes", "no"]), default="auto", show_default=True,
              help="Build bitstreams with FINN: when installed (auto), required (yes), or not (no).")
@click.option("-o", "--output", default="build", show_default=True, type=click.Path(file_okay=False),
              help="Bundle directory (an older bundle there is replaced).")
@input_options
def build(model: str, boards: str, board: str, strategy: str, target_fps: float | None, link_gbps: float | None,
          no_replicate: bool, finn: str, output: str, input_dtype, input_scale, mean, std) -> None:
    """Split MODEL over boards and write a deployment bundle."""
    from splitter.build import BuildConfig
    from splitter.build import build as run_build
    from splitter.report import format_plan

    cfg = BuildConfig(model=model, output=output, boards=boards, board=board, strategy=strategy,
                      target_fps=target_fps, link_gbps=link_gbps, replicate=not no_replicate,
                      input_spec=resolve_input_spec(input_dtype, input_scale, mean, std), finn=finn)
    state = run_build(cfg, _progress())
    click.echo(format_plan(state.plan))
    for note in state.notes:
        click.echo(f"note: {note}")


@cli.command("finn-build")
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--partition", "partitions", type=int, multiple=True, help="Only this partition (repeatable).")
def finn_build(bundle: str, partitions: tuple[int, ...]) -> None:
    """Build a bundle's partitions to bitstreams with FINN (inside FINN's docker)."""
    from splitter.finn import run_builds

    for bitfile in run_builds(Path(bundle), list(partitions) or None, _progress()):
        click.echo(f"bitstream: {bitfile}")


@cli.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--images", default=32, show_default=True, help="Seeded random inputs to send.")
@click.option("--inputs", type=click.Path(exists=True, dir_okay=False),
              help="A .npy file of inputs (N first, original model layout) instead of random ones.")
@click.option("--seed", default=0, show_default=True)
@click.option("--check", "check_model", type=click.Path(exists=True, dir_okay=False),
              help="The original QONNX model: compare every output with the bit-exact Python executor "
                   "and the first few with the model itself (qonnx).")
@click.option("--logs", default=None, type=click.Path(file_okay=False), help="Server logs (default BUNDLE/logs).")
@click.option("--netns", is_flag=True, help="Each board in its own network namespace (needs root).")
@click.option("--link-mbit", type=float, help="With --netns: shape every board's link to this rate, e.g. 1000.")
def virtual(bundle: str, images: int, inputs: str | None, seed: int, check_model: str | None,
            logs: str | None, netns: bool, link_mbit: float | None) -> None:
    """Run a bundle on virtual boards: one emulate server per partition, on loopback or in namespaces."""
    import numpy as np

    from orchestrator.host import finish_output
    from orchestrator.virtual import infer_on_virtual_boards, random_inputs
    from splitter.bundle.manifest import load_manifest

    manifest = load_manifest(bundle)
    raws = list(np.load(inputs)) if inputs else random_inputs(manifest, images, seed)
    raws = [r.reshape(1, *r.shape) if r.ndim == len(manifest["host"]["model_input"]["shape"]) - 1 else r for r in raws]
    progress = _progress()
    progress(f"{len(manifest['partitions'])} virtual boards, {len(raws)} inputs")
    if link_mbit is not None and not netns:
        raise click.UsageError("--link-mbit shapes namespace links: add --netns")
    with contextlib.ExitStack() as stack:
        network = None
        if netns:
            from orchestrator.netns import NetworkConfig, VirtualNetwork

            network = stack.enter_context(VirtualNetwork(NetworkConfig(len(manifest["partitions"]),
                                                                       rate_mbit=link_mbit)))
            progress(f"namespaces {network.namespace(0)}.. on {network.config.subnet}.0/24"
                     + (f", links shaped to {link_mbit:g} Mbit/s" if link_mbit else ""))
        outputs, seconds = infer_on_virtual_boards(bundle, raws, logs or str(Path(bundle) / "logs"), network)
    click.echo(f"{len(raws)} frames through {len(manifest['partitions'])} virtual boards in {seconds:.2f} s: "
               f"{len(raws) / seconds:.1f} fps (emulated on this machine's CPU; predicted on boards "
               f"{manifest['plan']['fps']:.1f} fps)")
    results = [finish_output(manifest, y) for y in outputs]
    click.echo(f"top-1 of the first inputs: {[int(np.argmax(r)) for r in results[:8]]}")
    if check_model:
        _check_against_model(check_model, manifest, bundle, raws, outputs, results, progress)


@cli.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--fleet", "fleet_path", type=click.Path(exists=True, dir_okay=False), help="fleet.yaml of real boards.")
@click.option("--virtual-fleet", "spares", type=int, default=None,
              help="Make a virtual fleet (namespaces, sshd, Mosquitto, agents; root): one board per partition "
                   "plus this many spares per board type.")
@click.option("--link-mbit", type=float, help="Virtual fleet: shape every board's link, e.g. 1000.")
@click.option("--kill-after", type=int, help="Virtual fleet: kill the board of stage 1 after this many results.")
@click.option("--backend", default="emulate", show_default=True, help="The boards' backend: emulate or finn-zynq.")
@click.option("--images", default=64, show_default=True, help="Seeded random inputs to send.")
@click.option("--inputs", type=click.Path(exists=True, dir_okay=False), help="A .npy file of inputs instead.")
@click.option("--seed", default=0, show_default=True)
@click.option("--check", "check_model", type=click.Path(exists=True, dir_okay=False),
              help="The original QONNX model: compare outputs with the Python executor and qonnx.")
def run(bundle: str, fleet_path: str | None, spares: int | None, link_mbit: float | None, kill_after: int | None,
        backend: str, images: int, inputs: str | None, seed: int, check_model: str | None) -> None:
    """Deploy BUNDLE to a fleet over SSH, start it over MQTT, stream inputs, keep it running through failures."""
    import numpy as np

    from orchestrator.daemon import DaemonConfig
    from orchestrator.fleet import load_fleet
    from orchestrator.host import finish_output, prepare_input
    from orchestrator.session import FleetSession
    from orchestrator.virtual import random_inputs
    from splitter.bundle.manifest import load_manifest

    if (fleet_path is None) == (spares is None):
        raise click.UsageError("give exactly one of --fleet FLEET.yaml and --virtual-fleet SPARES")
    if (kill_after is not None or link_mbit is not None) and spares is None:
        raise click.UsageError("--kill-after and --link-mbit need --virtual-fleet")
    manifest = load_manifest(bundle)
    progress = _progress()
    raws = list(np.load(inputs)) if inputs else random_inputs(manifest, images, seed)
    tensors = [prepare_input(manifest, bundle, raw) for raw in raws]
    with contextlib.ExitStack() as stack:
        vfleet = None
        if spares is not None:
            from orchestrator.vfleet import VirtualFleet

            types = [p["board"] for p in manifest["partitions"]]
            boards = [(f"vb{i}", t) for i, t in enumerate(types)]
            boards += [(f"spare{j}-{t}", t) for t in dict.fromkeys(types) for j in range(spares)]
            progress(f"virtual fleet: {len(boards)} boards ({spares} spare per type), sshd + agent each")
            vfleet = stack.enter_context(VirtualFleet(Path(bundle).resolve().parent / ".vfleet", boards,
                                                      rate_mbit=link_mbit, heartbeat_s=0.5))
            fleet_path = str(vfleet.fleet_path)
        cfg = DaemonConfig(backend=backend, heartbeat_timeout_s=2.0 if vfleet else 5.0)
        session = FleetSession(load_fleet(fleet_path), bundle, cfg, progress)
        stack.callback(session.close)
        stages = session.wait_running()
        progress("pipeline running: " + ", ".join(f"partition {k} on {b}" for k, b in sorted(stages.items())))
        report = session.stream(tensors, vfleet.kill if vfleet else None, kill_after)
    click.echo(f"{len(tensors)} frames in {report.seconds:.2f} s: {len(tensors) / report.seconds:.1f} fps; "
               f"{report.resent} frames resent" + (f"; {report.killed} died, stages now "
               + ", ".join(f"{k}:{b}" for k, b in sorted(report.stages.items())) if report.killed else ""))
    results = [finish_output(manifest, y) for y in report.outputs]
    click.echo(f"top-1 of the first inputs: {[int(np.argmax(r)) for r in results[:8]]}")
    if check_model:
        _check_against_model(check_model, manifest, bundle, raws, report.outputs, results, progress)


@cli.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--fleet", "fleet_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--backend", default="emulate", show_default=True, help="The boards' backend: emulate or finn-zynq.")
@click.option("--report-s", default=5.0, show_default=True, help="Seconds between health reports.")
def daemon(bundle: str, fleet_path: str, backend: str, report_s: float) -> None:
    """Keep BUNDLE deployed and running on a fleet until interrupted, reporting health and the bottleneck."""
    import signal
    import threading

    from orchestrator.daemon import DaemonConfig
    from orchestrator.fleet import load_fleet
    from orchestrator.health import HealthTracker, format_health
    from orchestrator.session import FleetSession

    progress = _progress()
    session = FleetSession(load_fleet(fleet_path), bundle, DaemonConfig(backend=backend), progress)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    tracker = HealthTracker()
    try:
        while not done.wait(report_s):
            orch = session.orch
            stats = {name: orch.link.board(name).stats for name in orch.assignment.values()}
            click.echo(format_health(orch.state, tracker.sample(dict(orch.assignment), stats)))
    finally:
        session.close()


def _check_against_model(model_path: str, manifest: dict, bundle: str, raws: list, outputs: list, results: list,
                         progress) -> None:
    """Compare virtual-board outputs with the Python executor (all) and with qonnx (the first three)."""
    import numpy as np

    from orchestrator.host import prepare_input
    from splitter.executor import execute
    from splitter.host import model_float_input

    model, graph = load_and_lower(model_path, None)
    progress("checking against the Python executor")
    exact = sum(np.array_equal(execute(graph, prepare_input(manifest, bundle, raw)), y)
                for raw, y in zip(raws, outputs, strict=True))
    click.echo(f"bit-exact vs the Python executor: {exact}/{len(raws)} frames")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    wrapper = ModelWrapper(model)
    name = wrapper.graph.input[0].name
    count, same, top1, worst = min(3, len(raws)), 0, 0, 0.0
    progress(f"checking {count} inputs against the original model (qonnx execute_onnx)")
    for raw, result in zip(raws[:count], results[:count], strict=True):
        x = model_float_input(graph.input_quant, raw) if graph.input_quant.kind == "declared" else raw
        ref = np.asarray(execute_onnx(wrapper, {name: x})[wrapper.graph.output[0].name]).reshape(1, -1)
        same += int(np.array_equal(ref, result))
        top1 += int(np.argmax(ref) == np.argmax(result))
        worst = max(worst, float(np.max(np.abs(ref - result))))
    click.echo(f"vs the original QONNX model: identical outputs {same}/{count}, same top-1 {top1}/{count}, "
               f"largest difference {worst:.3g} (why they can differ: docs/lowering.md, float32 near-ties)")
    if exact != len(raws):
        raise FinnsplitError("virtual boards disagree with the Python executor")


def _progress():
    """A progress printer that stamps each line with the seconds since the command started."""
    import time

    start = time.perf_counter()
    return lambda message: click.echo(f"[{time.perf_counter() - start:6.1f}s] {message}", err=True)


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

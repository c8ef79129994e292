"""The runtime commands of `finnsplit`: virtual boards, fleets, the daemon, status (composed by cli/main.py).

Heavy imports happen inside the commands, so `finnsplit --help` stays fast.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.common import progress_printer, stream_input_options
from core.errors import FinnsplitError

if TYPE_CHECKING:
    from core.manifest import Manifest


@dataclass
class _UserInputs:
    """What the command line asked to send, and how to print its results."""

    names: list[str]  # one per input: the image file's name, or "random 3"
    raws: list  # the original model's input layout
    images: bool  # inputs are image files: print labelled top-K
    labels: list[str] | None  # class names (--labels)


def _inputs(manifest: Manifest, images: tuple[str, ...], inputs: str | None, random_count: int | None, seed: int,
            default_random: int, labels: str | None) -> _UserInputs:
    """The inputs, checked before anything starts; `--images 32` (before --random) means --random 32."""
    from orchestrator.dataplane.user_io import classes_of, load_labels, preprocessing_for, select_inputs

    if len(images) == 1 and images[0].isdigit() and not Path(images[0]).exists():
        click.echo(f"(--images {images[0]}: {images[0]} seeded random inputs, as --random {images[0]})", err=True)
        images, random_count = (), int(images[0])
    if not images and not inputs and random_count is None:
        random_count = default_random
    names, raws = select_inputs(manifest, images, random_count, inputs, seed)
    if images:
        click.echo(f"{len(raws)} images: {preprocessing_for(manifest).describe()}", err=True)
    return _UserInputs(names, raws, bool(images), load_labels(labels, classes_of(manifest)) if labels else None)


def _print_results(manifest: Manifest, given: _UserInputs, results: list, top: int) -> None:
    """Top-K with class names for images or labels; else the top-1 indices of the first eight."""
    import numpy as np

    from orchestrator.dataplane.user_io import format_top, outputs_are_labels

    if not given.images and given.labels is None:
        click.echo(f"top-1 of the first inputs: {[int(np.argmax(r)) for r in results[:8]]}")
        return
    for name, result in zip(given.names, results, strict=True):
        click.echo(format_top(name, result, top, given.labels, outputs_are_labels(manifest)))


@click.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@stream_input_options(default_random=32)
@click.option("--check", "check_model", type=click.Path(exists=True, dir_okay=False),
              help="The original QONNX model: compare every output with the bit-exact Python executor "
                   "and the first few with the model itself (qonnx).")
@click.option("--logs", default=None, type=click.Path(file_okay=False), help="Server logs (default BUNDLE/logs).")
@click.option("--netns", is_flag=True, help="Each board in its own network namespace (needs root).")
@click.option("--link-mbit", type=float, help="With --netns: shape every board's link to this rate, e.g. 1000.")
def virtual(bundle: str, images: tuple[str, ...], inputs: str | None, random_count: int | None, seed: int,
            labels: str | None, top: int, check_model: str | None, logs: str | None, netns: bool,
            link_mbit: float | None) -> None:
    """Run a bundle on virtual boards: one emulate server per partition, on loopback or in namespaces."""

    from core.manifest import load_manifest
    from orchestrator.dataplane.bundle_io import finish_output
    from orchestrator.rigs.virtual import board_count, infer_on_virtual_boards

    manifest = load_manifest(bundle)
    given = _inputs(manifest, images, inputs, random_count, seed, 32, labels)
    raws = given.raws
    progress = progress_printer()
    replicated = [p for p in manifest.partitions if p.replicas > 1]
    progress(f"{board_count(manifest)} virtual boards for {len(manifest.partitions)} partitions"
             + "".join(f", partition {p.index} on {p.replicas}" for p in replicated) + f"; {len(raws)} inputs")
    if link_mbit is not None and not netns:
        raise click.UsageError("--link-mbit shapes namespace links: add --netns")
    with contextlib.ExitStack() as stack:
        network = None
        if netns:
            from orchestrator.rigs.netns import NetworkConfig, VirtualNetwork

            network = stack.enter_context(VirtualNetwork(NetworkConfig(board_count(manifest), rate_mbit=link_mbit)))
            progress(f"namespaces {network.namespace(0)}.. on {network.config.subnet}.0/24"
                     + (f", links shaped to {link_mbit:g} Mbit/s" if link_mbit else ""))
        outputs, seconds = infer_on_virtual_boards(bundle, raws, logs or str(Path(bundle) / "logs"), network,
                                                   manifest)
    click.echo(f"{len(raws)} frames through {board_count(manifest)} virtual boards in {seconds:.2f} s: "
               f"{len(raws) / seconds:.1f} fps (emulated on this machine's CPU; predicted on boards "
               f"{manifest.plan.fps:.1f} fps)")
    results = [finish_output(manifest, y, bundle) for y in outputs]
    _print_results(manifest, given, results, top)
    if check_model:  # after the boards: on this machine's cores they would compete with the emulation
        from orchestrator.dataplane.reference_check import ReferenceCheck

        ReferenceCheck(check_model, manifest, bundle, raws).report(outputs, results, progress)


@click.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--fleet", "fleet_path", type=click.Path(exists=True, dir_okay=False), help="fleet.yaml of real boards.")
@click.option("--virtual-fleet", "spares", type=int, default=None,
              help="Make a virtual fleet (namespaces, sshd, Mosquitto, agents; root): one board per partition "
                   "plus this many spares per board type.")
@click.option("--link-mbit", type=float, help="Virtual fleet: shape every board's link, e.g. 1000.")
@click.option("--kill-after", type=int, help="Virtual fleet: kill the board of stage 1 (the second board of the "
              "chain: a replica, if the first partition is replicated) after this many results.")
@click.option("--backend", default="emulate", show_default=True, help="The boards' backend: emulate or finn-zynq.")
@stream_input_options(default_random=64)
@click.option("--check", "check_model", type=click.Path(exists=True, dir_okay=False),
              help="The original QONNX model: compare outputs with the Python executor and qonnx.")
def run(bundle: str, fleet_path: str | None, spares: int | None, link_mbit: float | None, kill_after: int | None,
        backend: str, images: tuple[str, ...], inputs: str | None, random_count: int | None, seed: int,
        labels: str | None, top: int, check_model: str | None) -> None:
    """Deploy BUNDLE to a fleet over SSH, start it over MQTT, stream inputs, keep it running through failures."""

    from core.manifest import load_manifest
    from orchestrator.control.daemon import DaemonConfig
    from orchestrator.control.fleet import load_fleet
    from orchestrator.control.session import FleetSession
    from orchestrator.dataplane.bundle_io import finish_output, prepare_input

    if (fleet_path is None) == (spares is None):
        raise click.UsageError("give exactly one of --fleet FLEET.yaml and --virtual-fleet SPARES")
    if (kill_after is not None or link_mbit is not None) and spares is None:
        raise click.UsageError("--kill-after and --link-mbit need --virtual-fleet")
    manifest = load_manifest(bundle)
    progress = progress_printer()
    given = _inputs(manifest, images, inputs, random_count, seed, 64, labels)
    raws = given.raws
    check = None
    if check_model:  # the references are computed while the fleet comes up (SSH, agents: waiting)
        from orchestrator.dataplane.reference_check import ReferenceCheck

        check = ReferenceCheck(check_model, manifest, bundle, raws)
    tensors = [prepare_input(manifest, bundle, raw) for raw in raws]
    with contextlib.ExitStack() as stack:
        vfleet = None
        if spares is not None:
            from orchestrator.rigs.vfleet import VirtualFleet

            types = [p.board for p in manifest.partitions for _ in range(p.replicas)]
            boards = [(f"vb{i}", t) for i, t in enumerate(types)]
            boards += [(f"spare{j}-{t}", t) for t in dict.fromkeys(types) for j in range(spares)]
            progress(f"virtual fleet: {len(boards)} boards ({spares} spare per type), sshd + agent each")
            vfleet = stack.enter_context(VirtualFleet(Path(bundle).resolve().parent / ".vfleet", boards,
                                                      rate_mbit=link_mbit, heartbeat_s=0.5))
            fleet_path = str(vfleet.fleet_path)
        cfg = DaemonConfig(backend=backend, heartbeat_timeout_s=2.0 if vfleet else 5.0)
        session = FleetSession(load_fleet(fleet_path), bundle, cfg, progress, manifest)
        stack.callback(session.close)
        stages = session.wait_running()
        if check is not None:  # done before streaming: the emulated boards need this machine's cores
            check.wait(progress)
        label = session.orch.label
        progress("pipeline running: " + ", ".join(f"partition {label(k)} on {b}" for k, b in sorted(stages.items())))
        from splitter.progress import ProgressBar, Watcher

        watcher = Watcher(ProgressBar("streaming", len(tensors)), lambda: session.client.delivered)
        try:
            report = session.stream(tensors, vfleet.kill if vfleet else None, kill_after)
        finally:
            watcher.stop()
    click.echo(f"{len(tensors)} frames in {report.seconds:.2f} s: {len(tensors) / report.seconds:.1f} fps; "
               f"{report.resent} frames resent" + (f"; {report.killed} died, stages now "
               + ", ".join(f"{label(k)}:{b}" for k, b in sorted(report.stages.items())) if report.killed else ""))
    results = [finish_output(manifest, y, bundle) for y in report.outputs]
    _print_results(manifest, given, results, top)
    if check is not None:
        check.report(report.outputs, results, progress)


@click.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--fleet", "fleet_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--backend", default="emulate", show_default=True, help="The boards' backend: emulate or finn-zynq.")
@click.option("--report-s", default=5.0, show_default=True, help="Seconds between health reports.")
@click.option("--web", metavar="HOST:PORT", help="Serve the live dashboard here (docs/dashboard.md).")
@click.option("--ingress", metavar="HOST:PORT", help="Take frames from other programs here (HTTPS, docs/ingress.md).")
@click.option("--ingress-token", type=click.Path(dir_okay=False),
              help="The ingress's token file (default: ingress.token beside the fleet's ca_file).")
def daemon(bundle: str, fleet_path: str, backend: str, report_s: float, web: str | None, ingress: str | None,
           ingress_token: str | None) -> None:
    """Keep BUNDLE deployed and running on a fleet until interrupted, reporting health and the bottleneck."""
    import signal
    import sys
    import threading

    from orchestrator.control.daemon import DaemonConfig
    from orchestrator.control.fleet import load_fleet
    from orchestrator.control.health import HealthTracker, format_health
    from orchestrator.control.session import FleetSession
    from orchestrator.web.daemon_web import RecentLog, check_options, start_dashboard, start_ingress
    from splitter.progress import echo

    progress = progress_printer()
    recent = RecentLog(progress)  # the dashboard's last errors
    fleet = load_fleet(fleet_path)
    check_options(fleet, web, ingress, ingress_token)
    session = FleetSession(fleet, bundle, DaemonConfig(backend=backend), recent)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    tracker = HealthTracker()
    services = contextlib.ExitStack()
    try:
        taking = start_ingress(services, session, ingress, ingress_token, progress) if ingress else None
        if web:
            start_dashboard(services, session, web, recent, taking, progress)
        while not done.wait(report_s):
            orch = session.orch
            stats = {name: orch.link.board(name).stats for name in orch.assignment.values()}
            stages = {orch.label(k): board for k, board in orch.assignment.items()}
            replicas = {orch.label(k): orch.replicas(k) for k in orch.assignment}
            echo(format_health(orch.state, tracker.sample(stages, stats, replicas)), sys.stdout)  # above a bar
    finally:
        services.close()
        session.close()


@click.command()
@click.option("--fleet", "fleet_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--wait", default=2.0, show_default=True, help="Seconds to collect retained statuses and heartbeats.")
@click.option("--web", metavar="HOST:PORT", help="Serve the live dashboard here until interrupted (docs/dashboard.md).")
def status(fleet_path: str, wait: float, web: str | None) -> None:
    """Show every board's agent status and the pipeline's state, as the broker has them."""
    import asyncio
    import contextlib

    from orchestrator.control.fleet import load_fleet
    from orchestrator.control.fleet_link import FleetLink

    fleet = load_fleet(fleet_path)
    if web:
        import signal
        import threading

        from orchestrator.web.status_web import serve_status

        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        serve_status(fleet, web, progress_printer(), done)
        return

    async def collect() -> FleetLink:
        link = FleetLink(fleet.broker, fleet.chain, client_id="finnsplit-status", boards=[b.name for b in fleet.boards])
        task = asyncio.create_task(link.run())
        await asyncio.sleep(wait)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return link

    link = asyncio.run(collect())
    now = time.monotonic()
    if not link.connected.is_set():
        raise FinnsplitError(f"broker {fleet.broker.host}:{fleet.broker.port} did not answer within {wait:g} s")
    click.echo(f"chain {fleet.chain}, broker {fleet.broker.host}:{fleet.broker.port}")
    for entry in fleet.boards:
        seen = link.board(entry.name)
        st = seen.last_status
        heard = f"{now - seen.last_seen:4.1f} s ago" if seen.last_seen else "never"
        where = f"partition {st.partition} of {st.bundle}" if st and st.bundle else "-"
        # an agent never heard from has not started (yet): waiting, as the daemon says; one gone is OFFLINE
        presence = "online" if st and st.online else "OFFLINE" if st or seen.last_seen else "waiting"
        click.echo(f"  {entry.name:<16} {entry.type:<10} {presence:<8} "
                   f"{(st and st.state) or 'unknown':<10} {where:<34} heard {heard}"
                   + (f"  error: {st.error}" if st and st.error else ""))
    pipeline = link.pipeline
    if pipeline:
        stages = ", ".join(f"{s.partition}:{s.board}" for s in pipeline.stages)
        click.echo(f"pipeline {pipeline.state}: bundle {pipeline.bundle}, first hop "
                   f"{pipeline.first}, stages {stages}")
    else:
        click.echo("pipeline: no orchestrator has published one")


COMMANDS = (virtual, run, daemon, status)

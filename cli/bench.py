"""`finnsplit bench`: throughput, latency and every board's time per frame beside the plan (docs/bench.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from core.manifest import Manifest
    from orchestrator.bench.measure import BenchResult

Log = Callable[[str], None]

BACKENDS = ("emulate", "delay", "finn-zynq")


@click.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--fleet", "fleet_path", type=click.Path(exists=True, dir_okay=False), help="fleet.yaml of real boards.")
@click.option("--virtual-fleet", "spares", type=int, default=None,
              help="A virtual fleet (namespaces, sshd, Mosquitto, agents; root) with this many spares per board type.")
@click.option("--virtual", "virtual", is_flag=True, help="Virtual boards: one server per partition, chained directly.")
@click.option("--frames", default=500, show_default=True, help="Frames of the throughput run.")
@click.option("--latency-frames", default=100, show_default=True,
              help="Frames sent one at a time for the latency percentiles (at most --frames).")
@click.option("--window", type=int, default=None, help="Frames in flight at most [default: 2 per board + 2].")
@click.option("--warmup", type=int, default=None, help="Frames before measuring [default: 2 x window].")
@click.option("--backend", type=click.Choice(BACKENDS), default="emulate", show_default=True,
              help="The boards' backend; delay: each partition's predicted compute time and real boundary sizes.")
@click.option("--netns", is_flag=True, help="--virtual: each board in its own network namespace (root).")
@click.option("--link-mbit", type=float, help="--virtual --netns or --virtual-fleet: shape every link, e.g. 1000.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Write bench.json, bench.png and bench.html here.")
@click.option("--realtime", is_flag=True,
              help="--virtual: the boards and the client at real-time priority (root), as if each had its own CPU.")
@click.option("--logs", default=None, type=click.Path(file_okay=False), help="--virtual: server logs [BUNDLE/logs].")
def bench(bundle: str, fleet_path: str | None, spares: int | None, virtual: bool, frames: int, latency_frames: int,
          window: int | None, warmup: int | None, backend: str, netns: bool, link_mbit: float | None,
          report_dir: str | None, realtime: bool, logs: str | None) -> None:
    """Measure BUNDLE's throughput, latency and per-board times on boards; compare with the plan."""
    from cli.common import progress_printer
    from core.manifest import load_manifest
    from orchestrator.bench import report as bench_report

    if sum((fleet_path is not None, spares is not None, virtual)) != 1:
        raise click.UsageError("give exactly one of --fleet FLEET.yaml, --virtual-fleet SPARES and --virtual")
    if netns and not virtual:
        raise click.UsageError("--netns is for --virtual (a virtual fleet always has namespaces)")
    if link_mbit is not None and not (netns or spares is not None):
        raise click.UsageError("--link-mbit shapes namespace links: add --netns, or use --virtual-fleet")
    if realtime and not virtual:
        raise click.UsageError("--realtime is for --virtual (virtual boards sharing this machine's CPU)")
    if backend == "finn-zynq" and fleet_path is None:
        raise click.UsageError("--backend finn-zynq needs real boards (--fleet)")
    if frames < 2 or latency_frames < 1:
        raise click.UsageError("--frames must be at least 2 and --latency-frames at least 1")
    if (window is not None and window < 1) or (warmup is not None and warmup < 0):
        raise click.UsageError("--window must be at least 1 and --warmup at least 0")
    manifest = load_manifest(bundle)
    boards = manifest.boards
    window = window or 2 * boards + 2
    warmup = 2 * window if warmup is None else warmup
    latency_frames = min(latency_frames, frames)
    progress = progress_printer()
    if virtual:
        if realtime:
            from orchestrator.bench.runs import use_realtime

            use_realtime()
        result = _virtual(bundle, manifest, frames, window, latency_frames, warmup, backend, netns, link_mbit,
                          logs or str(Path(bundle) / "logs"), progress)
    else:
        result = _fleet(bundle, manifest, fleet_path, spares, frames, window, latency_frames, warmup, backend,
                        link_mbit, progress)
    click.echo(bench_report.table(result))
    if report_dir:
        paths = bench_report.write(result, report_dir)
        click.echo("wrote " + ", ".join(str(p) for p in paths))


def _virtual(bundle: str, manifest: Manifest, frames: int, window: int, latency_frames: int, warmup: int,
             backend: str, netns: bool, link_mbit: float | None, logs: str, progress: Log) -> BenchResult:
    from orchestrator.bench.runs import bench_virtual

    if backend not in ("emulate", "delay"):
        raise click.UsageError("virtual boards run --backend emulate or delay")
    with contextlib.ExitStack() as stack:
        network = None
        if netns:
            from orchestrator.rigs.netns import NetworkConfig, VirtualNetwork

            network = stack.enter_context(VirtualNetwork(NetworkConfig(len(manifest.partitions),
                                                                       rate_mbit=link_mbit)))
        return bench_virtual(bundle, manifest, frames, window, latency_frames, warmup, backend, logs, network,
                             link_mbit, progress)


def _fleet(bundle: str, manifest: Manifest, fleet_path: str | None, spares: int | None, frames: int,
           window: int, latency_frames: int, warmup: int, backend: str, link_mbit: float | None,
           progress: Log) -> BenchResult:
    from orchestrator.bench.runs import bench_session, delay_args
    from orchestrator.control.daemon import DaemonConfig
    from orchestrator.control.fleet import load_fleet
    from orchestrator.control.session import FleetSession

    with contextlib.ExitStack() as stack:
        where = f"fleet {fleet_path}"
        if spares is not None:
            from orchestrator.rigs.vfleet import VirtualFleet

            types = [p.board for p in manifest.partitions for _ in range(p.replicas)]
            names = [(f"vb{i}", t) for i, t in enumerate(types)]
            names += [(f"spare{j}-{t}", t) for t in dict.fromkeys(types) for j in range(spares)]
            progress(f"virtual fleet: {len(names)} boards ({spares} spare per type), sshd + agent each")
            vfleet = stack.enter_context(VirtualFleet(Path(bundle).resolve().parent / ".vfleet", names,
                                                      rate_mbit=link_mbit, heartbeat_s=0.5))
            fleet_path = str(vfleet.fleet_path)
            where = "a virtual fleet" + (f", links {link_mbit:g} Mbit/s" if link_mbit else "")
        cfg = DaemonConfig(backend=backend, heartbeat_timeout_s=2.0 if spares is not None else 5.0,
                           server_args=delay_args(manifest) if backend == "delay" else {})
        session = FleetSession(load_fleet(fleet_path), bundle, cfg, progress, manifest)
        stack.callback(session.close)
        session.wait_running()
        setup = f"{len(session.orch.assignment)} boards of {where} ({backend} backend)"
        return bench_session(session, bundle, manifest, frames, window, latency_frames, warmup, setup, progress)

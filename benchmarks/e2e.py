"""Measured vs predicted: the zoo MobileNetV1 plan on 6 network-namespace boards with 1 Gbit/s links.

Every board is a real finnsplit-server in its own namespace (orchestrator/rigs/netns.py), both directions
of its link shaped to 1 Gbit/s, running the `delay` backend: each frame takes the partition's
predicted compute time (its slowest layer's cycles / clock, from the manifest) and the real packed
boundary tensors cross the links. The client streams the real 224x224x3 UINT8 inputs. Printed:
measured pipeline fps / the plan's predicted fps (goal 0.9-1.1), each board's own times beside the
plan's, and the client's own ceiling (a zero-delay first board: how fast this client can feed).
The measurement is `finnsplit bench` (orchestrator/bench/measure.py), run twice: with the boards sharing
this machine's CPU as they come, and at real-time priority, where a board's thread runs as soon as
it is ready, as on a board with a CPU of its own (docs/bench.md#virtual-boards-and-the-cpu). The goal
is judged on the second; the first shows what a loaded 2-core machine takes away. With
`--replicated`, also a plan with a replicated stage (`finnsplit build --boards 8`). Needs root.

Usage: .venv/bin/python benchmarks/e2e.py [--frames 2000] [--work DIR] [--replicated] [--report DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.manifest import Manifest, load_manifest, write_manifest  # noqa: E402
from orchestrator.bench import report as bench_report  # noqa: E402
from orchestrator.bench.measure import BenchResult  # noqa: E402
from orchestrator.bench.runs import bench_virtual, use_realtime  # noqa: E402
from orchestrator.rigs.netns import NetworkConfig, VirtualNetwork, netns_available  # noqa: E402

FINNSPLIT = [str(Path(sys.executable).parent / "finnsplit")]  # the venv's command, as a user runs it
MBIT = 1000.0


def bundle(work: Path, boards: int) -> Path:
    """The zoo MobileNetV1 (seed 0) built for `boards` Zedboards, reused when already built here."""
    model, out = work / "mobilenet-v1-w4a4.onnx", work / f"build{boards}"
    if not model.exists():
        subprocess.run([*FINNSPLIT, "zoo", "mobilenet-v1-w4a4", "-o", str(model)], check=True, capture_output=True)
    if not (out / "manifest.json").exists():
        argv = [*FINNSPLIT, "build", str(model), "--boards", str(boards), "-o", str(out), "--finn", "no"]
        done = subprocess.run(argv, check=True, capture_output=True, text=True)
        print("\n".join(line for line in done.stdout.splitlines() if line.startswith(("  ", " "))))
    return out


def boards_of(manifest: Manifest) -> int:
    """Boards the bundle occupies (replicas included)."""
    return manifest.boards


def measure(path: Path, frames: int, logs: Path) -> BenchResult:
    """One `finnsplit bench --virtual --netns --link-mbit 1000 --backend delay` run of `path`."""
    manifest = load_manifest(path)
    window = 2 * boards_of(manifest) + 2
    with VirtualNetwork(NetworkConfig(boards_of(manifest), rate_mbit=MBIT)) as net:
        return bench_virtual(path, manifest, frames, window, min(200, frames), 2 * window, "delay", logs, net, MBIT)


def client_ceiling(path: Path, frames: int, logs: Path) -> float:
    """Frames per second this client feeds a zero-delay first board (the same frames and link)."""
    import dataclasses
    import shutil

    manifest = load_manifest(path)
    part = manifest.partitions[0]
    first = dataclasses.replace(part, predicted={**part.predicted, "cycles": 0}, replicas=1)
    probe = logs / "probe"
    shutil.rmtree(probe, ignore_errors=True)
    probe.mkdir(parents=True)
    # a one-partition bundle: the first partition with no compute time (its files are not read by `delay`)
    one = dataclasses.replace(manifest, partitions=(first,), output=part.output.tensors[-1])
    write_manifest(probe, one)
    with VirtualNetwork(NetworkConfig(1, rate_mbit=MBIT)) as net:
        return bench_virtual(probe, one, frames, 8, 1, 16, "delay", logs, net, MBIT).fps


def report(name: str, shared: BenchResult, realtime: BenchResult, ceiling: float, out: Path | None) -> bool:
    """Print both runs; True if the real-time run is within 0.9-1.1 of the prediction."""
    print(f"\n== {name}: {realtime.setup}")
    print(bench_report.table(realtime))
    ok = 0.9 <= realtime.ratio <= 1.1
    print(f"measured/predicted: {realtime.ratio:.3f} at real-time priority ({'within' if ok else 'OUTSIDE'} 0.9-1.1); "
          f"{shared.ratio:.3f} sharing the CPU with this machine's other work ({shared.fps:.1f} fps; the boards' "
          f"compute {max(b.compute_us for b in shared.boards):.0f} µs at most vs "
          f"{max(p.compute_us for p in shared.predictions):.0f} set)")
    model = 1e6 / realtime.predictions[0].recv_us
    print(f"client ceiling: {ceiling:.1f} fps into a zero-delay first board over the same link "
          f"(the planner's link model: {model:.1f}); predicted pipeline {realtime.predicted_fps:.1f}")
    if out is not None:
        bench_report.write(realtime, out / name)
        print(f"report: {out / name}/bench.html")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--work", type=Path, help="Where the model and bundles are built (kept for the next run).")
    parser.add_argument("--replicated", action="store_true", help="Also the 8-board plan with a replicated stage.")
    parser.add_argument("--report", type=Path, help="Write bench.json/png/html per case here.")
    args = parser.parse_args()
    why = netns_available()
    if why:
        sys.exit(f"skipped: {why}")
    work = args.work or Path(tempfile.gettempdir()) / "finnsplit-e2e"
    work.mkdir(parents=True, exist_ok=True)
    cases = [("mobilenet-6-boards", bundle(work, 6))]
    if args.replicated:
        cases.append(("mobilenet-8-boards-replicated", bundle(work, 8)))
    logs = work / "logs"
    results = []
    for name, path in cases:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        shared = measure(path, args.frames, logs)
        use_realtime()
        realtime = measure(path, args.frames, logs)
        ceiling = client_ceiling(path, min(args.frames, 1000), logs)
        results.append(report(name, shared, realtime, ceiling, args.report))
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()

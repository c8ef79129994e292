"""Failover on a virtual fleet, every figure measured in this run (needs root).

CNV-w2a2 split over 3 Zedboards plus a spare, each a namespace with sshd and a board agent; the
orchestrator deploys and starts the chain, the client streams, and the board of stage 1 is killed
mid-stream. Printed: steady throughput before the kill, the longest gap between two results
(detection + restart on the prestaged spare + re-pointing + resend), frames resent, and overall / steady throughput.

Usage: .venv/bin/python benchmarks/failover.py [--frames 1500] [--kill-after 300]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.manifest import load_manifest  # noqa: E402
from orchestrator.control.daemon import DaemonConfig  # noqa: E402
from orchestrator.control.fleet import load_fleet  # noqa: E402
from orchestrator.control.session import FleetSession  # noqa: E402
from orchestrator.rigs.netns import netns_available  # noqa: E402
from orchestrator.rigs.vfleet import VirtualFleet  # noqa: E402


def build_bundle(work: Path) -> Path:
    """CNV on 3 Zedboards, one stage each."""
    from splitter.zoo import export

    export("cnv-w2a2", work / "cnv.onnx", seed=0)
    subprocess.run([sys.executable, "-c", "from cli.main import main; main()", "build", str(work / "cnv.onnx"),
                    "--boards", "3", "--no-replicate", "--finn", "no", "-o", str(work / "bundle")],
                   check=True, capture_output=True)
    return work / "bundle"


def watch(session: FleetSession, times: list[float], stop: threading.Event) -> None:
    """Record when each result arrives (delivered count changes)."""
    seen = 0
    while not stop.is_set():
        now = session.client.delivered
        if now > seen:
            times.extend([time.perf_counter()] * (now - seen))
            seen = now
        time.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--kill-after", type=int, default=300)
    args = parser.parse_args()
    why = netns_available()
    if why:
        sys.exit(f"skipped: {why}")
    work = Path(tempfile.mkdtemp(prefix="failover-"))
    bundle = build_bundle(work)
    manifest = load_manifest(bundle)
    spec = manifest.input
    rng = np.random.default_rng(0)
    dtype_max = 127 if spec.dtype.startswith("INT") else 255
    frames = [rng.integers(-dtype_max if spec.dtype.startswith("INT") else 0, dtype_max, size=spec.shape)
              for _ in range(args.frames)]
    boards = [("z0", "zedboard"), ("z1", "zedboard"), ("z2", "zedboard"), ("spare", "zedboard")]
    with VirtualFleet(work / "fleet", boards, heartbeat_s=0.5) as vfleet:
        events: list[tuple[float, str]] = []
        session = FleetSession(load_fleet(vfleet.fleet_path), bundle, DaemonConfig(heartbeat_timeout_s=2.0),
                               log=lambda line: events.append((time.perf_counter(), line)))
        try:
            session.wait_running()
            while len(session.orch.deployed["spare"]) < len(manifest.partitions):
                time.sleep(0.1)  # the orchestrator prestages the spare while the pipeline is healthy
            times: list[float] = []
            stop = threading.Event()
            threading.Thread(target=watch, args=(session, times, stop), daemon=True).start()
            killed_at: list[float] = []

            def kill(name: str) -> None:
                killed_at.append(time.perf_counter())
                vfleet.kill(name)

            began = time.perf_counter()
            report = session.stream(frames, kill, args.kill_after)
            stop.set()
        finally:
            session.close()
    total = time.perf_counter() - began
    k = args.kill_after
    steady = (k - 10) / (times[k - 1] - times[9]) if k > 20 else float("nan")
    gaps = np.diff(times)
    print(f"CNV-w2a2 on 3 virtual Zedboards + 1 spare, {args.frames} frames, stage 1 ({report.killed}) killed "
          f"after {k} results")
    print(f"  steady before the kill: {steady:.1f} fps")
    print(f"  longest gap between results: {gaps.max():.2f} s (kill -> spare started, upstream re-pointed,"
          f" lost frames resent); frames resent: {report.resent}")
    print(f"  overall {args.frames / total:.1f} fps -> ratio overall/steady {args.frames / total / steady:.3f}")
    print(f"  stages after: {report.stages}")
    for at, line in events:
        if killed_at and at >= killed_at[0]:
            print(f"  +{at - killed_at[0]:5.2f} s  {line.strip()}")
    resumed = next((t for t in times if killed_at and t > killed_at[0] + 0.05 and t - killed_at[0] > gaps.max() * 0.5),
                   None)
    if resumed is not None:
        print(f"  results resumed {resumed - killed_at[0]:.2f} s after the kill")


if __name__ == "__main__":
    main()

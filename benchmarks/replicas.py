"""What replicating a bottleneck stage buys (docs/protocol.md#fan-out-and-merge), measured in this run.

A chain client -> s0 -> stage 1 -> s2 -> client on loopback, every link authenticated: s0 and s2
are zero-delay servers, stage 1 a delay-backend server taking --delay-us per frame (a board's
accelerator time), on 1, 2 and 3 replicas (s0 fans out, s2 merges with --order any). Printed per
replica count: frames/s, the ratio to one replica and to the ideal (replicas x one board's rate),
and how evenly the frames were spread over the replicas; then what the chain reaches with a
zero-delay stage 1 on this machine (the ceiling no replica count can pass).

Usage: .venv/bin/python benchmarks/replicas.py [--frames 2000] [--delay-us 4000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.dataplane.client import ChainClient  # noqa: E402
from orchestrator.dataplane.link_auth import new_key, write_key  # noqa: E402
from orchestrator.dataplane.protocol import WireSpec, encode_tensor  # noqa: E402

BINARY = REPO / "cpp_server" / "build" / "finnsplit-server"
SPEC = WireSpec.parse("UINT4:1,28,28,64")  # 25 KB frames


def start(name: str, next_hops: list[tuple[str, int]], delay_us: int, key_file: Path, *flags: str) -> subprocess.Popen:
    """A delay-backend server; returns the process (its port is in .port)."""
    hops = ",".join(f"{h}:{p}" for h, p in next_hops)
    proc = subprocess.Popen([str(BINARY), "serve", "--listen", "127.0.0.1:0", "--next", hops, "--name", name,
                             "--stats", "none", "--log-level", "error", "--backend", "delay",
                             "--delay-us", str(delay_us), "--spec-in", SPEC.flag(), "--spec-out", SPEC.flag(),
                             "--auth-key-file", str(key_file), *flags],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.port = json.loads(proc.stdout.readline())["port"]  # type: ignore[attr-defined]
    return proc


def stop(proc: subprocess.Popen) -> dict:
    """SIGTERM (drain); the server's exit line."""
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    return next(json.loads(line) for line in out.splitlines() if '"event":"exit"' in line)


def stream(client: ChainClient, payload: bytes, frames: int) -> None:
    """Send `frames` packed frames from a thread while receiving every result."""
    sender = threading.Thread(target=lambda: [client.send_packed(payload) for _ in range(frames)], daemon=True)
    sender.start()
    for _ in range(frames):
        client.receiver.receive_packed(timeout=60)
    sender.join()


def run(replicas: int, frames: int, delay_us: int, work: Path) -> tuple[float, list[int]]:
    """(frames per second, frames each replica computed) of one streaming run."""
    key = new_key()
    key_file = write_key(work / "link.key", key)
    with ChainClient(SPEC, SPEC, key=key, last_stage="s2", ordered=replicas == 1) as client:
        procs = [start("s2", [client.result_address], 0, key_file, *(("--order", "any") if replicas > 1 else ()))]
        stage = [start(f"r{r}", [("127.0.0.1", procs[0].port)], delay_us, key_file) for r in range(replicas)]
        procs.append(start("s0", [("127.0.0.1", p.port) for p in stage], 0, key_file))
        procs += stage
        try:
            client.connect(("127.0.0.1", procs[1].port))
            payload = encode_tensor(np.zeros(SPEC.shape, dtype=np.int64), SPEC)
            stream(client, payload, 50)  # warm-up: connections, buffers
            began = time.perf_counter()
            stream(client, payload, frames)
            fps = frames / (time.perf_counter() - began)
        finally:
            exits = {p.args[p.args.index("--name") + 1]: stop(p) for p in procs}
    return fps, [exits[f"r{r}"]["frames_out"] for r in range(replicas)]


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--delay-us", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"frames of {SPEC} ({SPEC.packed_size:,} B), stage 1 {args.delay_us} us per frame "
              f"(one board: {1e6 / args.delay_us:.0f} fps)")
        print(f"{'replicas':>8} {'fps':>9} {'vs 1':>6} {'vs ideal':>9}  frames per replica")
        single = None
        for replicas in (1, 2, 3):
            fps, spread = run(replicas, args.frames, args.delay_us, Path(tmp))
            single = single or fps
            print(f"{replicas:>8} {fps:9.1f} {fps / single:6.2f} {fps / (replicas * 1e6 / args.delay_us):9.2f}  "
                  f"{spread}")
        ceiling, _ = run(1, args.frames, 0, Path(tmp))
        print(f"the same chain with a zero-delay stage 1 reaches {ceiling:.0f} fps on this machine (the ceiling)")

if __name__ == "__main__":
    main()

"""What authenticating the data plane costs (docs/protocol.md#authentication), measured in this run.

A chain of two zero-delay servers on loopback streams pre-packed frames of MobileNetV1's cut sizes,
once with every link authenticated (--auth-key-file: HMAC handshake, a Poly1305 tag per frame) and
once without. Printed per frame size: frames/s with and without and their ratio, and each server's
CPU time per frame (from /proc, user + system) with and without, the difference being the cost of
verifying one frame's tag and tagging it for the next hop, and the ratio of the two CPU times: the
throughput ratio of a board whose CPU is its bottleneck (on this 2-core machine the end-to-end
ratio also pays for the client's tags and for two servers sharing the cores).

Usage: .venv/bin/python benchmarks/auth_overhead.py [--frames 1500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.dataplane.client import ChainClient  # noqa: E402
from orchestrator.dataplane.link_auth import new_key, write_key  # noqa: E402
from orchestrator.dataplane.protocol import WireSpec  # noqa: E402

BINARY = REPO / "cpp_server" / "build" / "finnsplit-server"
CUTS = [WireSpec.parse("UINT4:1,28,28,256"), WireSpec.parse("UINT4:1,112,112,64")]  # 100 KB and 401 KB
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start(name: str, next_hop: tuple[str, int], spec: WireSpec, key_file: Path | None) -> subprocess.Popen:
    """A zero-delay server; returns the process (its port is in .port)."""
    auth = ["--auth-key-file", str(key_file)] if key_file else []
    proc = subprocess.Popen([str(BINARY), "serve", "--listen", "127.0.0.1:0", "--next", f"{next_hop[0]}:{next_hop[1]}",
                             "--name", name, "--stats", "none", "--log-level", "error", "--backend", "delay",
                             "--delay-us", "0", "--spec-in", spec.flag(), "--spec-out", spec.flag(), *auth],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.port = json.loads(proc.stdout.readline())["port"]  # type: ignore[attr-defined]
    return proc


def run(spec: WireSpec, frames: int, authenticated: bool, work: Path) -> tuple[float, float]:
    """(frames per second, mean server CPU seconds per frame) of one streaming run."""
    key = new_key() if authenticated else None
    key_file = write_key(work / "link.key", key) if key else None
    with ChainClient(spec, spec, key=key, last_stage="b1" if key else None) as client:
        last = start("b1", client.result_address, spec, key_file)
        first = start("b0", ("127.0.0.1", last.port), spec, key_file)  # type: ignore[attr-defined]
        servers = [first, last]
        try:
            client.connect(("127.0.0.1", first.port))  # type: ignore[attr-defined]
            payload = bytes(range(256)) * (spec.packed_size // 256) + bytes(spec.packed_size % 256)
            sender = client.sender
            assert sender is not None
            for _ in range(20):  # warm-up
                sender.send_packed(payload)
                client.receiver.receive_packed(timeout=30)
            cpu = [cpu_seconds(s.pid) for s in servers]
            began = time.perf_counter()
            thread = threading.Thread(target=lambda: [sender.send_packed(payload) for _ in range(frames)])
            thread.start()
            for _ in range(frames):
                client.receiver.receive_packed(timeout=60)
            seconds = time.perf_counter() - began
            thread.join()
            per_frame = sum(cpu_seconds(s.pid) - c for s, c in zip(servers, cpu, strict=True)) / len(servers) / frames
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
    return frames / seconds, per_frame


def main() -> None:
    """Measure and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1500)
    args = parser.parse_args()
    subprocess.run(["cmake", "--build", str(BINARY.parent), "-j", "2"], check=True, capture_output=True)
    print(f"{'frame':>30} {'plain fps':>10} {'auth fps':>9} {'ratio':>6} {'server CPU/frame plain':>23} "
          f"{'auth':>8} {'+ per frame':>12} {'CPU ratio':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in CUTS:
            plain_fps, plain_cpu = run(spec, args.frames, False, Path(tmp))
            auth_fps, auth_cpu = run(spec, args.frames, True, Path(tmp))
            print(f"{str(spec) + f' ({spec.packed_size:,} B)':>30} {plain_fps:10.1f} {auth_fps:9.1f} "
                  f"{auth_fps / plain_fps:6.3f} {plain_cpu * 1e6:20.0f} us {auth_cpu * 1e6:5.0f} us "
                  f"{(auth_cpu - plain_cpu) * 1e6:9.0f} us {plain_cpu / auth_cpu:10.3f}")


if __name__ == "__main__":
    main()

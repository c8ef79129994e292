"""Link-bound pipelines on virtual boards with their own network, every figure measured in this run.

A chain of delay-backend servers, each in its own network namespace (orchestrator/rigs/netns.py), every
board's link shaped to a Zedboard's 1 Gbit/s in both directions. The frames are large enough that
the links, not the compute delays, bound the pipeline. Printed: achieved fps vs the raw link bound
(rate / frame bytes) and vs the planner's link model (rate x link_efficiency of the board file /
frame bytes), the figure `finnsplit build` predicts with. Needs root.

The client streams pre-packed frames (no packing in the loop), so the links are what is measured.

Usage: .venv/bin/python benchmarks/virtual_network.py [--boards 3] [--frames 300] [--mbit 1000 | 0 = unshaped]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.dataplane.client import ChainClient  # noqa: E402
from orchestrator.dataplane.protocol import WireSpec  # noqa: E402
from orchestrator.rigs.netns import NetworkConfig, VirtualNetwork, netns_available  # noqa: E402
from orchestrator.rigs.virtual import VirtualBoard  # noqa: E402
from splitter.boards import load_board  # noqa: E402

BINARY = REPO / "cpp_server" / "build" / "finnsplit-server"
FRAMES = {  # MobileNetV1 w4a4 tensors at typical cuts
    "112x112x64 UINT4": WireSpec.parse("UINT4:1,112,112,64"),
    "28x28x256 UINT4": WireSpec.parse("UINT4:1,28,28,256"),
}


def start(net: VirtualNetwork, board: int, next_hop: tuple[str, int], spec: WireSpec, delay_us: int,
          log_dir: Path) -> VirtualBoard:
    """A delay server in board `board`'s namespace."""
    argv = [str(BINARY), "serve", "--listen", f"{net.address(board)}:0", "--next", f"{next_hop[0]}:{next_hop[1]}",
            "--name", f"b{board}", "--stats", "none", "--log-level", "warn", "--backend", "delay",
            "--delay-us", str(delay_us), "--spec-in", spec.flag(), "--spec-out", spec.flag()]
    return VirtualBoard(f"b{board}", net.command(board, argv), log_dir / f"b{board}.log")


def stream_packed(client: ChainClient, payload: bytes, frames: int) -> float:
    """Frames per second of pre-packed frames sent and received raw, so the Python client is not the bound."""
    sender = client.sender
    assert sender is not None
    thread = threading.Thread(target=lambda: [sender.send_packed(payload) for _ in range(frames)], daemon=True)
    began = time.perf_counter()
    thread.start()
    for _ in range(frames):
        client.receiver.receive_packed()
    seconds = time.perf_counter() - began
    thread.join()
    return frames / seconds


def run(boards: int, frames: int, mbit: float, name: str, spec: WireSpec) -> None:
    """Stream `frames` frames through `boards` shaped namespaces; print achieved vs the link bounds."""
    efficiency = load_board("zedboard").link_efficiency
    raw_bound = (mbit or float("inf")) * 1e6 / 8 / spec.packed_size
    with VirtualNetwork(NetworkConfig(boards, rate_mbit=mbit or None)) as net, \
            ChainClient(spec, spec, result_host=net.host_address) as client, \
            tempfile.TemporaryDirectory() as logs, contextlib.ExitStack() as servers:
        next_hop = client.result_address
        for board in reversed(range(boards)):
            server = start(net, board, next_hop, spec, 200, Path(logs))
            servers.callback(server.stop)
            next_hop = (net.address(board), server.port)
        client.connect(next_hop)
        client.infer(np.zeros(spec.shape, dtype=np.int64))  # warm-up
        fps = stream_packed(client, bytes(spec.packed_size), frames)
    if not mbit:
        print(f"{name} ({spec.packed_size:,} B), {boards} boards, unshaped veth links: {fps:.1f} fps "
              f"({fps * spec.packed_size * 8 / 1e9:.2f} Gbit/s per link)")
        return
    print(f"{name} ({spec.packed_size:,} B), {boards} boards, links {mbit:g} Mbit/s:")
    model = raw_bound * efficiency
    print(f"  achieved {fps:.1f} fps; raw link bound {raw_bound:.1f} fps -> ratio {fps / raw_bound:.3f}; "
          f"planner's model (x{efficiency}) {model:.1f} fps -> ratio {fps / model:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--mbit", type=float, default=1000.0)
    args = parser.parse_args()
    why = netns_available()
    if why:
        sys.exit(f"skipped: {why}")
    if not BINARY.exists():
        sys.exit(f"build the server first: {BINARY} (scripts/setup.sh)")
    for name, spec in FRAMES.items():
        run(args.boards, args.frames, args.mbit, name, spec)


if __name__ == "__main__":
    main()

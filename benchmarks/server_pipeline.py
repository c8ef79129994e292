"""Benchmarks of the board server (cpp_server/), every figure a ratio measured in this run.

1. Pipeline: a chain of N delay-backend servers on loopback; achieved FPS / the slowest stage's
   bound (1 / its delay). Goal >= 0.95: network and compute overlap, nothing serialises.
2. Added latency per hop: median round trip of single frames through N zero-delay servers
   minus through one, divided by N - 1.
3. Emulate speed on MobileNetV1 (w4a4, seeded random weights): frames/s of the C++ emulate
   backend vs the Python executor (splitter.executor) vs qonnx execute_onnx on the QONNX model.
4. Wire bytes per frame at MobileNetV1's cut points: dense packing vs FINN's padded packing at PE=1.

Usage: .venv/bin/python benchmarks/server_pipeline.py [--servers 4] [--frames 400] [--skip-mobilenet]
"""

from __future__ import annotations

import argparse
import json
import statistics
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
from orchestrator.dataplane.protocol import WireSpec  # noqa: E402

BINARY = REPO / "cpp_server" / "build" / "finnsplit-server"
CUT = WireSpec.parse("UINT4:1,28,28,256")  # a typical MobileNetV1 cut: 100 KB per frame


def build() -> None:
    """Build the native server (incremental)."""
    if not (BINARY.parent / "CMakeCache.txt").exists():
        subprocess.run(["cmake", "-S", str(REPO / "cpp_server"), "-B", str(BINARY.parent),
                        "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(BINARY.parent), "-j", "2"], check=True, capture_output=True)


class Server:
    """One finnsplit-server process on an ephemeral loopback port."""

    def __init__(self, name: str, next_hop: tuple[str, int], *args: str):
        """Start it and read its port from the "listening" line."""
        self.proc = subprocess.Popen(
            [str(BINARY), "serve", "--listen", "127.0.0.1:0", "--next", f"{next_hop[0]}:{next_hop[1]}",
             "--name", name, "--stats", "none", "--log-level", "warn", *args],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = json.loads(self.proc.stdout.readline())["port"]

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.proc.terminate()
        self.proc.wait(timeout=30)


def delay_chain(client: ChainClient, delays_us: list[int]) -> list[Server]:
    """Delay servers, last first, each forwarding to the next."""
    servers: list[Server] = []
    next_hop = client.result_address
    for index in reversed(range(len(delays_us))):
        server = Server(f"d{index}", next_hop, "--backend", "delay", "--delay-us", str(delays_us[index]),
                        "--spec-in", CUT.flag(), "--spec-out", CUT.flag())
        servers.insert(0, server)
        next_hop = ("127.0.0.1", server.port)
    client.connect(("127.0.0.1", servers[0].port))
    return servers


def pipeline_fps(servers: int, frames: int) -> None:
    """Achieved FPS of a loaded chain vs its slowest stage."""
    delays = [2000 + 500 * (i % 3) for i in range(servers)]  # 2.0, 2.5, 3.0 ms, ...
    bound = 1e6 / max(delays)
    # Frames are sent and received packed: the client's numpy (un)packing is not what is measured.
    packed = np.random.default_rng(0).integers(0, 256, size=CUT.packed_size, dtype=np.uint8).tobytes()
    with ChainClient(CUT, CUT) as client:
        chain = delay_chain(client, delays)
        sender = client.sender
        assert sender is not None
        sender.send_packed(packed)  # warm up connections
        client.receiver.receive_packed()
        thread = threading.Thread(target=lambda: [sender.send_packed(packed) for _ in range(frames)])
        thread.start()
        stamps = []
        for _ in range(frames):
            client.receiver.receive_packed()
            stamps.append(time.monotonic())
        thread.join()
        for server in chain:
            server.stop()
    skip = frames // 10  # fill time of the pipeline
    fps = (frames - 1 - skip) / (stamps[-1] - stamps[skip])
    print(f"pipeline: {servers} servers, stage delays {[d / 1000 for d in delays]} ms, {CUT} "
          f"({CUT.packed_size} B) frames")
    print(f"  achieved {fps:.1f} fps, slowest-stage bound {bound:.1f} fps -> ratio {fps / bound:.3f} (goal >= 0.95)")


def round_trip_ms(servers: int, trips: int) -> float:
    """Median single-frame round trip through `servers` zero-delay servers, in ms."""
    packed = bytes(CUT.packed_size)
    with ChainClient(CUT, CUT) as client:
        chain = delay_chain(client, [0] * servers)
        assert client.sender is not None
        times = []
        for _ in range(trips):
            start = time.perf_counter()
            client.sender.send_packed(packed)
            client.receiver.receive_packed()
            times.append(time.perf_counter() - start)
        for server in chain:
            server.stop()
    return statistics.median(times) * 1000


def latency_per_hop(servers: int, trips: int = 200) -> None:
    """Added latency of one more hop."""
    one = round_trip_ms(1, trips)
    many = round_trip_ms(servers, trips)
    print(f"latency: round trip {one:.3f} ms through 1 server, {many:.3f} ms through {servers} "
          f"-> {(many - one) / (servers - 1):.3f} ms added per hop ({CUT.packed_size} B frames, loopback)")


def mobilenet(work: Path) -> None:
    """Emulate vs Python executor vs qonnx execute_onnx on MobileNetV1; wire bytes at its cuts."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    from core.packing import pack, unpack
    from splitter import program
    from splitter.executor import execute
    from splitter.load import load_and_lower
    from splitter.lowering.onnx_view import with_shapes
    from splitter.model_io import model_float_input
    from splitter.zoo import export

    onnx_path = export("mobilenet-v1-w4a4", work / "mobilenet.onnx", seed=0)
    model, graph = load_and_lower(str(onnx_path), None, "mobilenet")
    program.write(graph, work / "mobilenet.fsprog")
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(1, 3, 224, 224))
    x = raw.transpose(0, 2, 3, 1)
    (work / "in.bin").write_bytes(pack(x, graph.input.dtype))

    repeat = 10
    done = subprocess.run([str(BINARY), "run", "--program", str(work / "mobilenet.fsprog"), "--input",
                           str(work / "in.bin"), "--output", str(work / "out.bin"), "--repeat", str(repeat)],
                          check=True, capture_output=True, text=True)
    emulate_fps = json.loads(done.stdout.splitlines()[-1])["fps"]
    ours = unpack((work / "out.bin").read_bytes(), graph.output.dtype, graph.output.shape)

    start = time.perf_counter()
    python_frames = 2
    for _ in range(python_frames):
        reference = execute(graph, x)
    python_fps = python_frames / (time.perf_counter() - start)
    assert np.array_equal(ours, reference), "emulate and Python executor disagree"

    wrapper = ModelWrapper(with_shapes(model))
    inits = {i.name for i in model.graph.initializer}
    name = next(i.name for i in model.graph.input if i.name not in inits)
    float_input = model_float_input(graph.input_quant, raw)
    start = time.perf_counter()
    execute_onnx(wrapper, {name: float_input})
    qonnx_fps = 1 / (time.perf_counter() - start)
    print(f"emulate on MobileNetV1 ({len(graph.layers)} layers, bit-exact with the Python executor):")
    print(f"  C++ emulate {emulate_fps:.2f} fps, Python executor {python_fps:.3f} fps, qonnx execute_onnx "
          f"{qonnx_fps:.3f} fps -> emulate/executor {emulate_fps / python_fps:.1f}x, "
          f"emulate/qonnx {emulate_fps / qonnx_fps:.1f}x")

    macs = []
    for layer in graph.layers:
        weights = layer.params.get("weights")
        pixels = int(np.prod(graph.tensors[layer.output].shape[:-1]))
        macs.append(pixels * weights.size if layer.op_type in ("MVAU", "VVAU") else 0)
    cumulative = np.cumsum(macs)
    cuts = [int(np.searchsorted(cumulative, cumulative[-1] * k / 3)) + 1 for k in (1, 2)]
    dense_total = finn_total = 0
    for cut in cuts:
        spec = graph.tensors[graph.layers[cut - 1].output]
        dense = (spec.num_elements * spec.dtype.bitwidth + 7) // 8
        finn = spec.num_elements * ((spec.dtype.bitwidth + 7) // 8)  # PE=1: one element per padded word
        dense_total += dense
        finn_total += finn
        print(f"  cut after layer {cut} ({spec.dtype.name} {'x'.join(map(str, spec.shape))}): "
              f"{dense} B dense vs {finn} B FINN-padded at PE=1 -> ratio {dense / finn:.3f}")
    print(f"wire bytes per frame over the 3-way cuts: {dense_total} dense vs {finn_total} FINN PE=1 "
          f"-> ratio {dense_total / finn_total:.3f}")


def main() -> None:
    """Run every benchmark and print its ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--skip-mobilenet", action="store_true")
    args = parser.parse_args()
    build()
    pipeline_fps(args.servers, args.frames)
    latency_per_hop(args.servers)
    if not args.skip_mobilenet:
        with tempfile.TemporaryDirectory() as work:
            mobilenet(Path(work))


if __name__ == "__main__":
    main()

"""Chains of real server processes on loopback: equivalence, order, reconnects, drain, backpressure."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
from cpp_fixtures import (
    ServerFleet,
    fleet,  # noqa: F401 - fixture
    random_input,
    sanitizer_build,  # noqa: F401 - fixture
    server_bin,  # noqa: F401 - fixture
)
from test_cpp_emulate import conv_stack

from orchestrator.dataplane.client import ChainClient
from orchestrator.dataplane.protocol import WireSpec
from splitter import program
from splitter.executor import execute
from splitter.graph import DataflowGraph

SPEC = WireSpec.parse("UINT4:1,8,8,16")


def start_emulate_chain(servers: ServerFleet, graph: DataflowGraph, cuts: list[int], client: ChainClient,
                        work: Path, *extra: str) -> list:
    """One emulate server per partition [cuts[i], cuts[i+1]), started last to first."""
    bounds = [0, *cuts, len(graph.layers)]
    chain = []
    next_hop = client.result_address
    for index in reversed(range(len(bounds) - 1)):
        part = graph.slice(bounds[index], bounds[index + 1], f"{graph.name}_p{index}")
        path = work / f"{part.name}.fsprog"
        program.write(part, path)
        server = servers.start(f"board{index}", next_hop, "--backend", "emulate", "--program", str(path), *extra)
        chain.insert(0, server)
        next_hop = server.address
    return chain


def _check_chain_of_three(servers: ServerFleet, work: Path) -> None:
    rng = np.random.default_rng(5)
    graph = conv_stack(rng)
    with ChainClient(graph.input, graph.output) as client:
        chain = start_emulate_chain(servers, graph, [3, 8], client, work)
        client.connect(chain[0].address)
        frames = [random_input(graph, rng) for _ in range(12)]
        results = client.infer_many(frames)
        for frame, got in zip(frames, results, strict=True):
            np.testing.assert_array_equal(got, execute(graph, frame))
        for server in chain:
            assert server.terminate() == 0
            exit_event = server.wait_event(lambda e: e.get("event") == "exit")
            assert exit_event["frames_in"] == exit_event["frames_out"] == 12


def test_three_emulate_servers_equal_the_python_executor(fleet: ServerFleet, tmp_path: Path) -> None:  # noqa: F811
    _check_chain_of_three(fleet, tmp_path)


def test_three_emulate_servers_under_sanitizers(sanitizer_build: Path, tmp_path: Path) -> None:  # noqa: F811
    servers = ServerFleet(sanitizer_build / "finnsplit-server", tmp_path,
                          env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
                               "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"})
    try:
        _check_chain_of_three(servers, tmp_path)
        for server in servers.servers:
            log = server.log()
            assert "AddressSanitizer" not in log and "runtime error:" not in log and "LeakSanitizer" not in log, log
    finally:
        servers.close()


def _delay_chain(servers: ServerFleet, client: ChainClient, count: int, delay_us: int, *extra: str) -> list:
    chain = []
    next_hop = client.result_address
    for index in reversed(range(count)):
        server = servers.start(f"d{index}", next_hop, "--backend", "delay", "--delay-us", str(delay_us),
                               "--spec-in", SPEC.flag(), "--spec-out", SPEC.flag(), *extra)
        chain.insert(0, server)
        next_hop = server.address
    return chain


def test_frames_arrive_in_order_through_a_pipelined_chain(fleet: ServerFleet) -> None:  # noqa: F811
    rng = np.random.default_rng(1)
    with ChainClient(SPEC, SPEC) as client:
        chain = _delay_chain(fleet, client, 3, 200)
        client.connect(chain[0].address)
        frames = [rng.integers(0, 16, size=SPEC.shape) for _ in range(300)]
        results = client.infer_many(frames)  # checks the sequence numbers come back in order
        for frame, got in zip(frames, results, strict=True):
            np.testing.assert_array_equal(got, frame)  # delay echoes its input
        stats = chain[1].stats(lambda s: s["frames"]["out"] == 300)
        assert stats["errors"] == {k: 0 for k in stats["errors"]}
        assert set(stats["stage_mean_us"]) == {"recv", "recv_wait", "compute", "send"}


def test_next_hop_restart_is_reconnected(fleet: ServerFleet) -> None:  # noqa: F811
    rng = np.random.default_rng(2)
    with ChainClient(SPEC, SPEC) as client:
        first, second = _delay_chain(fleet, client, 2, 0)
        client.connect(first.address)
        frames = [rng.integers(0, 16, size=SPEC.shape) for _ in range(5)]
        assert all(np.array_equal(a, b) for a, b in zip(client.infer_many(frames), frames, strict=True))

        port = second.port
        second.kill()  # an abrupt crash of the next board
        first.wait_log("closed the connection; reconnecting")
        restarted = fleet.start("d1-again", client.result_address, "--listen", f"127.0.0.1:{port}", "--backend",
                                "delay", "--delay-us", "0", "--spec-in", SPEC.flag(), "--spec-out", SPEC.flag())
        assert restarted.port == port
        first.stats(lambda s: s["downstream_connected"] and s["reconnects"] >= 1, timeout=15)
        more = [rng.integers(0, 16, size=SPEC.shape) for _ in range(5)]
        assert all(np.array_equal(a, b) for a, b in zip(client.infer_many(more), more, strict=True))


def test_sigterm_drains_frames_in_flight(fleet: ServerFleet) -> None:  # noqa: F811
    rng = np.random.default_rng(3)
    with ChainClient(SPEC, SPEC) as client:
        (server,) = _delay_chain(fleet, client, 1, 50_000, "--queue-depth", "8")
        client.connect(server.address)
        frames = [rng.integers(0, 16, size=SPEC.shape) for _ in range(10)]
        assert client.sender is not None
        seqs = [client.sender.send(frame) for frame in frames]
        assert seqs == list(range(seqs[0], seqs[0] + 10))  # counting up from the run's random base
        server.stats(lambda s: s["frames"]["in"] == 10)
        assert server.proc.poll() is None
        server.proc.send_signal(15)  # SIGTERM with most frames still queued (50 ms each)
        got = [client.receiver.receive(timeout=10) for _ in frames]
        assert [seq for seq, _ in got] == seqs
        assert all(np.array_equal(values, frame) for (_, values), frame in zip(got, frames, strict=True))
        assert server.terminate() == 0
        exit_event = server.wait_event(lambda e: e.get("event") == "exit")
        assert exit_event == {"event": "exit", "node": "d0", "frames_in": 10, "frames_out": 10, "frames_dropped": 0}


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_backpressure_keeps_memory_bounded(fleet: ServerFleet) -> None:  # noqa: F811
    big = WireSpec.parse("UINT8:1,512,512,4")  # 1 MiB frames
    with ChainClient(big, big) as client:
        server = fleet.start("slow", client.result_address, "--backend", "delay", "--delay-us", "5000",
                             "--spec-in", big.flag(), "--spec-out", big.flag(), "--queue-depth", "2")
        client.connect(server.address)
        baseline = _rss_kb(server.proc.pid)
        payload = bytes(range(256)) * (big.packed_size // 256)
        peak = [baseline]
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak.append(_rss_kb(server.proc.pid))
                time.sleep(0.005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        sender = client.sender
        assert sender is not None
        first = sender.send_packed(payload)
        thread = threading.Thread(target=lambda: [sender.send_packed(payload) for _ in range(99)])
        thread.start()
        for expected in range(first, first + 100):
            seq, _ = client.receiver.receive(timeout=30)
            assert seq == expected
        thread.join()
        done.set()
        watcher.join()
        # 100 MiB went through; the server holds at most its 2 x (2 + 2) preallocated 1 MiB buffers.
        assert max(peak) - baseline < 16 * 1024, (baseline, max(peak))
        stats = server.stats(lambda s: s["frames"]["out"] == 100)
        assert stats["queues"]["in_capacity"] == 4 and stats["queues"]["in"] <= 4


def test_stats_stream_on_a_local_unix_socket(fleet: ServerFleet, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "stats.sock"
    with ChainClient(SPEC, SPEC) as client:
        server = fleet.start("s0", client.result_address, "--backend", "delay", "--delay-us", "0", "--spec-in",
                             SPEC.flag(), "--spec-out", SPEC.flag(), "--stats", f"unix:{path}")
        client.connect(server.address)
        client.infer(np.zeros(SPEC.shape, dtype=np.int64))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(path))
            reader = sock.makefile("r")
            line = json.loads(reader.readline())
        assert line["event"] == "stats" and line["node"] == "s0"
        assert line["frames"] == {"in": 1, "computed": 1, "out": 1, "dropped": 0}
        assert line["downstream_connected"] is True and line["upstreams"] == 1

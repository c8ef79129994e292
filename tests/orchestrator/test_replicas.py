"""Replicated stages run: fan-out to a stage's replicas, merge after them, a replica killed mid-stream.

Real servers (the native build, authenticated links), real frames of tfc-w2a2, compared with the
bit-exact Python executor. docs/protocol.md#fan-out-and-merge.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from cpp_fixtures import ServerFleet, server_bin  # noqa: F401  (fixture)
from manifest_fixtures import manifest_json, partition_json

from core.manifest import Manifest, load_manifest
from orchestrator.control.reconcile import BoardView, Run, plan_steps, target_of
from orchestrator.dataplane.client import ChainClient
from orchestrator.dataplane.link_auth import new_key
from orchestrator.dataplane.pipeline_client import ResilientClient
from orchestrator.dataplane.protocol import ProtocolError, WireSpec
from orchestrator.rigs.netns import netns_available
from splitter import program
from splitter.executor import execute

REPO = Path(__file__).resolve().parents[2]
FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]
FRAMES = 10_000


def count_flag() -> str:
    """The flag for N seeded random inputs (`--random N`; `--images N` before images became files)."""
    done = subprocess.run([*FINNSPLIT, "virtual", "--help"], capture_output=True, text=True, check=False)
    return "--random" if "--random" in done.stdout else "--images"


def tiny_board(directory: Path) -> Path:
    """A Zedboard with a tenth of its LUTs and few DSPs: tfc-w2a2's first layer is compute bound on
    it, so the planner replicates it on spare boards."""
    text = (REPO / "boards" / "zedboard.yaml").read_text()
    for pattern, value in [(r"^name: zedboard", "name: tinyboard"), (r"^  lut: 53200 .*", "  lut: 4000"),
                           (r"^  dsp: 220 .*", "  dsp: 8"), (r"^  bram18: 280 .*", "  bram18: 40"),
                           (r"^  lut: 5800 .*", "  lut: 500")]:
        text, count = re.subn(pattern, value, text, count=1, flags=re.M)
        assert count == 1, pattern
    path = directory / "tinyboard.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def replicated_bundle(zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """`finnsplit build tfc-w2a2 --boards tinyboard.yaml:3`: partition 0 on 2 boards; (bundle, board file, stderr)."""
    work = tmp_path_factory.mktemp("replicated")
    board = tiny_board(work)
    done = subprocess.run([*FINNSPLIT, "build", str(zoo_dir / "tfc-w2a2.onnx"), "--boards", f"{board}:3",
                           "--finn", "no", "-o", str(work / "tfc")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return work / "tfc", board, done.stdout + done.stderr


def slices(graph, cuts: list[tuple[int, int]], directory: Path) -> list[Path]:
    """One program file per cut of `graph`."""
    paths = []
    for k, (a, b) in enumerate(cuts):
        paths.append(directory / f"p{k}.fsprog")
        program.write(graph.slice(a, b, f"p{k}"), paths[-1])
    return paths


@pytest.mark.usefixtures("server_bin")
@pytest.mark.parametrize("replicated", ["middle", "first"])
def test_a_replica_killed_mid_stream_loses_no_frame(zoo_lowered: dict, server_bin: Path, tmp_path: Path,  # noqa: F811
                                                    replicated: str) -> None:
    """10,000 frames through a stage on two replicas; one replica's server is SIGKILLed mid-stream.

    middle: s0 fans out to the replicas of partition 1 (the server's fan-out), s2 merges them;
    first: the client fans out to the replicas of partition 0, s1 merges them.
    """
    _, graph = zoo_lowered["tfc-w2a2"]
    paths = slices(graph, [(0, 1), (1, 2), (2, len(graph.layers))], tmp_path)
    rng = np.random.default_rng(7)
    distinct = [rng.integers(graph.input.dtype.min, graph.input.dtype.max, size=graph.input.shape, endpoint=True)
                for _ in range(200)]
    expected = [execute(graph, x) for x in distinct]
    frames = [distinct[i % len(distinct)] for i in range(FRAMES)]
    key = new_key()
    servers = ServerFleet(server_bin, tmp_path)
    emulate = lambda k: ("--backend", "emulate", "--program", str(paths[k]))  # noqa: E731
    last = "s2"
    hop: dict[str, object] = {}
    client = ResilientClient(WireSpec.of(graph.input), WireSpec.of(graph.output), lambda: hop["first"],
                             deadline_s=1.0, window=32, key=key, last_stage=lambda: last)
    arrivals: collections.Counter[int] = collections.Counter()
    on_result = client.port.deliver

    def counting(wire_seq: int, payload: bytes) -> None:
        arrivals[wire_seq] += 1
        on_result(wire_seq, payload)

    client.port.deliver = counting
    try:
        merge = ("--order", "any") if replicated == "middle" else ()
        s2 = servers.start("s2", client.result_address, *merge, *emulate(2), key=key)
        if replicated == "middle":
            replicas = [servers.start(f"r{r}", s2.address, *emulate(1), key=key) for r in range(2)]
            second = f"{replicas[1].address[0]}:{replicas[1].address[1]}"
            s0 = servers.start("s0", replicas[0].address, "--next", second, *emulate(0), key=key)
            hop["first"] = s0.address
        else:
            s1 = servers.start("s1", s2.address, "--order", "any", *emulate(1), key=key)
            replicas = [servers.start(f"r{r}", s1.address, *emulate(0), key=key) for r in range(2)]
            hop["first"] = [r.address for r in replicas]
        killed_at: list[int] = []

        def kill_a_replica() -> None:
            while client.delivered < FRAMES // 3:
                threading.Event().wait(0.002)
            killed_at.append(client.delivered)
            replicas[1].kill()  # SIGKILL: frames in its queues and socket buffers are lost

        killer = threading.Thread(target=kill_a_replica)
        killer.start()
        results = client.infer_many(frames, timeout_s=300)
        killer.join()
        survivor = replicas[0].stats(lambda s: s["frames"]["out"] > 0)
    finally:
        client.close()
        servers.close()
    assert FRAMES // 3 <= killed_at[0] < FRAMES - 1000, "the replica must die mid-stream"
    assert len(results) == FRAMES
    for i, got in enumerate(results):  # every frame once, in order, bit-exact
        np.testing.assert_array_equal(got, expected[i % len(distinct)])
    assert max(arrivals.values()) == 1, "a frame (wire sequence number) came out of the pipeline twice"
    assert sum(arrivals.values()) >= FRAMES
    assert survivor["frames"]["out"] > 0


def test_the_planner_replicates_and_build_says_nothing_of_a_missing_fan_out(replicated_bundle) -> None:
    bundle, _, output = replicated_bundle
    manifest = load_manifest(bundle)
    assert [p.replicas for p in manifest.partitions] == [2, 1]
    assert "fan-out" not in output and "one board per partition" not in output


@pytest.mark.usefixtures("server_bin")
def test_a_replicated_plan_runs_bit_exact_on_virtual_boards(replicated_bundle, zoo_dir: Path) -> None:
    bundle, _, _ = replicated_bundle
    done = subprocess.run([*FINNSPLIT, "virtual", str(bundle), count_flag(), "300", "--check",
                           str(zoo_dir / "tfc-w2a2.onnx")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "3 virtual boards for 2 partitions, partition 0 on 2" in done.stderr
    assert "bit-exact vs the Python executor: 300/300 frames" in done.stdout
    logs = {p.stem: p.read_text() for p in (bundle / "logs").glob("*.log")}
    assert {"vboard0.0", "vboard0.1", "vboard1"} <= set(logs)
    for name in ("vboard0.0", "vboard0.1"):  # both replicas carried frames
        drained = re.search(r"drained: (\d+) in", logs[name])
        assert drained and int(drained.group(1)) > 100, logs[name][-500:]
    assert "frames in any order" in logs["vboard1"]


def test_the_result_port_takes_every_replica_of_the_last_stage_and_refuses_strangers() -> None:
    """A last stage on two replicas: each sends its results on its own connection, interleaved."""
    from orchestrator.dataplane.client import TensorSender
    from orchestrator.dataplane.protocol import HandshakeError

    spec = WireSpec.parse("UINT4:1,2")
    values = [np.array([[i % 16, (i * 3) % 16]]) for i in range(6)]
    refused: list[str] = []

    def replica(name: str, frames: list[int]) -> None:
        try:
            sender = TensorSender(client.result_address, spec, node=name, key=key)
        except HandshakeError as exc:
            refused.append(str(exc))
            return
        for i in frames:
            sender.send(values[i], seq=100 + i)
        threading.Event().wait(1.0)
        sender.close()

    key = new_key()
    with ChainClient(spec, spec, ordered=False, last_stage=("a", "b"), key=key) as client:
        threads = [threading.Thread(target=replica, args=args) for args in [("b", [1, 3, 5]), ("a", [0, 2, 4])]]
        for thread in threads:
            thread.start()
        got = dict([client.receiver.receive(timeout=10)])
        threads.append(threading.Thread(target=replica, args=("c", [0])))  # once the port has its first sender
        threads[-1].start()
        got.update(client.receiver.receive(timeout=10) for _ in range(5))
        while threads[-1].is_alive():  # the port answers a newcomer only while it is asked for results
            with contextlib.suppress(ProtocolError):
                client.receiver.receive(timeout=0.5)
        for thread in threads:
            thread.join()
    assert sorted(got) == list(range(100, 106))
    for i in range(6):
        np.testing.assert_array_equal(got[100 + i], values[i])
    assert len(refused) == 1, "the stranger 'c' must be refused"


def test_planner_fans_out_to_replicas_and_fails_one_over() -> None:
    """Partition 1 on two boards: partition 0 is told both; a lost replica moves to the spare alone."""
    parts = Manifest.from_json(manifest_json([partition_json(0), partition_json(1, replicas=2),
                                              partition_json(2)])).partitions
    target = target_of("b1", parts, "10.0.0.1:9000")
    assert [(s.partition, s.replica, s.key) for s in target.stages] == [(0, 0, 0), (1, 0, 1), (1, 1, 2), (2, 0, 3)]
    boards = {f"z{i}": BoardView(f"z{i}", "zedboard", f"10.0.0.{10 + i}:7000", alive=True, state="idle",
                                 deployed=frozenset({("b1", 0), ("b1", 1), ("b1", 2)})) for i in range(5)}
    decision = plan_steps(target, boards, {})
    assert decision.assignment == {0: "z0", 1: "z1", 2: "z2", 3: "z3"}
    assert decision.steps[:4] == [Run("z3", "b1", 2, "10.0.0.1:9000"), Run("z1", "b1", 1, "10.0.0.13:7000"),
                                  Run("z2", "b1", 1, "10.0.0.13:7000"),
                                  Run("z0", "b1", 0, "10.0.0.11:7000,10.0.0.12:7000")]
    running = {name: BoardView(name, "zedboard", b.data_address, alive=True, state="running", bundle="b1",
                               partition=part, next_hop=nxt, deployed=b.deployed)
               for (name, b), (part, nxt) in zip(boards.items(), [
                   (0, "10.0.0.11:7000,10.0.0.12:7000"), (1, "10.0.0.13:7000"), (1, "10.0.0.13:7000"),
                   (2, "10.0.0.1:9000")], strict=False)}
    running["z4"] = boards["z4"]
    running["z2"] = BoardView("z2", "zedboard", "10.0.0.12:7000", alive=False)  # replica 1.1 lost
    decision = plan_steps(target, running, {0: "z0", 1: "z1", 2: "z2", 3: "z3"})
    assert decision.assignment == {0: "z0", 1: "z1", 2: "z4", 3: "z3"}
    assert decision.steps == [Run("z4", "b1", 1, "10.0.0.13:7000"),
                              Run("z0", "b1", 0, "10.0.0.11:7000,10.0.0.14:7000")]


@pytest.mark.skipif(netns_available() is not None, reason=str(netns_available()))
@pytest.mark.usefixtures("server_bin")
def test_finnsplit_run_fails_a_replica_over_to_a_spare(replicated_bundle, zoo_dir: Path, tmp_path: Path) -> None:
    """The daemon path: a virtual fleet (sshd, Mosquitto, agents), the board of replica 0.1 killed."""
    bundle, board, _ = replicated_bundle
    env = {**os.environ, "FINNSPLIT_BOARD_PATH": str(board.parent)}
    done = subprocess.run([*FINNSPLIT, "run", str(bundle), "--virtual-fleet", "1", count_flag(), "300",
                           "--kill-after", "60", "--check", str(zoo_dir / "tfc-w2a2.onnx")],
                          capture_output=True, text=True, check=False, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pipeline running: partition 0.0 on vb0, partition 0.1 on vb1, partition 1 on vb2" in done.stderr
    assert "killing vb1 (partition 0.1)" in done.stderr
    assert "vb1 died, stages now 0.0:vb0, 0.1:spare0-tinyboard, 1:vb2" in done.stdout
    assert "bit-exact vs the Python executor: 300/300 frames" in done.stdout


@pytest.mark.usefixtures("server_bin")
def test_order_any_lets_interleaved_numbers_through_an_ordered_link_does_not(server_bin: Path,  # noqa: F811
                                                                            tmp_path: Path) -> None:
    from orchestrator.dataplane.client import TensorSender

    spec = WireSpec.parse("UINT4:1,2")
    key = new_key()
    servers = ServerFleet(server_bin, tmp_path)
    try:
        with ChainClient(spec, spec, key=key, last_stage="s0", ordered=False) as client:
            server = servers.start("s0", client.result_address, "--order", "any", "--backend", "delay",
                                   "--spec-in", "UINT4:1,2", "--spec-out", "UINT4:1,2", "--delay-us", "0", key=key)
            merged = TensorSender(server.address, spec, node="merge", key=key, order="any")
            for seq in (50, 30, 70, 10):  # two replicas' frames, interleaved
                merged.send(np.array([[seq % 16, 1]]), seq=seq)
            client.receiver.accept()
            assert sorted(client.receiver.receive(timeout=10)[0] for _ in range(4)) == [10, 30, 50, 70]
            ordered = TensorSender(server.address, spec, node="ordered", key=key)
            ordered.send(np.array([[1, 1]]), seq=90)
            ordered.send(np.array([[1, 1]]), seq=80)
            assert client.receiver.receive(timeout=10)[0] == 90
            server.wait_log("sequence number 80 after 90 (frames must arrive in increasing order)")
            merged.close()
        assert '"order":"any"' in json.dumps(server.events[0], separators=(",", ":"))
    finally:
        servers.close()


@pytest.mark.usefixtures("server_bin")
@pytest.mark.parametrize(("flags", "message"), [
    (("--next", "127.0.0.1:9", "--order", "sideways"), "--order must be seq or any"),
    (("--next", "127.0.0.1:9,"), "--next: '' is not HOST:PORT"),
    (("--next", "127.0.0.1:9,host-without-port"), "--next: 'host-without-port' is not HOST:PORT"),
])
def test_bad_fan_out_flags_are_named(server_bin: Path, flags: tuple[str, ...], message: str) -> None:  # noqa: F811
    done = subprocess.run([str(server_bin), "serve", "--listen", "127.0.0.1:0", *flags, "--backend", "delay",
                           "--spec-in", "UINT4:1,2", "--spec-out", "UINT4:1,2"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


def test_a_run_command_may_name_every_replica_of_the_next_stage() -> None:
    from board_agent.run import RunError, parse_run

    command = {"partition": 0, "link_key": "ab" * 32, "args": ["--order", "any"]}
    assert parse_run({**command, "next": "10.0.0.11:7000,10.0.0.12:7000"}).next == "10.0.0.11:7000,10.0.0.12:7000"
    for bad in ("10.0.0.11:7000,", ",10.0.0.11:7000", "10.0.0.11:7000,10.0.0.12", ",".join(["h:1"] * 17)):
        with pytest.raises(RunError, match="'next' must be 'host:port'"):
            parse_run({**command, "next": bad})

"""The board agent against real parts: a mosquitto broker, the agent as a process, the real server.

A real bundle (`finnsplit build` of the zoo's tfc model) is laid out as a deployment leaves it
(docs/control-plane.md#remote-layout); tensors sent to the agent's server are checked bit for bit
against the executor. The only stand-ins are the kernel's fpga_manager (a sysfs tree in tmp_path,
`FakeFpgaKernel`) and FINN's IODMAs (test_cpp_finn_zynq's register simulator).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from agent_fixtures import (
    EXAMPLE,
    ZYNQ_SYNC,
    Board,
    Broker,
    FakeFpgaKernel,
    build_bundle,
    deploy,
    free_port,
    gone,
    hop,
    listen_address,
    partition_specs,
    serve_frames,
    with_finn_build,
)
from cpp_fixtures import server_bin  # noqa: F401  (fixture: builds cpp_server)
from iodma_simulator import IN_PHYS, OUT_PHYS, IodmaSimulator

from board_agent.config import AgentConfig, ConfigError, config_from_dict, load_config
from board_agent.fpga import FpgaError, FpgaManager, firmware_name
from board_agent.run import parse_run, prepare_run
from board_agent.server import server_command
from core.manifest import load_manifest
from orchestrator.dataplane.client import TensorSender


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh mosquitto for one test."""
    b = Broker(tmp_path)
    yield b
    b.stop()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-partition bundle (the zoo's tfc model)."""
    return build_bundle(tmp_path_factory.mktemp("tfc"))


@pytest.fixture
def board(tmp_path: Path, broker: Broker, server_bin: Path) -> Iterator[Board]:  # noqa: F811
    """A board (agent not yet started) on a fresh broker."""
    b = Board(tmp_path, broker, server_bin)
    yield b
    b.close()


# ---- the agent over MQTT ------------------------------------------------------------------------


def test_online_status_is_retained_heartbeats_flow_and_ping_replies(board: Board) -> None:
    board.start(board.probe())
    late = board.probe()  # subscribes after the agent connected: gets the retained status
    status = late.wait("status").payload
    assert late.messages[0].retain
    assert status["online"] is True and status["state"] == "idle"
    assert status["bundle"] is None and status["partition"] is None and status["listen"] is None
    assert status["error"] is None and isinstance(status["agent"], str) and status["ts"] > 0
    first = late.wait("heartbeat").payload
    second = late.wait("heartbeat", lambda h: h["seq"] > first["seq"]).payload
    assert second["ts"] >= first["ts"]
    reply = late.request("ping")
    assert reply["ok"] and reply["error"] is None and abs(reply["result"]["pong"] - time.time()) < 5


def test_run_serves_tensors_bit_exact_publishes_stats_and_stop_drains(board: Board, bundle: Path) -> None:
    bundle_id = deploy(bundle, board.root)
    _, spec_out, graph = partition_specs(bundle)
    probe = board.probe()
    board.start(probe)
    with contextlib.closing(board.receiver(spec_out)) as receiver:
        reply = board.run(probe, bundle=bundle_id, partition=0, next=hop(receiver), backend="emulate")
        assert reply["ok"], reply
        address = listen_address(reply)
        assert address[0] == "127.0.0.1" and address[1] > 0 and reply["result"]["bundle"] == bundle_id
        uids = next(line for line in Path(f"/proc/{reply['result']['pid']}/status").read_text().splitlines()
                    if line.startswith("Uid:"))
        assert uids.split()[1:] == ["65534"] * 4  # the agent's server runs as nobody, not as root
        status = probe.wait("status", lambda s: s["state"] == "running").payload
        assert (status["bundle"], status["partition"], status["listen"]) == (bundle_id, 0, reply["result"]["listen"])
        started = probe.wait("event", lambda e: e["event"] == "server-started").payload
        assert started["pid"] == reply["result"]["pid"] and started["board"] == "zed0"
        serve_frames(address, receiver, graph, count=20, seed=1)
        stats = probe.wait("stats", lambda s: s["frames"]["out"] >= 20).payload
        assert stats["board"] == "zed0" and stats["frames"]["in"] == 20 and stats["errors"]["bad_frame"] == 0

        mark = probe.mark()
        stopped = probe.request("stop")
        assert stopped["ok"] and stopped["result"]["code"] == 0
    exited = probe.wait("event", lambda e: e["event"] == "server-exited", since=mark).payload
    assert exited["expected"] is True and exited["code"] == 0 and exited["exit"]["frames_out"] == 20
    assert probe.wait("status", lambda s: s["state"] == "idle", since=mark).payload["listen"] is None
    assert gone(reply["result"]["pid"])


def test_a_second_run_replaces_the_first_and_no_bundle_means_current(board: Board, bundle: Path) -> None:
    bundle_id = deploy(bundle, board.root)
    spec_in, spec_out, _ = partition_specs(bundle)
    probe = board.probe()
    board.start(probe)
    with contextlib.closing(board.receiver(spec_out)) as receiver:
        first = board.run(probe, bundle=bundle_id, partition=0, next=hop(receiver), backend="emulate")
        assert first["ok"], first
        mark = probe.mark()
        second = board.run(probe, bundle=None, partition=0, next=hop(receiver), backend="delay",
                           args=["--delay-us", "100"])
        assert second["ok"], second
        assert second["result"]["bundle"] == bundle_id and second["result"]["pid"] != first["result"]["pid"]
        assert gone(first["result"]["pid"], timeout=1)
        exited = probe.wait("event", lambda e: e["event"] == "server-exited", since=mark).payload
        assert exited["pid"] == first["result"]["pid"] and exited["expected"] is True
        states = [m.payload["state"] for m in probe.messages[mark:] if m.leaf == "status"]
        assert states[:3] == ["stopping", "starting", "running"]
        sender = TensorSender(listen_address(second), spec_in, key=board.link_key)  # delay: zeros of the output
        sender.send(np.zeros(spec_in.shape, dtype=np.int64))
        assert receiver.receive(timeout=10)[1].shape == spec_out.shape
        sender.close()


def test_the_agent_reconnects_to_a_restarted_broker_and_its_server_keeps_running(
        board: Board, broker: Broker, bundle: Path) -> None:
    bundle_id = deploy(bundle, board.root)
    probe = board.probe()
    board.start(probe)
    reply = board.run(probe, bundle=bundle_id, partition=0, next="127.0.0.1:9", backend="emulate")
    assert reply["ok"], reply
    broker.stop()  # without persistence, the restarted broker has forgotten the retained status
    broker.start()
    board.probe().wait("status", timeout=15)  # the agent is back
    late = board.probe()
    status = late.wait("status").payload  # republished by the agent on reconnecting
    assert late.messages[0].retain
    assert (status["online"], status["state"], status["listen"]) == (True, "running", reply["result"]["listen"])
    assert late.request("ping")["ok"]
    assert not gone(reply["result"]["pid"], timeout=0.1)
    assert "reconnecting in" in board.log()


def test_killed_server_is_restarted_and_serves_again(board: Board, bundle: Path) -> None:
    bundle_id = deploy(bundle, board.root)
    _, spec_out, graph = partition_specs(bundle)
    probe = board.probe()
    board.start(probe)
    with contextlib.closing(board.receiver(spec_out)) as receiver:
        reply = board.run(probe, bundle=bundle_id, partition=0, next=hop(receiver), backend="emulate")
        assert reply["ok"], reply
        serve_frames(listen_address(reply), receiver, graph, count=3, seed=2)
        first = reply["result"]["pid"]
        mark = probe.mark()
        os.kill(first, signal.SIGKILL)
        exited = probe.wait("event", lambda e: e["event"] == "server-exited").payload
        assert (exited["pid"], exited["expected"], exited["signal"]) == (first, False, "SIGKILL")
        restarted = probe.wait("event", lambda e: e["event"] == "server-restarted").payload
        board.pids.add(restarted["pid"])
        assert restarted["pid"] != first and restarted["port"] == listen_address(reply)[1]
        restarting = probe.wait("status", lambda s: s["state"] == "starting", since=mark)
        probe.wait("status", lambda s: s["state"] == "running", since=probe.messages.index(restarting))
        serve_frames(listen_address(reply), receiver, graph, count=3, seed=3)


def test_repeated_failures_end_in_status_error(board: Board, bundle: Path) -> None:
    bundle_id = deploy(bundle, board.root)
    board.config["server"]["max_failures"] = 2
    probe = board.probe()
    board.start(probe)
    reply = board.run(probe, bundle=bundle_id, partition=0, next="127.0.0.1:9", backend="emulate")
    assert reply["ok"], reply
    os.kill(reply["result"]["pid"], signal.SIGKILL)
    restarted = probe.wait("event", lambda e: e["event"] == "server-restarted").payload
    board.pids.add(restarted["pid"])
    os.kill(restarted["pid"], signal.SIGKILL)
    status = probe.wait("status", lambda s: s["state"] == "error").payload
    assert "failed 2 times within 60 s" in status["error"] and status["listen"] is None
    events = [m.payload["event"] for m in probe.messages if m.leaf == "event"]
    assert events == ["server-started", "server-exited", "server-restarted", "server-exited"]
    assert probe.request("ping")["ok"]


def test_killed_agent_leaves_the_lost_will_and_its_server_exits(board: Board, bundle: Path) -> None:
    bundle_id = deploy(bundle, board.root)
    probe = board.probe()
    agent = board.start(probe)
    reply = board.run(probe, bundle=bundle_id, partition=0, next="127.0.0.1:9", backend="emulate")
    assert reply["ok"], reply
    agent.kill()
    assert probe.wait("status", lambda s: not s["online"]).payload == {"online": False, "state": "lost"}
    late = board.probe()
    assert late.wait("status").payload == {"online": False, "state": "lost"} and late.messages[0].retain
    assert gone(reply["result"]["pid"]), "the server outlived its agent"


def test_sigterm_stops_the_server_and_leaves_offline_idle(board: Board, bundle: Path) -> None:
    bundle_id = deploy(bundle, board.root)
    probe = board.probe()
    agent = board.start(probe)
    reply = board.run(probe, bundle=bundle_id, partition=0, next="127.0.0.1:9", backend="emulate")
    assert reply["ok"], reply
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=15) == 0, board.log()
    assert probe.wait("event", lambda e: e["event"] == "server-exited").payload["expected"] is True
    offline = probe.wait("status", lambda s: not s["online"]).payload
    assert offline["state"] == "idle" and offline["listen"] is None
    late = board.probe()
    retained = late.wait("status").payload
    assert (retained["online"], retained["state"]) == (False, "idle")
    assert gone(reply["result"]["pid"])


@pytest.mark.parametrize("damage", ["corrupt", "delete"])
def test_a_damaged_partition_file_fails_the_run_and_nothing_listens(board: Board, bundle: Path, damage: str) -> None:
    bundle_id = deploy(bundle, board.root)
    program_file = board.root / "bundles" / bundle_id / "partition-0" / "program.fsprog"
    if damage == "corrupt":
        data = bytearray(program_file.read_bytes())
        data[len(data) // 2] ^= 0x01
        program_file.write_bytes(bytes(data))
    else:
        program_file.unlink()
    board.config["data_port"] = port = free_port()
    probe = board.probe()
    board.start(probe)
    reply = board.run(probe, bundle=bundle_id, partition=0, next="127.0.0.1:9", backend="emulate")
    assert not reply["ok"] and reply["result"] is None
    assert "partition-0/program.fsprog" in reply["error"]
    assert ("corrupted" if damage == "corrupt" else "missing") in reply["error"]
    status = probe.wait("status", lambda s: s["state"] == "error").payload
    assert "partition-0/program.fsprog" in status["error"] and status["listen"] is None
    assert not [m for m in probe.messages if m.leaf == "event"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_malformed_commands_get_error_replies_and_the_agent_keeps_serving(board: Board, bundle: Path) -> None:
    bundle_id = deploy(bundle, board.root)
    probe = board.probe()
    agent = board.start(probe)
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        mark = probe.mark()
        probe.publish("cmd", raw)
        reply = probe.wait("reply", since=mark).payload
        assert reply["id"] is None and not reply["ok"] and reply["error"].startswith("malformed command")
    for raw in (b'{"op": "ping"}', b'{"id": 7, "op": "ping", "ts": 1}', b'{"id": "x", "op": "ping"}'):
        mark = probe.mark()
        probe.publish("cmd", raw)
        reply = probe.wait("reply", since=mark).payload
        assert not reply["ok"] and reply["error"].startswith("malformed command: command: "), reply
    cases = [
        ({"op": "dance"}, "unknown op 'dance'"),
        ({"op": "run", "partition": "zero", "next": "127.0.0.1:9"}, "'partition'"),
        ({"op": "run", "bundle": "../../etc", "partition": 0, "next": "127.0.0.1:9"}, "'bundle'"),
        ({"op": "run", "bundle": bundle_id, "partition": 0, "next": "nowhere"}, "'next'"),
        ({"op": "run", "bundle": bundle_id, "partition": 0, "next": "127.0.0.1:9", "backend": "gpu"}, "'backend'"),
        ({"op": "run", "bundle": bundle_id, "partition": 7, "next": "127.0.0.1:9"}, "no partition 7"),
        ({"op": "run", "bundle": "0123456789abcdef", "partition": 0, "next": "127.0.0.1:9"}, "not on this board"),
        ({"op": "run", "bundle": bundle_id, "partition": 0, "next": "127.0.0.1:9", "args": ["--listen", "0.0.0.0:1"]},
         "may not set --listen"),
        ({"op": "run", "bundle": bundle_id, "partition": 0, "next": "127.0.0.1:9", "args": ["--queue-depth", "1024"]},
         "--queue-depth must be an integer in 1..32, got '1024'"),
        ({"op": "run", "bundle": bundle_id, "partition": 0, "next": "127.0.0.1:9", "args": ["--delay-us", "5"]},
         "may not set '--delay-us' for the emulate backend"),
        ({"op": "run", "bundle": bundle_id, "partition": 0, "next": "127.0.0.1:9", "args": ["--program=/etc/x"]},
         "may not set --program"),
        ({"op": "run", "bundle": bundle_id, "partition": 0, "next": "127.0.0.1:9", "args": ["--log-level", "x"]},
         "--log-level must be one of debug, info, warn, error"),
        ({"op": "run", "bundle": bundle_id, "partition": 0, "next": "127.0.0.1:9", "link_key": "00" * 31},
         "'link_key' must be the deployment's link key"),
    ]
    for fields, expected in cases:
        reply = probe.request(**{"link_key": board.link_key.hex(), **fields})
        assert not reply["ok"] and expected in reply["error"], (fields, reply)
    assert probe.request("ping")["ok"] and agent.poll() is None


def test_a_server_that_fails_to_start_fails_the_run_with_its_stderr(board: Board, bundle: Path) -> None:
    bundle_id = deploy(bundle, board.root)
    taken = socket.create_server(("127.0.0.1", 0))  # the server's data port is in use
    board.config["data_port"] = taken.getsockname()[1]
    probe = board.probe()
    board.start(probe)
    with taken:
        reply = board.run(probe, bundle=bundle_id, partition=0, next="127.0.0.1:9", backend="emulate")
    assert not reply["ok"] and "finnsplit-server exited with code" in reply["error"]
    assert "Address already in use" in reply["error"]  # the server's own stderr
    assert probe.wait("status", lambda s: s["state"] == "error").payload["error"] == reply["error"]
    assert probe.request("ping")["ok"]


def test_a_run_whose_buffers_exceed_the_boards_budget_is_refused(board: Board, bundle: Path) -> None:
    bundle_id = deploy(bundle, board.root)
    board.config["server"]["max_buffer_mb"] = 0.002
    probe = board.probe()
    board.start(probe)
    reply = board.run(probe, bundle=bundle_id, partition=0, next="127.0.0.1:9", backend="emulate",
                      args=["--queue-depth", "32"])
    assert not reply["ok"] and "--queue-depth 32 needs" in reply["error"] and "server.max_buffer_mb" in reply["error"]
    assert not [m for m in probe.messages if m.leaf == "event"]


# ---- FPGA manager and finn-zynq -----------------------------------------------------------------


def test_fpga_manager_loads_a_bitstream_through_sysfs(tmp_path: Path) -> None:
    kernel = FakeFpgaKernel(tmp_path / "fpga0", tmp_path / "firmware")
    try:
        fpga = FpgaManager(kernel.root, kernel.firmware_dir, timeout_s=1.0)
        good = tmp_path / "a.bit.bin"
        good.write_bytes(b"\xff" * 8 + ZYNQ_SYNC + b"config")
        (kernel.firmware_dir / firmware_name("0" * 16, 3)).write_bytes(b"older bundle")
        fpga.load(good, firmware_name("1" * 16, 0))
        assert fpga.state() == "operating" and kernel.loaded == [good.read_bytes()]
        assert (kernel.root / "flags").read_text() == "0"
        assert (kernel.root / "firmware").read_text() == "finnsplit-1111111111111111-p0.bit.bin"
        assert sorted(p.name for p in kernel.firmware_dir.iterdir()) == ["finnsplit-1111111111111111-p0.bit.bin"]

        bad = tmp_path / "b.bit.bin"
        bad.write_bytes(b"not a bitstream")
        (kernel.root / "state").write_text("unknown")
        with pytest.raises(FpgaError, match="state is 'write init error', not 'operating'"):
            fpga.load(bad, firmware_name("2" * 16, 0))
        with pytest.raises(FpgaError, match="missing"):
            fpga.load(tmp_path / "none.bit.bin", firmware_name("2" * 16, 0))
    finally:
        kernel.close()
    with pytest.raises(FpgaError, match=f"no FPGA manager at {tmp_path / 'fpga9'}"):
        FpgaManager(tmp_path / "fpga9", tmp_path / "firmware").load(good, firmware_name("1" * 16, 0))


def test_finn_zynq_command_line_comes_from_the_manifest(bundle: Path, tmp_path: Path) -> None:
    root = tmp_path / "remote"
    bundle_id = deploy(with_finn_build(bundle, tmp_path), root)
    cfg = config_from_dict({"name": "zed0", "chain": "lab", "remote_root": str(root),
                            "broker": {"host": "b", "username": "u", "password_file": "/p", "ca_file": "/c"}})
    run = prepare_run(root, parse_run({"bundle": bundle_id, "partition": 0, "next": "10.0.0.2:7000",
                                       "backend": "finn-zynq", "link_key": "ab" * 32}))
    assert run.bitbin == root / "bundles" / bundle_id / "partition-0/finn_output/bitfile/finn-accel.bit.bin"
    command = server_command(cfg, Path("/usr/bin/finnsplit-server"), run, 7000)
    flags = dict(zip(command[2::2], command[3::2], strict=True))
    assert command[:2] == ["/usr/bin/finnsplit-server", "serve"]
    finn_io = json.loads((bundle / "manifest.json").read_text())["partitions"][0]["finn_io"]
    assert flags.pop("--user") == "nobody"  # the tests run as root: the server drops to nobody
    assert flags == {
        "--listen": "0.0.0.0:7000", "--next": "10.0.0.2:7000", "--name": "zed0", "--backend": "finn-zynq",
        "--stats": "stdout", "--stats-interval-ms": "1000",
        "--spec-in": "INT2:1,1,1,784", "--spec-out": "INT7:1,1,1,10",
        "--in-word-elems": str(finn_io["in_word_elems"]), "--out-word-elems": str(finn_io["out_word_elems"]),
        "--idma": "/dev/mem@0x40000000",
        "--odma": "/dev/mem@0x40001000", "--dmabuf-in": "/dev/udmabuf0", "--dmabuf-out": "/dev/udmabuf1",
        "--done-timeout-ms": "2000",
    }


def test_finn_zynq_run_loads_the_bitstream_and_drives_the_iodmas(board: Board, bundle: Path) -> None:
    finn_bundle = with_finn_build(bundle, board.tmp)
    bundle_id = deploy(finn_bundle, board.root)
    _, spec_out, graph = partition_specs(bundle)
    part = load_manifest(finn_bundle, verify=False).partitions[0]
    sim = IodmaSimulator(board.tmp, graph, part.finn_io.in_word_elems, part.finn_io.out_word_elems)
    board.config["finn_zynq"] = {
        "idma": str(sim.paths["idma.regs"]), "odma": f"{sim.paths['odma.regs']}@0",
        "dmabuf_in": str(sim.paths["udmabuf-in"]), "dmabuf_out": str(sim.paths["udmabuf-out"]),
        "dmabuf_in_phys": IN_PHYS, "dmabuf_out_phys": OUT_PHYS, "done_timeout_ms": 5000,
    }
    probe = board.probe()
    board.start(probe)
    sim.start()
    try:
        with contextlib.closing(board.receiver(spec_out)) as receiver:
            reply = board.run(probe, bundle=bundle_id, partition=0, next=hop(receiver),
                              backend="finn-zynq")
            assert reply["ok"], (reply, board.log())
            assert board.kernel.loaded == [(finn_bundle / part.finn.files["bitbin"].path).read_bytes()]
            serve_frames(listen_address(reply), receiver, graph, count=5, seed=4)
    finally:
        sim.stop()
    assert sim.violations == [] and sim.frames == 5


def test_finn_zynq_run_fails_when_the_bitstream_does_not_load(board: Board, bundle: Path) -> None:
    bundle_id = deploy(with_finn_build(bundle, board.tmp), board.root)
    board.config["fpga"]["manager"] = str(board.tmp / "sys" / "fpga1")
    probe = board.probe()
    board.start(probe)
    reply = board.run(probe, bundle=bundle_id, partition=0, next="127.0.0.1:9", backend="finn-zynq")
    assert not reply["ok"] and "no FPGA manager at" in reply["error"] and "fpga1" in reply["error"]
    assert probe.wait("status", lambda s: s["state"] == "error").payload["listen"] is None


# ---- config -------------------------------------------------------------------------------------


def test_the_example_config_loads_with_board_defaults() -> None:
    cfg = load_config(EXAMPLE)
    assert isinstance(cfg, AgentConfig) and cfg.data_host == "0.0.0.0" and cfg.heartbeat_s == 2.0
    assert cfg.fpga.manager == "/sys/class/fpga_manager/fpga0" and cfg.fpga.firmware_dir == "/lib/firmware"
    assert cfg.finn_zynq.dmabuf_in == "/dev/udmabuf0" and cfg.server.max_failures == 5
    assert cfg.topic("status") == f"finnsplit/{cfg.chain}/board/{cfg.name}/status"
    assert config_from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c.pop("name"), "name: expected a name matching [a-z0-9-]+, found nothing (the field is required)"),
    (lambda c: c["broker"].pop("host"), "broker.host: expected a string, found nothing"),
    (lambda c: c["broker"].update(port="1883"), "broker.port: expected an integer in 1..65535, found '1883'"),
    (lambda c: c.update(heartbeat_s=True), "heartbeat_s: expected a number > 0, found true"),
    (lambda c: c.update(name="Zed 0"), "name: expected a name matching [a-z0-9-]+, found 'Zed 0'"),
    (lambda c: c.update(fpga={"manger": "/sys"}), "fpga.manger: expected a field of fpga (manager, firmware_dir, "
                                                  "timeout_s), found unknown field 'manger' (did you mean 'manager'?)"),
    (lambda c: c.update(server=[]), "server: expected a mapping (listen_timeout_s, "),
    (lambda c: c["broker"].pop("username"), "broker.username: expected a value: the broker needs credentials and TLS"),
    (lambda c: c["broker"].pop("ca_file"), "broker.ca_file: expected a value"),
    (lambda c: c.update(server={"backoff_s": 20.0}), "server.backoff_s: expected a number <= backoff_max_s (10.0), "
                                                     "found 20.0"),
    (lambda c: c.update(commands={"max_bytes": 10}), "commands.max_bytes: expected an integer in 1024..1048576, "
                                                     "found 10"),
])
def test_config_errors_name_the_field(tmp_path: Path, change: Callable[[dict[str, Any]], Any], message: str) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    change(data)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_a_bad_config_stops_the_agent_with_exit_status_2(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("name: zed0\nchain: [lab\n")
    done = subprocess.run([sys.executable, "-m", "board_agent", "--config", str(path)], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()  # one line: the file, what was expected, what was found
    assert len(lines) == 1 and lines[0].startswith(f"finnsplit-agent: {path}: expected valid YAML, found while parsing")


def test_the_agent_imports_no_numpy_or_onnx() -> None:
    code = ("import sys, board_agent.__main__; "
            "print(sorted(m for m in ('numpy', 'onnx', 'onnxruntime', 'qonnx') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.strip() == "[]"


def test_finn_zynq_flags_carry_one_value_per_tensor(bundle: Path, tmp_path: Path) -> None:
    """A boundary of two tensors: per-tensor word widths and DMAs, comma-separated in boundary order; the DMA of
    each tensor from the build's iodma_order (FINN's driver) when recorded, else idma{k}; a DMA the .hwh does not
    map is a RunError. finn_io's list form reads back from JSON, its number form stays a number."""
    import dataclasses

    from board_agent.run import RunError
    from board_agent.server import finn_zynq_flags
    from core.manifest.schema import Boundary, FinnIO, _Obj

    part = load_manifest(with_finn_build(bundle, tmp_path)).partitions[0]
    assert part.finn is not None
    cfg = config_from_dict({"name": "zed0", "chain": "lab", "remote_root": str(tmp_path),
                            "finn_zynq": {"dmabuf_in": "/dev/udmabuf0,/dev/udmabuf2"},
                            "broker": {"host": "b", "username": "u", "password_file": "/p", "ca_file": "/c"}})
    iodma = {**part.finn.iodma, "idma1": {"base": "0x40002000", "range": 4096}}
    tensor = part.input.tensors[0]
    two = dataclasses.replace(part, input=Boundary((tensor, tensor)), finn_io=FinnIO((4, 8), 5),
                              finn=dataclasses.replace(part.finn, iodma=iodma))

    def flags(p: Any) -> dict[str, str]:
        words = finn_zynq_flags(cfg, p)
        return dict(zip(words[::2], words[1::2], strict=True))

    got = flags(two)
    assert got["--in-word-elems"] == "4,8" and got["--out-word-elems"] == "5"
    assert got["--idma"] == "/dev/mem@0x40000000,/dev/mem@0x40002000" and got["--odma"] == "/dev/mem@0x40001000"
    assert got["--dmabuf-in"] == "/dev/udmabuf0,/dev/udmabuf2"
    ordered = dataclasses.replace(two, finn=dataclasses.replace(
        two.finn, iodma_order={"inputs": ("idma1", "idma0"), "outputs": ("odma0",)}))
    assert flags(ordered)["--idma"] == "/dev/mem@0x40002000,/dev/mem@0x40000000"
    with pytest.raises(RunError, match="maps no idma1"):
        flags(dataclasses.replace(two, finn=part.finn))
    assert FinnIO.from_json(_Obj(two.finn_io.to_json(), "m", "finn_io")) == FinnIO((4, 8), 5)
    assert two.finn_io.to_json() == {"in_word_elems": [4, 8], "out_word_elems": 5}

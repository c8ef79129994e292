"""Helpers for the board agent tests: a mosquitto broker, a bundle laid out as on a board, an MQTT
probe, the agent as a process, and a fake fpga_manager sysfs tree (the one part that cannot be real).

Test modules import what they use (`from agent_fixtures import Board, Broker, deploy, ...`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import yaml
from cpp_fixtures import random_input

from core.manifest import FinnBuild, bundle_id_of, file_entry, load_manifest, write_manifest
from core.mqtt_login import tls_context
from orchestrator.control.broker import Identity, init_secrets
from orchestrator.control.fleet import BrokerSettings
from orchestrator.dataplane.client import ResultReceiver, TensorSender
from orchestrator.dataplane.link_auth import new_key
from orchestrator.dataplane.protocol import WireSpec
from orchestrator.rigs.services import start_mosquitto
from splitter import program
from splitter.executor import execute

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "board_agent" / "systemd" / "finnsplit-agent.yaml.example"
ZYNQ_SYNC = bytes([0x66, 0x55, 0x99, 0xAA])  # what the kernel's zynq-fpga driver looks for in a .bit.bin


# ---- broker, bundle, fake kernel ----------------------------------------------------------------


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A mosquitto on a free loopback port configured as `finnsplit fleet init` configures one: TLS with a
    fleet CA, a password per board (zed0, zed1) and for the orchestrator, ACLs, no anonymous access;
    without persistence (a restart forgets retained messages)."""

    def __init__(self, work: Path, chain: str = "test", boards: tuple[str, ...] = ("zed0", "zed1")) -> None:
        """Make the secrets, write the config and start the broker."""
        self.port = free_port()
        self.work, self.chain = work, chain
        self.secrets = init_secrets(work / "secrets", chain, list(boards), ["127.0.0.1", "localhost"])
        self.conf = work / "mosquitto.conf"
        # as root, mosquitto switches to its own user, which cannot read tmp_path's files
        self.conf.write_text(self.secrets.mosquitto_conf("127.0.0.1", self.port, "persistence false\nuser root\n"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def identity(self, who: str) -> Identity:
        """The MQTT identity of board `who`, or of the orchestrator for "orchestrator"."""
        return self.secrets.orchestrator() if who == "orchestrator" else self.secrets.board(who)

    def client_options(self, who: str | None = "orchestrator", password: str | None = None) -> dict[str, Any]:
        """aiomqtt.Client arguments logging in as `who` (None: anonymous, over TLS); `password` overrides."""
        options: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port,
                                   "tls_context": tls_context(self.secrets.ca_file)}
        if who is not None:
            ident = self.identity(who)
            options.update(username=ident.username, password=password or ident.password_file.read_text().strip())
        return options

    def agent_broker(self, name: str) -> dict[str, Any]:
        """The `broker` section of board `name`'s agent config."""
        ident = self.identity(name)
        return {"host": "127.0.0.1", "port": self.port, "username": ident.username,
                "password_file": str(ident.password_file), "ca_file": str(self.secrets.ca_file)}

    def settings(self) -> BrokerSettings:
        """The orchestrator's fleet.yaml broker settings."""
        ident = self.identity("orchestrator")
        return BrokerSettings("127.0.0.1", self.port, ident.username, ident.password_file, self.secrets.ca_file)

    def start(self) -> None:
        """Start mosquitto and wait until it accepts connections."""
        self.proc = start_mosquitto(self.conf.read_text(), self.work, "127.0.0.1", self.port)

    def stop(self) -> None:
        """Stop mosquitto."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)


def build_bundle(work: Path) -> Path:
    """`finnsplit build tfc-w2a2.onnx --boards 1` in `work`: a one-partition bundle."""
    from splitter.zoo import export

    export("tfc-w2a2", work / "tfc.onnx", seed=0)
    done = subprocess.run([sys.executable, "-c", "from cli.main import main; main()", "build",
                           str(work / "tfc.onnx"), "--boards", "1", "--finn", "no", "-o", str(work / "build")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return work / "build"


def deploy(bundle: Path, remote_root: Path, partition: int = 0) -> str:
    """Lay out one partition as a deployment does (bundles/<id>/, current); returns the bundle id."""
    manifest = (bundle / "manifest.json").read_bytes()
    bundle_id = bundle_id_of(manifest)
    target = remote_root / "bundles" / bundle_id
    target.mkdir(parents=True)
    (target / "manifest.json").write_bytes(manifest)
    shutil.copytree(bundle / f"partition-{partition}", target / f"partition-{partition}")
    (remote_root / "current").symlink_to(Path("bundles") / bundle_id)
    return bundle_id


def with_finn_build(bundle: Path, work: Path) -> Path:
    """A copy of `bundle` whose partition 0 carries a FINN build entry (a fake .bit.bin, IODMA bases)."""
    copy = work / "finn-bundle"
    shutil.copytree(bundle, copy)
    bitbin = copy / "partition-0" / "finn_output" / "bitfile" / "finn-accel.bit.bin"
    bitbin.parent.mkdir(parents=True)
    bitbin.write_bytes(b"\xff" * 16 + ZYNQ_SYNC + np.random.default_rng(0).bytes(2000))
    manifest = load_manifest(copy, verify=False)
    finn = FinnBuild(
        files={"bitbin": file_entry(copy, bitbin)}, arch="zynq",
        iodma={"idma0": {"base": "0x40000000", "range": 4096}, "odma0": {"base": "0x40001000", "range": 4096}},
    )
    write_manifest(copy, manifest.replace_partition(0, finn=finn))
    return copy


class FakeFpgaKernel:
    """The kernel side of an fpga_manager sysfs tree: a firmware name written programs the "PL".

    Like drivers/fpga/zynq-fpga.c it refuses a bitstream without the sync word ("write init
    error") and, like fpga-mgr.c, a firmware file it cannot find ("firmware request error").
    Unlike the kernel it answers a few milliseconds after the write, not within it, so a test that
    loads twice resets `state` in between.
    """

    def __init__(self, root: Path, firmware_dir: Path) -> None:
        """Create the tree (state "unknown") and start watching `firmware`."""
        self.root, self.firmware_dir = root, firmware_dir
        root.mkdir(parents=True)
        firmware_dir.mkdir(parents=True)
        for name, value in (("flags", "0"), ("state", "unknown"), ("firmware", "")):
            (root / name).write_text(value)
        self.loaded: list[bytes] = []
        self._seen = (root / "firmware").stat().st_mtime_ns
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            mtime = (self.root / "firmware").stat().st_mtime_ns
            name = (self.root / "firmware").read_text().strip()
            if mtime == self._seen or not name:
                continue
            self._seen = mtime
            path = self.firmware_dir / name
            if not path.is_file():
                state = "firmware request error"
            elif (self.root / "flags").read_text().strip() != "0" or ZYNQ_SYNC not in path.read_bytes()[:64]:
                state = "write init error"
            else:
                self.loaded.append(path.read_bytes())
                state = "operating"
            (self.root / "state").write_text(state + "\n")

    def close(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._thread.join(timeout=5)


# ---- an MQTT client for the tests, and the agent as a process ----------------------------------


@dataclass
class Message:
    """One MQTT message the probe received."""

    leaf: str  # topic after finnsplit/<chain>/board/<name>/
    payload: Any
    retain: bool


class Probe:
    """An MQTT client on its own thread: records every message of one board, sends commands.

    It logs in as the orchestrator unless told otherwise (`who`: a board's name).
    """

    def __init__(self, broker: Broker, prefix: str, who: str = "orchestrator") -> None:
        """Connect and subscribe to prefix/#."""
        self.prefix = prefix
        self._options = broker.client_options(who)
        self.messages: list[Message] = []
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._client: aiomqtt.Client | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)
        self._thread.start()
        assert self._ready.wait(5), "probe could not connect to the broker"

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        with contextlib.suppress(aiomqtt.MqttError):  # the broker went away: the probe is done
            async with aiomqtt.Client(**self._options) as client:
                await client.subscribe(f"{self.prefix}/#", qos=1)
                self._client = client
                self._ready.set()
                tasks = [asyncio.create_task(self._read(client)), asyncio.create_task(self._stop.wait())]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                payload = json.loads(message.payload)
            except (ValueError, RecursionError):  # the abuse suite's own messages
                payload = message.payload
            with self._changed:
                self.messages.append(Message(message.topic.value[len(self.prefix) + 1 :], payload,
                                             bool(message.retain)))
                self._changed.notify_all()

    def mark(self) -> int:
        """A position in the message log (wait(..., since=mark) ignores what came before)."""
        return len(self.messages)

    def wait(self, leaf: str, predicate: Callable[[Any], bool] = lambda p: True, timeout: float = 10.0,
             since: int = 0) -> Message:
        """The first message on `leaf` (after `since`) whose payload satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for message in self.messages[since:]:
                    if message.leaf == leaf and isinstance(message.payload, dict) and predicate(message.payload):
                        return message
                left = deadline - time.monotonic()
                assert left > 0, (f"no matching {leaf} message within {timeout} s; got "
                                  f"{[(m.leaf, str(m.payload)[:200]) for m in self.messages[-30:]]}")
                self._changed.wait(left)

    def publish(self, leaf: str, payload: bytes, retain: bool = False) -> None:
        """Publish raw bytes to prefix/leaf with QoS 1."""
        assert self._client is not None
        coro = self._client.publish(f"{self.prefix}/{leaf}", payload, qos=1, retain=retain)
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(5)

    def request(self, op: str, timeout: float = 20.0, **fields: Any) -> dict[str, Any]:
        """Send a command and wait for its reply."""
        cid = uuid.uuid4().hex
        self.publish("cmd", json.dumps({"id": cid, "op": op, "ts": time.time(), **fields}).encode())
        return self.wait("reply", lambda r: r.get("id") == cid, timeout).payload

    def close(self) -> None:
        """Disconnect."""
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=5)


class Board:
    """One board's agent under test: its config, remote root and fake sysfs in tmp_path."""

    def __init__(self, tmp_path: Path, broker: Broker, binary: Path) -> None:
        """Lay out the board's directories; `start` runs the agent."""
        self.tmp, self.broker = tmp_path, broker
        self.root = tmp_path / "remote"
        self.root.mkdir()
        self.kernel = FakeFpgaKernel(tmp_path / "sys" / "fpga0", tmp_path / "firmware")
        self.config: dict[str, Any] = {
            "name": "zed0", "chain": "test", "broker": broker.agent_broker("zed0"),
            "remote_root": str(self.root), "data_host": "127.0.0.1", "data_port": 0, "server_binary": str(binary),
            "heartbeat_s": 0.2,
            "fpga": {"manager": str(self.kernel.root), "firmware_dir": str(self.kernel.firmware_dir), "timeout_s": 2.0},
            "server": {"backoff_s": 0.1, "backoff_max_s": 0.4, "stop_timeout_s": 5.0, "stats_interval_ms": 100,
                       "listen_timeout_s": 10.0},
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.probes: list[Probe] = []
        self.pids: set[int] = set()
        self.link_key = new_key()  # the deployment's data-plane key the tests' run commands hand over

    def receiver(self, spec: WireSpec) -> ResultReceiver:
        """A result port for this board's server: authenticated with the board's link key."""
        return ResultReceiver(spec, key=self.link_key)

    def probe(self, who: str = "orchestrator") -> Probe:
        """A new MQTT subscriber to this board's topics, logged in as `who` (the orchestrator, or a board)."""
        probe = Probe(self.broker, "finnsplit/test/board/zed0", who)
        self.probes.append(probe)
        return probe

    def start(self, probe: Probe) -> subprocess.Popen[bytes]:
        """Write the config, start `python -m board_agent` and wait until `probe` sees it online."""
        path = self.tmp / "agent.yaml"
        path.write_text(yaml.safe_dump(self.config))
        with (self.tmp / "agent.log").open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "board_agent", "--config", str(path)],
                                         stderr=log, cwd=REPO)
        try:
            probe.wait("status", lambda s: s["online"], timeout=10)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nagent log:\n{self.log()}") from None
        return self.proc

    def run(self, probe: Probe, **fields: Any) -> dict[str, Any]:
        """A run command (with this board's link key unless given); remembers the server's pid for teardown."""
        fields.setdefault("link_key", self.link_key.hex())
        reply = probe.request("run", **fields)
        if reply["ok"]:
            self.pids.add(reply["result"]["pid"])
        return reply

    def log(self) -> str:
        """The agent's stderr so far ("" before it started)."""
        path = self.tmp / "agent.log"
        return path.read_text() if path.exists() else ""

    def close(self) -> None:
        """Kill the agent and any server it left, close the probes and the fake kernel; no tracebacks logged."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for probe in self.probes:
            probe.close()
        self.kernel.close()
        assert "Traceback" not in self.log(), self.log()


def gone(pid: int, timeout: float = 10.0) -> bool:
    """True once process `pid` has exited (or is a zombie), waiting up to `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        time.sleep(0.02)
    return False


def partition_specs(bundle: Path) -> tuple[WireSpec, WireSpec, Any]:
    """Partition 0's input and output wire specs and its program (the executor's reference)."""
    part = load_manifest(bundle, verify=False).partitions[0]
    graph = program.read(bundle / part.files["program"].path)
    return WireSpec.parse(part.input.wire), WireSpec.parse(part.output.wire), graph


def serve_frames(address: tuple[str, int], receiver: ResultReceiver, graph: Any, count: int, seed: int) -> None:
    """Send `count` random frames to `address`; the results must equal the executor's, bit for bit."""
    rng = np.random.default_rng(seed)
    frames = [random_input(graph, rng) for _ in range(count)]
    sender = TensorSender(address, WireSpec.of(graph.input), key=receiver.key)
    try:
        for frame in frames:
            sender.send(frame)
        for frame in frames:
            _, got = receiver.receive(timeout=10)
            np.testing.assert_array_equal(got, execute(graph, frame).reshape(got.shape))
    finally:
        sender.close()


def hop(receiver: ResultReceiver) -> str:
    """The "next" of the last server: the receiver's host:port."""
    host, port = receiver.address
    return f"{host}:{port}"


def listen_address(reply: dict[str, Any]) -> tuple[str, int]:
    """(host, port) of a run reply's "listen"."""
    host, port = reply["result"]["listen"].rsplit(":", 1)
    return host, int(port)



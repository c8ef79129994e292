"""The orchestrator on a virtual fleet (namespaces, real sshd, real Mosquitto, real agents and servers):
deploy a bundle, run it, lose a board mid-stream, fail over to a spare, and lose no frame — all of it
authenticated and encrypted, while a stranger's MQTT clients, data frames and results are refused
and a board's malformed messages are shrugged off."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiomqtt
import numpy as np
import pytest
from cpp_fixtures import server_bin  # noqa: F401  (fixture)

from core.manifest import load_manifest
from core.mqtt_login import tls_context
from orchestrator.control.daemon import DaemonConfig, Orchestrator
from orchestrator.control.fleet import load_fleet
from orchestrator.dataplane.client import TensorSender
from orchestrator.dataplane.link_auth import new_key
from orchestrator.dataplane.pipeline_client import ResilientClient
from orchestrator.dataplane.protocol import HandshakeError, WireSpec
from orchestrator.rigs.netns import netns_available
from orchestrator.rigs.vfleet import VirtualFleet
from splitter import program
from splitter.executor import execute

pytestmark = pytest.mark.skipif(netns_available() is not None, reason=str(netns_available()))
FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]


@pytest.fixture(scope="module")
def cnv_bundle(zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CNV split over 3 Zedboards, one stage each."""
    out = tmp_path_factory.mktemp("orch") / "cnv"
    done = subprocess.run([*FINNSPLIT, "build", str(zoo_dir / "cnv-w2a2.onnx"), "--boards", "3", "--no-replicate",
                           "--finn", "no", "-o", str(out)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return out


def whole_graph(bundle: Path):
    """The bundle's partitions' programs as one executable chain."""
    manifest = load_manifest(bundle)
    pieces = [program.read(bundle / p.files["program"].path) for p in manifest.partitions]
    return lambda x: _chain(pieces, x)


def _chain(pieces, x):
    for piece in pieces:
        x = execute(piece, x)
    return x


async def _mqtt(**options: object) -> str:
    try:
        async with aiomqtt.Client(**options, timeout=5) as mqtt:
            if "username" in options:  # a board's own identity: malformed messages where the orchestrator reads
                prefix = f"finnsplit/vfleet/board/{options['username'].rsplit('-', 1)[1]}"
                for leaf, payload in (("reply", b"[1]"), ("status", b"[" * 60_000), ("heartbeat", b"\xff"),
                                      ("event", b'{"event": 5}'), ("status", b'{"online": "yes"}')):
                    await mqtt.publish(f"{prefix}/{leaf}", payload, qos=1)
            return "connected"
    except aiomqtt.MqttError as exc:
        return str(exc)


def attack(vfleet: VirtualFleet, orch: Orchestrator, client: ResilientClient, in_spec: WireSpec,
           out_spec: WireSpec) -> None:
    """What a stranger on the network tries against the running pipeline: every attempt is refused."""
    assert vfleet.secrets is not None
    tls = {"hostname": vfleet.network.host_address, "port": 8883, "tls_context": tls_context(vfleet.secrets.ca_file)}
    z0 = vfleet.secrets.board("z0")
    assert "Not authorized" in asyncio.run(_mqtt(**tls))  # anonymous
    assert "Not authorized" in asyncio.run(_mqtt(**tls, username=z0.username, password="guess"))
    # a board's own (real) identity sending malformed messages: the orchestrator shrugs them off
    assert asyncio.run(_mqtt(**tls, username=z0.username, password=z0.password_file.read_text().strip())) == "connected"
    first = orch.first_hop()
    assert first is not None
    with pytest.raises(HandshakeError, match="requires authentication"):
        TensorSender(first, in_spec, node="stranger")  # a stranger's data frames
    with pytest.raises(HandshakeError, match="failed to authenticate"):
        TensorSender(first, in_spec, node="stranger", key=new_key())
    for key in (None, new_key()):  # a stranger's results
        with pytest.raises(HandshakeError):
            TensorSender(client.result_address, out_spec, node=str(orch.last_stage()), key=key)
    deadline = time.monotonic() + 5
    while len(client.port.refused) < 2 and time.monotonic() < deadline:  # the port's own thread records them
        time.sleep(0.05)
    assert len(client.port.refused) >= 2, client.port.refused


@pytest.mark.usefixtures("server_bin")
def test_deploy_run_and_fail_over_without_losing_frames(cnv_bundle: Path, tmp_path: Path) -> None:
    boards = [("z0", "zedboard"), ("z1", "zedboard"), ("z2", "zedboard"), ("z3", "zedboard")]
    with VirtualFleet(tmp_path / "fleet", boards, heartbeat_s=0.5) as vfleet:
        fleet = load_fleet(vfleet.fleet_path)
        manifest = load_manifest(cnv_bundle)
        in_spec, out_spec = WireSpec.parse(manifest.input.wire), WireSpec.parse(manifest.output.wire)
        log: list[str] = []
        holder: dict[str, Orchestrator] = {}
        key = new_key()  # the deployment's data-plane key: every link is authenticated
        client = ResilientClient(in_spec, out_spec, lambda: holder["o"].first_hop() if "o" in holder else None,
                                 result_host=fleet.client_host, deadline_s=2.0, window=4, key=key,
                                 last_stage=lambda: holder["o"].last_stage() if "o" in holder else None)
        rng = np.random.default_rng(4)
        frames = [rng.integers(in_spec.dtype.min, in_spec.dtype.max, size=in_spec.shape, endpoint=True)
                  for _ in range(800)]
        killed: list[tuple[str, int]] = []
        orch_refused: list[str] = []

        def stream() -> list[np.ndarray]:
            return client.infer_many(frames, timeout_s=120)

        def kill_stage_one() -> None:
            while client.delivered < 40:
                threading.Event().wait(0.01)
            victim = holder["o"].assignment[1]
            killed.append((victim, client.delivered))
            vfleet.kill(victim)

        async def scenario() -> list[np.ndarray]:
            orch = Orchestrator(fleet, cnv_bundle, client.result_address,
                                DaemonConfig(heartbeat_timeout_s=2.0, tick_s=0.2), log=log.append, link_key=key)
            holder["o"] = orch
            stop = asyncio.Event()
            task = asyncio.create_task(orch.run(stop))
            try:
                for _ in range(300):
                    if orch.state == "running":
                        break
                    await asyncio.sleep(0.1)
                assert orch.state == "running", log
                assert sorted(orch.assignment.values()) == ["z0", "z1", "z2"]
                for _ in range(600):  # the healthy pipeline prestages the spare with stage 1's files
                    if (orch.bundle, 1) in orch.deployed["z3"]:
                        break
                    await asyncio.sleep(0.1)
                assert (orch.bundle, 1) in orch.deployed["z3"], log
                await asyncio.to_thread(attack, vfleet, orch, client, in_spec, out_spec)
                killer = threading.Thread(target=kill_stage_one)
                killer.start()
                results = await asyncio.to_thread(stream)
                killer.join()
                assert orch.assignment[1] == "z3", log  # the spare took over stage 1
                orch_refused.extend(orch.link.refused)
                return results
            finally:
                stop.set()
                await task

        try:
            results = asyncio.run(scenario())
        finally:
            client.close()
        shown = subprocess.run([*FINNSPLIT, "status", "--fleet", str(vfleet.fleet_path)], capture_output=True,
                               text=True, check=False)
        assert shown.returncode == 0, shown.stderr
        assert "stages 0:z0, 1:z3, 2:z2" in shown.stdout, shown.stdout  # retained by the broker
        rows = [line.split()[:4] for line in shown.stdout.splitlines()]
        assert ["z1", "zedboard", "OFFLINE", "lost"] in rows, shown.stdout
        reference = whole_graph(cnv_bundle)
        for frame, got in zip(frames, results, strict=True):
            np.testing.assert_array_equal(got, reference(frame))
        assert killed and killed[0][1] < len(frames) - 300, "the board must die mid-stream"
        assert any("spare z3 holds partition 1's files" in line for line in log), log  # prestaged while healthy
        assert not any("deploying partition 1 to z3" in line for line in log), log  # so failover uploads nothing
        assert len(orch_refused) >= 5, orch_refused  # the malformed board messages, refused and logged

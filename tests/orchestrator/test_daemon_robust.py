"""The reconcile loop outlives failures (docs/security.md#robust-message-handling): a step whose
executor raises something unexpected is logged and counted, and the loop goes on observing,
planning and publishing; a board's malformed messages never reach the planner. Real broker."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiomqtt
from agent_fixtures import Broker
from manifest_fixtures import manifest_json, partition_json

from core.manifest import Manifest, load_manifest
from orchestrator.control.daemon import DaemonConfig, Orchestrator
from orchestrator.control.fleet import load_fleet
from orchestrator.control.reconcile import Degraded


def _fleet_and_bundle(tmp_path: Path, broker: Broker) -> tuple[Path, Manifest]:
    me = broker.identity("orchestrator")
    (tmp_path / "fleet.yaml").write_text(
        f"chain: test\nbroker: {{host: 127.0.0.1, port: {broker.port}, username: {me.username}, "
        f"password_file: {me.password_file}, ca_file: {broker.secrets.ca_file}}}\n"
        "client: {host: 127.0.0.1}\nboards:\n  - {name: zed0, type: zedboard, address: 127.0.0.1}\n")
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "manifest.json").write_text(json.dumps(manifest_json([partition_json(0, files={})])))
    return tmp_path / "fleet.yaml", load_manifest(tmp_path / "bundle")


def one_board_orchestrator(tmp_path: Path, broker: Broker, log: list[str]) -> tuple[Path, Orchestrator]:
    """fleet.yaml and an Orchestrator for one board with no agent (every tick finds it missing), logging to `log`."""
    fleet_path, manifest = _fleet_and_bundle(tmp_path, broker)
    return fleet_path, Orchestrator(load_fleet(fleet_path), tmp_path / "bundle", ("127.0.0.1", 9),
                                    DaemonConfig(heartbeat_timeout_s=0.5, tick_s=0.1), log=log.append,
                                    manifest=manifest)


def test_the_reconcile_loop_goes_on_after_a_step_raises(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    try:
        log: list[str] = []
        _, orch = one_board_orchestrator(tmp_path, broker, log)
        calls: list[float] = []

        async def broken(step: Degraded) -> None:  # fault injection: an executor with a bug
            calls.append(time.monotonic())
            raise RuntimeError("a bug in an executor")

        orch.executors[Degraded] = broken  # zed0 has no agent: every tick plans a Degraded step

        async def scenario() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(orch.run(stop))
            await asyncio.wait_for(orch.link.connected.wait(), 10)
            board = broker.client_options("zed0")
            async with aiomqtt.Client(**board) as mqtt:  # the board's own identity, malformed messages
                for payload in (b"[1]", b"[" * 5000, b'{"online": 1}'):
                    await mqtt.publish("finnsplit/test/board/zed0/status", payload, qos=1)
            await asyncio.sleep(2.0)
            stop.set()
            await asyncio.wait_for(task, 10)

        asyncio.run(scenario())
        assert len(calls) >= 5, log  # the loop kept planning after the first failure
        assert sum("RuntimeError('a bug in an executor')" in line for line in log) >= 5
        assert orch.state == "waiting" and len(orch.link.refused) == 3  # zed0 never reported: waited for
        assert orch.link.board("zed0").status == {}  # nothing malformed reached the planner
    finally:
        broker.stop()

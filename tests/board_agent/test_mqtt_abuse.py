"""The MQTT abuse suite: what a client on the lab network may send, against the real broker, the real
agent (with its real server running a bundle) and the orchestrator's real fleet link.

Every case is refused, logged, and changes nothing: afterwards the agent still answers, its server
still computes bit-exactly, and the fleet link still observes and commands the board.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
import yaml
from agent_fixtures import (
    Board,
    Broker,
    Probe,
    build_bundle,
    deploy,
    hop,
    listen_address,
    partition_specs,
    serve_frames,
)
from cpp_fixtures import server_bin  # noqa: F401  (fixture: builds cpp_server)

from core.mqtt_login import tls_context
from orchestrator.control.fleet_link import FleetLink
from orchestrator.control.pki import ensure_ca

DEEP = [b"[" * 60_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000, b'{"id": "d", "op": "ping", "x": ' + b"[" * 5000]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-partition bundle (the zoo's tfc model)."""
    return build_bundle(tmp_path_factory.mktemp("tfc"))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh broker for one test."""
    b = Broker(tmp_path)
    yield b
    b.stop()


@pytest.fixture
def board(tmp_path: Path, broker: Broker, server_bin: Path) -> Iterator[Board]:  # noqa: F811
    """A board (agent not yet started)."""
    b = Board(tmp_path, broker, server_bin)
    yield b
    b.close()


def rss_kb(pid: int) -> int:
    """Resident memory of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_the_agent_refuses_every_malformed_command_and_its_server_keeps_computing(board: Board, bundle: Path) -> None:
    bundle_id = deploy(bundle, board.root)
    _, spec_out, graph = partition_specs(bundle)
    probe = board.probe()
    agent = board.start(probe)
    with contextlib.closing(board.receiver(spec_out)) as receiver:
        reply = board.run(probe, bundle=bundle_id, partition=0, next=hop(receiver), backend="emulate")
        assert reply["ok"], reply
        serve_frames(listen_address(reply), receiver, graph, count=4, seed=1)
        memory = rss_kb(agent.pid)
        cases: list[tuple[bytes, str]] = [
            (b"{not json", "not JSON"), (b"\xff\xfe", "not JSON"), (b"", "not JSON"), (b"[1]", "not an object"),
            (b'"run"', "not an object"), (b"null", "not an object"),
            (b'{"id": 1, "op": "stop", "ts": 1}', "'id' must be str"),
            (b'{"id": "a", "op": ["stop"], "ts": 1}', "'op' must be str"),
            (b'{"id": "a", "op": "stop", "ts": "now"}', "'ts' must be int/float"),
            (b'{"id": "a", "op": "stop", "ts": true}', "'ts' must be int/float"),
            (b'{"id": "a", "op": "stop"}', "missing field 'ts'"),
            (json.dumps({"id": "x" * 500, "op": "stop", "ts": time.time()}).encode(), "1..128 characters"),
            (json.dumps({"id": "big", "op": "stop", "ts": time.time(), "pad": "x" * 100_000}).encode(),
             "exceeds the limit of 65536"),
            *((raw, "levels deep") for raw in DEEP),
        ]
        for raw, expected in cases:
            mark = probe.mark()
            probe.publish("cmd", raw)
            answer = probe.wait("reply", since=mark).payload
            assert not answer["ok"] and expected in answer["error"], (raw[:60], answer)
        mark = probe.mark()
        huge = json.dumps({"id": "huge", "op": "stop", "ts": time.time(), "pad": "x" * 300_000}).encode()
        outcome = asyncio.run(_publish_once(board.broker, "finnsplit/test/board/zed0/cmd", huge))
        assert outcome != "published", outcome  # over max_packet_size: the broker hangs up on the sender
        time.sleep(0.5)
        assert not [m for m in probe.messages[mark:] if m.leaf in ("cmd", "reply")]  # it never reached the board
        assert rss_kb(agent.pid) < memory + 20_000  # the 100 KB and the deep ones cost nothing lasting
        assert agent.poll() is None and probe.request("ping")["ok"]
        status = probe.wait("status", lambda s: s["state"] == "running").payload
        assert status["listen"] == reply["result"]["listen"]
        serve_frames(listen_address(reply), receiver, graph, count=4, seed=2)
    assert "Traceback" not in board.log()


def test_replayed_stale_and_retained_commands_are_refused(board: Board, bundle: Path) -> None:
    bundle_id = deploy(bundle, board.root)
    probe = board.probe()
    retained = {"id": "left-behind", "op": "run", "bundle": bundle_id, "partition": 0, "next": "127.0.0.1:9",
                "ts": time.time()}
    probe.publish("cmd", json.dumps(retained).encode(), retain=True)  # waiting for the agent's subscription
    board.start(probe)
    ping = {"id": "p1", "op": "ping", "ts": time.time()}
    probe.publish("cmd", json.dumps(ping).encode())
    assert probe.wait("reply", lambda r: r["id"] == "p1").payload["ok"]
    mark = probe.mark()
    probe.publish("cmd", json.dumps(ping).encode())  # the same command again
    replay = probe.wait("reply", lambda r: r["id"] == "p1", since=mark).payload
    assert not replay["ok"] and "replayed command" in replay["error"]
    old = {"id": "p0", "op": "ping", "ts": time.time() - 3600}
    probe.publish("cmd", json.dumps(old).encode())
    stale = probe.wait("reply", lambda r: r["id"] == "p0").payload
    assert not stale["ok"] and "stale command" in stale["error"]
    assert probe.request("ping")["ok"]
    assert not [m for m in probe.messages if m.leaf == "reply" and m.payload.get("id") == "left-behind"]
    assert not [m for m in probe.messages if m.leaf == "event"]  # the retained run started nothing
    assert "a retained message on cmd" in board.log()


async def _publish_once(broker: Broker, topic: str, payload: bytes) -> str:
    """Publish as the orchestrator on a connection of its own: "published", or how it failed."""
    try:
        async with aiomqtt.Client(**broker.client_options("orchestrator"), timeout=5) as mqtt:
            await mqtt.publish(topic, payload, qos=1, timeout=5)
            return "published"
    except aiomqtt.MqttError as exc:
        return f"refused: {exc}"


class LinkThread:
    """A FleetLink running on its own event loop thread, as the orchestrator runs it."""

    def __init__(self, broker: Broker, boards: list[str]) -> None:
        """Start the link (logged in as the orchestrator) and wait until it is connected."""
        self.link = FleetLink(broker.settings(), broker.chain, client_id="abuse-orchestrator", boards=boards)
        self.loop = asyncio.new_event_loop()
        self._task: asyncio.Task | None = None
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        self._task = asyncio.create_task(self.link.run())
        await asyncio.wait_for(self.link.connected.wait(), 10)

    def call(self, coro, timeout: float = 30.0):
        """Run a coroutine on the link's loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the link (its connection closed cleanly), then its loop."""
        async def stop() -> None:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)


def test_the_fleet_link_survives_malformed_board_messages(board: Board, broker: Broker) -> None:
    board.start(board.probe())
    probe = board.probe("zed0")  # the board's own identity: the only one allowed to write its topics
    link = LinkThread(broker, ["zed0"])
    try:
        link.call(link.link.command("zed0", "ping", timeout_s=10))
        cases = [("reply", b"[1]"), ("reply", b'{"id": [], "ok": true}'), ("reply", b'{"id": "x", "ok": "yes"}'),
                 ("status", b'{"online": "yes"}'), ("status", b'{"online": true, "state": "dancing"}'),
                 ("status", b'{"online": true, "partition": "zero"}'), ("heartbeat", b"\xff"),
                 ("heartbeat", b'{"seq": "1"}'), ("stats", b"[]"), ("event", b'{"event": 5}'),
                 ("status", b"{" + b"x" * 70_000 + b"}"), *(("status", raw) for raw in DEEP),
                 *(("reply", raw) for raw in DEEP)]
        for leaf, raw in cases:
            probe.publish(leaf, raw)
        deadline = time.monotonic() + 10
        while len(link.link.refused) < len(cases) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(link.link.refused) == len(cases), list(link.link.refused)
        assert link.link.connected.is_set()
        assert link.call(link.link.command("zed0", "ping", timeout_s=10))["pong"] > 0
        seen = link.link.board("zed0")
        assert seen.status.get("online") is True and seen.status.get("state") == "idle"
        assert time.monotonic() - seen.last_seen < 2  # heartbeats still arrive
    finally:
        link.close()


async def _try_connect(**options: object) -> str:
    """'connected', or why the broker (or TLS) refused."""
    try:
        async with aiomqtt.Client(**options, timeout=5):
            return "connected"
    except aiomqtt.MqttError as exc:
        return str(exc)


def test_anonymous_wrong_credential_and_untrusting_clients_are_refused(board: Board, broker: Broker,
                                                                        tmp_path: Path) -> None:
    probe = board.probe()
    board.start(probe)
    other_ca = ensure_ca(tmp_path / "other-ca", "someone else's CA")[0]
    attempts = {
        "anonymous": broker.client_options(None),
        "wrong password": broker.client_options("zed0", password="guess"),
        "orchestrator, wrong password": broker.client_options("orchestrator", password="guess"),
        "unknown user": {**broker.client_options(None), "username": "test-board-zed9", "password": "x"},
        "plaintext": {k: v for k, v in broker.client_options("zed0").items() if k != "tls_context"},
        "another CA": {**broker.client_options("zed0"), "tls_context": tls_context(other_ca)},
        "taking the agent's old client id": {**broker.client_options(None), "identifier": "finnsplit-test-zed0"},
    }
    results = {what: asyncio.run(_try_connect(**options)) for what, options in attempts.items()}
    for what in ("anonymous", "wrong password", "orchestrator, wrong password", "unknown user",
                 "taking the agent's old client id"):
        assert "Not authorized" in results[what], (what, results[what])
    assert results["plaintext"] != "connected" and "CERTIFICATE_VERIFY_FAILED" in results["another CA"], results
    assert asyncio.run(_try_connect(**broker.client_options("zed1"))) == "connected"  # the control: it can fail
    assert probe.request("ping")["ok"]
    assert not [m for m in probe.messages if m.leaf == "status" and not m.payload["online"]]  # no flap


def test_acls_keep_each_board_to_its_own_topics(board: Board, broker: Broker, bundle: Path) -> None:
    bundle_id = deploy(bundle, board.root)
    probe = board.probe()
    board.start(probe)
    intruder = Probe(broker, "finnsplit/test", who="zed1")  # a real board's credentials, another board's topics
    mark = probe.mark()
    run = {"id": "i1", "op": "run", "bundle": bundle_id, "partition": 0, "next": "127.0.0.1:9", "ts": time.time()}
    intruder.publish("board/zed0/cmd", json.dumps(run).encode())
    intruder.publish("board/zed0/status", json.dumps({"online": False, "state": "lost"}).encode(), retain=True)
    intruder.publish("pipeline", b'{"state": "running", "first": "10.6.6.6:7000"}', retain=True)
    intruder.publish("board/zed1/status", b'{"online": true, "state": "idle"}', retain=True)  # its own: allowed
    time.sleep(1.5)
    assert not [m for m in probe.messages[mark:] if m.leaf in ("reply", "event")]  # zed0 never saw the run
    assert not [m for m in probe.messages[mark:] if m.leaf == "status" and not m.payload.get("online")]
    late = board.probe()
    assert late.wait("status").payload["online"] is True  # the retained status is the agent's own
    others = Probe(broker, "finnsplit/test/board/zed1")
    assert others.wait("status").payload == {"online": True, "state": "idle"}  # the control: it can fail
    seen = [m.leaf for m in intruder.messages if not m.leaf.startswith("board/zed1")]
    assert seen == [], seen  # zed1 reads nothing of zed0 (heartbeats flowed meanwhile), nor the pipeline
    assert probe.request("ping")["ok"]
    for extra in (intruder, others):
        extra.close()


def test_a_password_file_others_can_read_stops_the_agent(board: Board, tmp_path: Path) -> None:
    loose = tmp_path / "loose.password"
    loose.write_text(Path(board.config["broker"]["password_file"]).read_text())
    loose.chmod(0o644)
    board.config["broker"]["password_file"] = str(loose)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(board.config))
    done = subprocess.run([sys.executable, "-m", "board_agent", "--config", str(path)], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 2 and f"chmod 600 {loose}" in done.stderr, done.stderr

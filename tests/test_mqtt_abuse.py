"""The MQTT abuse suite: what a client on the lab network may send, against the real broker, the real
agent (with its real server running a bundle) and the orchestrator's real fleet link.

Every case is refused, logged, and changes nothing: afterwards the agent still answers, its server
still computes bit-exactly, and the fleet link still observes and commands the board.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_fixtures import (
    Board,
    Broker,
    build_bundle,
    deploy,
    hop,
    listen_address,
    partition_specs,
    serve_frames,
)
from cpp_fixtures import server_bin  # noqa: F401  (fixture: builds cpp_server)

from orchestrator.client import ResultReceiver
from orchestrator.fleet_link import FleetLink

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
    with contextlib.closing(ResultReceiver(spec_out)) as receiver:
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


class LinkThread:
    """A FleetLink running on its own event loop thread, as the orchestrator runs it."""

    def __init__(self, port: int, chain: str, boards: list[str]) -> None:
        """Start the link and wait until it is connected."""
        self.link = FleetLink("127.0.0.1", port, chain, client_id="abuse-orchestrator", boards=boards)
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
    probe = board.probe()
    board.start(probe)
    link = LinkThread(broker.port, "test", ["zed0"])
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

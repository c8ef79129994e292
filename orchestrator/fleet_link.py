"""The orchestrator's MQTT side (docs/control-plane.md): observe board agents and command them.

One aiomqtt connection subscribed to every board's status, heartbeat, reply, stats and event
topics of one chain. Status and heartbeats feed `observed`; commands are correlated with replies
by id. aiomqtt has no automatic reconnect: `FleetLink.run` reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from splitter.errors import FinnsplitError


class CommandError(FinnsplitError):
    """A board agent refused a command, or did not answer in time."""


@dataclass
class Observed:
    """The latest of one board's status, heartbeat and statistics."""

    status: dict[str, Any] = field(default_factory=dict)
    last_seen: float = 0.0  # monotonic time of the last status or heartbeat
    stats: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def alive(self, now: float, timeout_s: float) -> bool:
        """Online by its status and heard from within `timeout_s`."""
        return bool(self.status.get("online")) and now - self.last_seen <= timeout_s


class FleetLink:
    """Subscriptions and commands for one chain's boards over one MQTT connection."""

    def __init__(self, host: str, port: int, chain: str, client_id: str = "finnsplit-orchestrator",
                 on_change: Callable[[str], None] | None = None) -> None:
        """Nothing connects until `run` is awaited (as a task)."""
        self.host, self.port, self.chain, self.client_id = host, port, chain, client_id
        self.prefix = f"finnsplit/{chain}/board"
        self.observed: dict[str, Observed] = {}
        self.pipeline: dict[str, Any] = {}  # the retained finnsplit/<chain>/pipeline message
        self.on_change = on_change or (lambda _name: None)
        self._client: aiomqtt.Client | None = None
        self._pending: dict[str, asyncio.Future] = {}
        self.connected = asyncio.Event()

    def board(self, name: str) -> Observed:
        """What has been observed of `name` (empty if nothing yet)."""
        return self.observed.setdefault(name, Observed())

    async def run(self) -> None:
        """Connect, subscribe and dispatch messages forever, reconnecting with backoff."""
        delay = 0.5
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=self.client_id) as client:
                    self._client = client
                    await client.subscribe(f"{self.prefix}/+/+", qos=1)
                    await client.subscribe(f"finnsplit/{self.chain}/pipeline", qos=1)
                    self.connected.set()
                    delay = 0.5
                    async for message in client.messages:
                        self._dispatch(str(message.topic), message.payload)
            except aiomqtt.MqttError:
                self.connected.clear()
                self._client = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _dispatch(self, topic: str, payload: bytes | bytearray | Any) -> None:
        parts = topic.split("/")
        if len(parts) == 3 and parts[2] == "pipeline":
            with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError, TypeError):
                self.pipeline = json.loads(payload)
            return
        if len(parts) != 5:
            return
        name, kind = parts[3], parts[4]
        try:
            data = json.loads(payload) if payload else {}
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
            return  # a malformed message from a board must not stop the orchestrator
        board = self.board(name)
        if kind == "status":
            board.status, board.last_seen = data, time.monotonic()
            self.on_change(name)
        elif kind == "heartbeat":
            board.last_seen = time.monotonic()
        elif kind == "stats":
            board.stats = data
        elif kind == "event":
            board.events.append(data)
            del board.events[:-50]
            self.on_change(name)
        elif kind == "reply":
            future = self._pending.pop(str(data.get("id")), None)
            if future is not None and not future.done():
                future.set_result(data)

    async def command(self, name: str, op: str, timeout_s: float = 30.0, **args: Any) -> dict[str, Any]:
        """Send `op` to board `name` and wait for its reply; CommandError if refused or unanswered."""
        await asyncio.wait_for(self.connected.wait(), timeout_s)
        assert self._client is not None
        ident = uuid.uuid4().hex
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self._client.publish(f"{self.prefix}/{name}/cmd", json.dumps({"id": ident, "op": op, **args}), qos=1)
        try:
            reply = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise CommandError(f"board {name} did not answer {op!r} within {timeout_s:g} s") from None
        finally:
            self._pending.pop(ident, None)
        if not reply.get("ok"):
            raise CommandError(f"board {name} refused {op!r}: {reply.get('error')}")
        return reply.get("result") or {}

    async def publish(self, leaf: str, payload: str, retain: bool = False) -> bool:
        """Publish finnsplit/<chain>/<leaf> (QoS 1); False when not connected (it is re-sent on change)."""
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(f"finnsplit/{self.chain}/{leaf}", payload, qos=1, retain=retain)
        except aiomqtt.MqttError:
            return False
        return True

"""The orchestrator's MQTT side (docs/control-plane.md): observe board agents and command them.

One aiomqtt connection subscribed to every board's status, heartbeat, reply, stats and event
topics of one chain. Status and heartbeats feed `observed`; commands are correlated with replies
by id. aiomqtt has no automatic reconnect: `FleetLink.run` reconnects with backoff.
Every message is decoded as its type in core/messages.py (size-capped, depth-limited and
shape-checked) before it changes anything; a refused or failing message is logged and counted,
and the link goes on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from core.errors import FinnsplitError
from core.messages import (
    MAX_BYTES,
    OPS,
    Command,
    Event,
    Heartbeat,
    PingResult,
    Pipeline,
    Reply,
    Request,
    RunResult,
    Stats,
    Status,
    StopResult,
)
from core.mqtt_login import BrokerAuthError
from core.mqtt_login import client_id as unpredictable_id
from core.safe_json import MessageError
from core.topics import board_prefix, board_topic, chain_topic
from orchestrator.control.fleet import BrokerSettings

log = logging.getLogger("orchestrator.control.fleet_link")
MAX_MESSAGE_BYTES = MAX_BYTES  # the broker refuses larger packets too (orchestrator/control/broker.py)
KINDS: dict[str, type[Status] | type[Heartbeat] | type[Reply] | type[Stats] | type[Event]] = {
    "status": Status, "heartbeat": Heartbeat, "reply": Reply, "stats": Stats, "event": Event}


class CommandError(FinnsplitError):
    """A board agent refused a command, or did not answer in time."""


@dataclass
class Observed:
    """The latest of one board's status, heartbeat and statistics."""

    last_status: Status | None = None  # None: no status received yet
    last_seen: float = 0.0  # monotonic time of the last status or heartbeat
    stats: dict[str, Any] = field(default_factory=dict)  # the last stats line (docs/protocol.md#stats) + "board"
    events: list[Event] = field(default_factory=list)

    @property
    def status(self) -> dict[str, Any]:
        """The last status in its JSON form ({} before any), for display."""
        return {} if self.last_status is None else self.last_status.fields()

    def alive(self, now: float, timeout_s: float) -> bool:
        """Online by its status and heard from within `timeout_s`."""
        return self.last_status is not None and self.last_status.online and now - self.last_seen <= timeout_s


class FleetLink:
    """Subscriptions and commands for one chain's boards over one MQTT connection."""

    def __init__(self, broker: BrokerSettings, chain: str, client_id: str = "finnsplit-orchestrator",
                 on_change: Callable[[str], None] | None = None, boards: Collection[str] | None = None) -> None:
        """Nothing connects until `run` is awaited (as a task); `boards`: the only names listened to.

        The client id gets a random suffix: nobody can predict it to take the session over.
        """
        self.broker, self.chain = broker, chain
        self.host, self.port, self.client_id = broker.host, broker.port, unpredictable_id(client_id)
        self.prefix = board_prefix(chain)
        self.boards = None if boards is None else frozenset(boards)
        self.observed: dict[str, Observed] = {}
        self.refused: collections.deque[str] = collections.deque(maxlen=100)  # why recent messages were refused
        self.pipeline: Pipeline | None = None  # the retained finnsplit/<chain>/pipeline message
        self.on_change = on_change or (lambda _name: None)
        self._client: aiomqtt.Client | None = None
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self.connected = asyncio.Event()

    def board(self, name: str) -> Observed:
        """What has been observed of `name` (empty if nothing yet)."""
        return self.observed.setdefault(name, Observed())

    async def run(self) -> None:
        """Connect, subscribe and dispatch messages forever, reconnecting with backoff."""
        delay = 0.5
        while True:
            try:
                async with aiomqtt.Client(**self.broker.client_options(), identifier=self.client_id) as client:
                    self._client = client
                    await client.subscribe(f"{self.prefix}/+/+", qos=1)
                    await client.subscribe(chain_topic(self.chain, "pipeline"), qos=1)
                    self.connected.set()
                    delay = 0.5
                    async for message in client.messages:
                        self.handle(str(message.topic), message.payload)
            except (aiomqtt.MqttError, BrokerAuthError) as exc:
                log.warning("broker %s:%d: %s; reconnecting in %.1f s", self.host, self.port, exc, delay)
            except Exception:  # a bug must not end the orchestrator's link for good
                log.exception("MQTT link failed; reconnecting in %.1f s", delay)
            self.connected.clear()
            self._client = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def handle(self, topic: str, payload: object) -> None:
        """Apply one message; a malformed one, or a failure handling it, is logged and counted, never raised."""
        try:
            self._dispatch(topic, payload)
        except MessageError as exc:
            self._refuse(f"{topic}: {exc}")
        except Exception as exc:  # a bug: keep the link alive
            log.exception("handling %s failed", topic)
            self._refuse(f"{topic}: {exc!r}")

    def _refuse(self, why: str) -> None:
        log.warning("refused a message: %s", why)
        self.refused.append(why)

    def _dispatch(self, topic: str, payload: object) -> None:
        parts = topic.split("/")
        if len(parts) == 3 and parts[2] == "pipeline":
            if payload:  # an empty retained message clears the topic
                self.pipeline = Pipeline.decode(payload, MAX_MESSAGE_BYTES)
            return
        if len(parts) != 5 or parts[4] not in KINDS:
            return
        name, kind = parts[3], parts[4]
        if self.boards is not None and name not in self.boards:
            return
        if not payload:
            return  # a cleared retained status
        message = KINDS[kind].decode(payload, MAX_MESSAGE_BYTES)
        board = self.board(name)
        if isinstance(message, Status):
            board.last_status, board.last_seen = message, time.monotonic()
            self.on_change(name)
        elif isinstance(message, Heartbeat):
            board.last_seen = time.monotonic()
        elif isinstance(message, Stats):
            board.stats = message.fields()
        elif isinstance(message, Event):
            board.events.append(message)
            del board.events[:-50]
            self.on_change(name)
        elif message.id is not None:
            future = self._pending.pop(message.id, None)
            if future is not None and not future.done():
                future.set_result(message)

    async def send(self, name: str, request: Request, timeout_s: float = 30.0) -> RunResult | StopResult | PingResult:
        """Send `request` to board `name` and wait for its reply; CommandError if refused or unanswered."""
        op = request.op
        try:
            await asyncio.wait_for(self.connected.wait(), timeout_s)
        except TimeoutError:
            raise CommandError(f"no broker connection to send {op!r} to board {name}") from None
        command = Command.new(request)  # ts: agents refuse stale commands
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[command.id] = future
        try:
            client = self._client
            if client is None:
                raise aiomqtt.MqttError("disconnected")
            await client.publish(board_topic(self.chain, name, "cmd"), command.encode(), qos=1)
            reply = await asyncio.wait_for(future, timeout_s)
        except aiomqtt.MqttError as exc:
            raise CommandError(f"sending {op!r} to board {name} failed: {exc}") from None
        except TimeoutError:
            raise CommandError(f"board {name} did not answer {op!r} within {timeout_s:g} s") from None
        finally:
            self._pending.pop(command.id, None)
        if not reply.ok:
            raise CommandError(f"board {name} refused {op!r}: {reply.error}")
        try:
            return type(request).Result.from_fields(reply.result or {})
        except MessageError as exc:
            raise CommandError(f"board {name} answered {op!r} with a malformed result: {exc}") from None

    async def command(self, name: str, op: str, timeout_s: float = 30.0, **args: Any) -> dict[str, Any]:
        """`send` the op named `op` with arguments `args`; its result's fields."""
        kind = OPS.get(op)
        if kind is None:
            raise CommandError(f"unknown op {op!r} ({', '.join(OPS)})")
        try:
            request = kind.from_fields(args)
        except MessageError as exc:
            raise CommandError(str(exc)) from None
        return (await self.send(name, request, timeout_s)).fields()

    async def publish(self, leaf: str, payload: str, retain: bool = False) -> bool:
        """Publish finnsplit/<chain>/<leaf> (QoS 1); False when not connected (it is re-sent on change)."""
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(chain_topic(self.chain, leaf), payload, qos=1, retain=retain)
        except aiomqtt.MqttError:
            return False
        return True

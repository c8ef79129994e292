"""The control plane's messages as types: one per payload of docs/control-plane.md#mqtt-topics.

Standard library only (the board agent imports it). Each type has one `encode()` (the JSON text it
is published as) and one `decode(payload, max_bytes)` that refuses, with a MessageError, what is
too large or too deeply nested before parsing (core.safe_json), not a JSON object, or not of the
type's shape. The JSON field names and values are the wire format both sides of this version
speak; fields a message does not know are ignored, as they always were.

A command is `Command(id, ts, request)` where `request` is one of the closed set of ops (`Run`,
`Stop`, `Ping`; `OPS`). An unknown op or a bad argument raises `BadRequest`, which still carries
the command's id and ts so the agent can answer it and apply its replay rules (board_agent/inbox.py).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from core.safe_json import MessageError, check_fields, loads_object

MAX_BYTES = 65536  # the largest message either side parses (the broker refuses packets over 128 KiB)
MAX_ID = 128
STATES = ("idle", "starting", "running", "stopping", "error", "lost")
PIPELINE_STATES = ("starting", "reconciling", "running", "waiting", "degraded")
EVENTS = ("server-started", "server-exited", "server-restarted")
BACKENDS = ("emulate", "delay", "finn-zynq")
BUNDLE_ID = re.compile(r"[0-9a-f]{16}\Z")
LINK_KEY = re.compile(r"[0-9a-f]{64}\Z")
NEXT_HOPS = re.compile(r"[^,]+:\d{1,5}(,[^,]+:\d{1,5}){0,15}")  # host:port, or up to 16 of them (replicas)
NUMBER = (int, float)

M = TypeVar("M", bound="_Message")


class BadRequest(MessageError):
    """A command with a usable id and ts whose op is unknown or whose arguments are wrong."""

    def __init__(self, why: str, cid: str, ts: float) -> None:
        super().__init__(why)
        self.cid, self.ts = cid, ts


class _Message:
    """encode/decode through `fields()` and `from_fields()`, which each message type defines."""

    def fields(self) -> dict[str, Any]:
        """The message as the JSON object it is sent as."""
        raise NotImplementedError

    @classmethod
    def from_fields(cls: type[M], data: dict[str, Any]) -> M:
        """The message in a parsed JSON object; MessageError if it has not the type's shape."""
        raise NotImplementedError

    def encode(self) -> str:
        """The JSON text published on the message's topic."""
        return json.dumps(self.fields())

    @classmethod
    def decode(cls: type[M], payload: object, max_bytes: int = MAX_BYTES) -> M:
        """The message in `payload` (bytes or str); MessageError for anything else, never another exception."""
        return cls.from_fields(loads_object(payload, max_bytes))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _one_of(value: Any, allowed: tuple[str, ...], what: str) -> None:
    if value is not None and value not in allowed:
        raise MessageError(f"{what} {str(value)[:40]!r} (one of {', '.join(allowed)})")


# ---- commands (orchestrator -> agent, on cmd) -------------------------------------------------------


@dataclass(frozen=True)
class RunResult(_Message):
    """What a successful `run` replies: the server's data address, its pid, the bundle it runs."""

    listen: str
    pid: int | None  # None: the server exited again before the reply was sent
    bundle: str

    def fields(self) -> dict[str, Any]:
        """The reply's `result` object."""
        return {"listen": self.listen, "pid": self.pid, "bundle": self.bundle}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> RunResult:
        """A run reply's result."""
        check_fields(data, {"!listen": str, "!pid": (int, None), "!bundle": str}, "run result")
        return cls(data["listen"], data["pid"], data["bundle"])


@dataclass(frozen=True)
class StopResult(_Message):
    """What `stop` replies: the server's exit code (None: no server was running)."""

    code: int | None

    def fields(self) -> dict[str, Any]:
        """The reply's `result` object."""
        return {"code": self.code}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> StopResult:
        """A stop reply's result."""
        check_fields(data, {"!code": (int, None)}, "stop result")
        return cls(data["code"])


@dataclass(frozen=True)
class PingResult(_Message):
    """What `ping` replies: the board's clock."""

    pong: float

    def fields(self) -> dict[str, Any]:
        """The reply's `result` object."""
        return {"pong": self.pong}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> PingResult:
        """A ping reply's result."""
        check_fields(data, {"!pong": NUMBER}, "ping result")
        return cls(float(data["pong"]))


@dataclass(frozen=True)
class Run(_Message):
    """`run`: start (or replace) the board's server on a partition (docs/control-plane.md#commands)."""

    op: ClassVar[str] = "run"
    Result: ClassVar[type] = RunResult
    bundle: str | None  # None: the bundle `current` points to
    partition: int
    next: str  # host:port of the next hop, or host:port,host:port,... (the next stage's replicas: fan-out)
    backend: str = "emulate"
    args: tuple[str, ...] = ()  # extra finnsplit-server flags (board_agent/server_args.py)
    drain_s: float | None = None  # how long a replaced server may drain (None: the agent's stop timeout)
    link_key: str = field(default="", repr=False)  # the deployment's data-plane key, 64 hex digits (never logged)

    def fields(self) -> dict[str, Any]:
        """The command's arguments."""
        out: dict[str, Any] = {"bundle": self.bundle, "partition": self.partition, "next": self.next,
                               "backend": self.backend}
        if self.drain_s is not None:
            out["drain_s"] = self.drain_s
        return {**out, "link_key": self.link_key, "args": list(self.args)}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Run:
        """A run command's arguments, each checked; MessageError naming the first bad one."""
        bundle = data.get("bundle")
        if bundle is not None and not (isinstance(bundle, str) and BUNDLE_ID.match(bundle)):
            raise MessageError(f"run: 'bundle' must be 16 hex digits or null, got {bundle!r}")
        partition = data.get("partition")
        if not isinstance(partition, int) or isinstance(partition, bool) or partition < 0:
            raise MessageError(f"run: 'partition' must be a partition index, got {partition!r}")
        next_hop = data.get("next")
        if not isinstance(next_hop, str) or not NEXT_HOPS.fullmatch(next_hop):
            raise MessageError(f"run: 'next' must be 'host:port' (or a comma-separated list of up to 16: the "
                               f"replicas of the next stage), got {next_hop!r}")
        backend = data.get("backend", "emulate")
        if backend not in BACKENDS:
            raise MessageError(f"run: 'backend' must be one of {', '.join(BACKENDS)}, got {backend!r}")
        args = data.get("args", [])
        if not isinstance(args, list | tuple) or not all(isinstance(a, str) for a in args):
            raise MessageError(f"run: 'args' must be a list of strings, got {args!r}")
        drain = data.get("drain_s")
        if drain is not None and (isinstance(drain, bool) or not isinstance(drain, int | float) or drain < 0):
            raise MessageError(f"run: 'drain_s' must be a non-negative number of seconds, got {drain!r}")
        key = data.get("link_key")
        if not isinstance(key, str) or not LINK_KEY.match(key):
            raise MessageError("run: 'link_key' must be the deployment's link key, 64 hex digits (docs/protocol.md)")
        return cls(bundle, partition, next_hop, backend, tuple(args), _float(drain), key)


@dataclass(frozen=True)
class Stop(_Message):
    """`stop`: SIGTERM the server (it drains); the board goes idle."""

    op: ClassVar[str] = "stop"
    Result: ClassVar[type] = StopResult

    def fields(self) -> dict[str, Any]:
        """No arguments."""
        return {}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Stop:
        """A stop command (its other fields are ignored)."""
        return cls()


@dataclass(frozen=True)
class Ping(_Message):
    """`ping`: answered at once with the board's clock."""

    op: ClassVar[str] = "ping"
    Result: ClassVar[type] = PingResult

    def fields(self) -> dict[str, Any]:
        """No arguments."""
        return {}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Ping:
        """A ping command (its other fields are ignored)."""
        return cls()


Request = Run | Stop | Ping
OPS: dict[str, type[Run] | type[Stop] | type[Ping]] = {"run": Run, "stop": Stop, "ping": Ping}


@dataclass(frozen=True)
class Command(_Message):
    """One command on a board's `cmd` topic: a unique id, the orchestrator's clock, and the op with its arguments."""

    id: str
    ts: float  # the orchestrator's clock: agents refuse stale commands by it
    request: Request

    @property
    def op(self) -> str:
        """The request's op name."""
        return self.request.op

    @classmethod
    def new(cls, request: Request) -> Command:
        """`request` under a fresh random id, stamped with this clock."""
        return cls(uuid.uuid4().hex, time.time(), request)

    def fields(self) -> dict[str, Any]:
        """{id, op, ts, ...arguments}."""
        return {"id": self.id, "op": self.op, "ts": self.ts, **self.request.fields()}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Command:
        """A command; MessageError for a bad envelope, BadRequest (with id and ts) for a bad op or argument."""
        check_fields(data, {"!id": str, "!op": str, "!ts": NUMBER}, "command")
        cid, op, ts = data["id"], data["op"], float(data["ts"])
        if not 0 < len(cid) <= MAX_ID:
            raise MessageError(f"'id' must have 1..{MAX_ID} characters")
        kind = OPS.get(op)
        if kind is None:
            raise BadRequest(f"unknown op {op[:40]!r} ({', '.join(OPS)})", cid, ts)
        try:
            return cls(cid, ts, kind.from_fields(data))
        except MessageError as exc:
            raise BadRequest(str(exc), cid, ts) from None


@dataclass(frozen=True)
class Reply(_Message):
    """The agent's answer to a command (`id` None: the command had no usable id)."""

    id: str | None
    ok: bool
    error: str | None = None
    result: dict[str, Any] | None = None  # the op's result's fields (RunResult, StopResult, PingResult)

    @classmethod
    def success(cls, cid: str, result: RunResult | StopResult | PingResult) -> Reply:
        """A successful reply carrying `result`."""
        return cls(cid, True, None, result.fields())

    @classmethod
    def failure(cls, cid: str | None, error: str) -> Reply:
        """A refusal or failure, saying why."""
        return cls(cid, False, error, None)

    def fields(self) -> dict[str, Any]:
        """{id, ok, error, result}."""
        return {"id": self.id, "ok": self.ok, "error": self.error, "result": self.result}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Reply:
        """A reply."""
        check_fields(data, {"!id": (str, None), "!ok": bool, "error": (str, None), "result": (dict, None)}, "reply")
        return cls(data["id"], data["ok"], data.get("error"), data.get("result"))


# ---- what agents publish ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Status(_Message):
    """A board's retained status. The broker's will carries only `online` and `state` (`LOST`)."""

    online: bool
    state: str | None = None  # one of STATES
    bundle: str | None = None
    partition: int | None = None
    listen: str | None = None  # the server's data address, host:port
    error: str | None = None
    agent: str | None = None  # the agent's version
    ts: float | None = None  # the board's clock

    def fields(self) -> dict[str, Any]:
        """Every field; only online and state when nothing else is known (the will)."""
        rest = {"bundle": self.bundle, "partition": self.partition, "listen": self.listen, "error": self.error,
                "agent": self.agent, "ts": self.ts}
        head = {"online": self.online, **({} if self.state is None else {"state": self.state})}
        return head if all(v is None for v in rest.values()) else {"online": self.online, "state": self.state, **rest}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Status:
        """A status; an unknown state is refused."""
        check_fields(data, {"!online": bool, "state": str, "bundle": (str, None), "partition": (int, None),
                            "listen": (str, None), "error": (str, None), "agent": str, "ts": NUMBER}, "status")
        _one_of(data.get("state"), STATES, "status: unknown state")
        return cls(data["online"], data.get("state"), data.get("bundle"), data.get("partition"), data.get("listen"),
                   data.get("error"), data.get("agent"), _float(data.get("ts")))


LOST = Status(online=False, state="lost")  # the agent's will, and what it says itself when a session fails


@dataclass(frozen=True)
class Heartbeat(_Message):
    """Sent every `heartbeat_s`: a sequence number and the board's clock."""

    seq: int
    ts: float | None = None

    def fields(self) -> dict[str, Any]:
        """{seq, ts}."""
        return {"seq": self.seq, **({} if self.ts is None else {"ts": self.ts})}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Heartbeat:
        """A heartbeat."""
        check_fields(data, {"!seq": int, "ts": NUMBER}, "heartbeat")
        return cls(data["seq"], _float(data.get("ts")))


@dataclass(frozen=True)
class Stats(_Message):
    """One of the server's stats lines (its format: docs/protocol.md#stats), forwarded with the board's name."""

    line: dict[str, Any]  # the server's line as it wrote it, without "board"
    board: str | None = None

    def fields(self) -> dict[str, Any]:
        """The line plus "board"."""
        return {**self.line, **({} if self.board is None else {"board": self.board})}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Stats:
        """A stats message; its counters, when present, must be objects."""
        check_fields(data, {"frames": dict, "errors": dict, "board": str}, "stats")
        return cls({k: v for k, v in data.items() if k != "board"}, data.get("board"))


@dataclass(frozen=True)
class Event(_Message):
    """Something that happened to the board's server: `event` is one of EVENTS, `details` its fields
    (docs/control-plane.md#behaviour-the-contract-leaves-open)."""

    event: str
    details: dict[str, Any] = field(default_factory=dict)  # server-started {pid, port}, server-exited {...}, ...
    board: str | None = None
    ts: float | None = None

    def fields(self) -> dict[str, Any]:
        """{event, ...details, board, ts}."""
        tail = {k: v for k, v in (("board", self.board), ("ts", self.ts)) if v is not None}
        return {"event": self.event, **self.details, **tail}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Event:
        """An event; an unknown kind is refused."""
        check_fields(data, {"!event": str, "board": str, "ts": NUMBER}, "event")
        _one_of(data["event"], EVENTS, "event: unknown event")
        details = {k: v for k, v in data.items() if k not in ("event", "board", "ts")}
        return cls(data["event"], details, data.get("board"), _float(data.get("ts")))


# ---- what the orchestrator publishes (retained, finnsplit/<chain>/pipeline) ---------------------------


@dataclass(frozen=True)
class PipelineStage(_Message):
    """One running stage: replica `replica` of partition `partition`, on `board`."""

    partition: int
    replica: int
    board: str

    def fields(self) -> dict[str, Any]:
        """{partition, replica, board}."""
        return {"partition": self.partition, "replica": self.replica, "board": self.board}

    @classmethod
    def from_fields(cls, data: dict[str, Any], where: str = "stage") -> PipelineStage:
        """A stage entry."""
        check_fields(data, {"!partition": int, "!replica": int, "!board": str}, where)
        return cls(data["partition"], data["replica"], data["board"])


@dataclass(frozen=True)
class Pipeline(_Message):
    """The daemon's view of its pipeline, for clients and dashboards (docs/control-plane.md#orchestrator)."""

    bundle: str
    state: str  # one of PIPELINE_STATES
    first: str | None  # the first hop's data address, None while not running end to end
    result: str  # the client's result port, host:port
    stages: tuple[PipelineStage, ...] = ()

    def fields(self) -> dict[str, Any]:
        """{bundle, state, first, result, stages}."""
        return {"bundle": self.bundle, "state": self.state, "first": self.first, "result": self.result,
                "stages": [s.fields() for s in self.stages]}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Pipeline:
        """A pipeline message; each stage is checked too."""
        check_fields(data, {"!bundle": str, "!state": str, "!first": (str, None), "!result": str, "!stages": list},
                     "pipeline")
        _one_of(data["state"], PIPELINE_STATES, "pipeline: unknown state")
        stages = []
        for k, stage in enumerate(data["stages"]):
            if not isinstance(stage, dict):
                raise MessageError(f"pipeline: stages[{k}] must be an object, got {json.dumps(stage)[:60]}")
            stages.append(PipelineStage.from_fields(stage, f"pipeline: stages[{k}]"))
        return cls(data["bundle"], data["state"], data["first"], data["result"], tuple(stages))

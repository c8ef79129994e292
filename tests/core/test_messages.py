"""core/messages.py: every control-plane message round-trips through its wire form, and every
malformed payload is a MessageError naming what is wrong, never another exception."""

from __future__ import annotations

import json

import pytest

from core.messages import (
    LOST,
    OPS,
    BadRequest,
    Command,
    Event,
    Heartbeat,
    Ping,
    PingResult,
    Pipeline,
    PipelineStage,
    Reply,
    Run,
    RunResult,
    Stats,
    Status,
    Stop,
    StopResult,
)
from core.safe_json import MessageError

KEY = "ab" * 32
RUN = Run("0123456789abcdef", 1, "10.0.0.11:7000,10.0.0.12:7000", "finn-zynq", ("--order", "any"), 0.5, KEY)
MESSAGES = [
    Command("c1", 1700000000.5, RUN),
    Command("c2", 1700000001.0, Run(None, 0, "h:1", link_key=KEY)),
    Command("c3", 1700000002.0, Stop()),
    Command("c4", 1700000003.0, Ping()),
    Reply("c1", True, None, RunResult("0.0.0.0:7000", 42, "0123456789abcdef").fields()),
    Reply.success("c3", StopResult(None)),
    Reply.success("c4", PingResult(1700000003.25)),
    Reply.failure(None, "malformed command: not JSON"),
    Status(True, "running", "0123456789abcdef", 1, "0.0.0.0:7000", None, "0.1.0", 1700000004.0),
    Status(True, "idle", agent="0.1.0", ts=1700000004.0),
    LOST,
    Heartbeat(7, 1700000005.0),
    Heartbeat(8),
    Stats({"event": "stats", "frames": {"in": 3, "out": 3}, "errors": {"bad_frame": 0}, "queues": {"in": 1}}, "zed0"),
    Event("server-exited", {"pid": 9, "code": -9, "signal": "SIGKILL", "expected": False, "stderr": "x"},
          "zed0", 1700000006.0),
    Event("server-started", {"pid": 9, "port": 7000}),
    Pipeline("0123456789abcdef", "running", "10.0.0.10:7000", "10.0.0.1:7100",
             (PipelineStage(0, 0, "zed0"), PipelineStage(1, 0, "zed1"), PipelineStage(1, 1, "zed2"))),
    Pipeline("0123456789abcdef", "waiting", None, "10.0.0.1:7100"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: object) -> None:
    encoded = message.encode()  # type: ignore[attr-defined]
    assert type(message).decode(encoded) == message
    assert type(message).decode(encoded.encode()) == message  # bytes as MQTT delivers them


def test_the_wire_form_is_the_documented_one() -> None:
    assert json.loads(LOST.encode()) == {"online": False, "state": "lost"}  # the will: nothing else
    full = json.loads(MESSAGES[9].encode())
    assert list(full) == ["online", "state", "bundle", "partition", "listen", "error", "agent", "ts"]
    assert full["bundle"] is None and full["error"] is None
    run = json.loads(MESSAGES[0].encode())
    assert run == {"id": "c1", "op": "run", "ts": 1700000000.5, "bundle": "0123456789abcdef", "partition": 1,
                   "next": "10.0.0.11:7000,10.0.0.12:7000", "backend": "finn-zynq", "drain_s": 0.5,
                   "link_key": KEY, "args": ["--order", "any"]}
    assert json.loads(MESSAGES[3].encode()) == {"id": "c4", "op": "ping", "ts": 1700000003.0}
    assert json.loads(MESSAGES[4].encode()) == {"id": "c1", "ok": True, "error": None,
                                                "result": {"listen": "0.0.0.0:7000", "pid": 42,
                                                           "bundle": "0123456789abcdef"}}
    stats = json.loads(MESSAGES[13].encode())
    assert stats["board"] == "zed0" and stats["frames"] == {"in": 3, "out": 3}
    assert json.loads(MESSAGES[14].encode())["event"] == "server-exited"
    assert json.loads(MESSAGES[16].encode())["stages"][2] == {"partition": 1, "replica": 1, "board": "zed2"}
    assert "link_key" not in repr(RUN)  # never logged


def test_unknown_fields_are_ignored_as_before() -> None:
    cmd = Command.decode(b'{"id": "a", "op": "stop", "ts": 1, "pad": "x"}')
    assert cmd == Command("a", 1.0, Stop())
    assert Status.decode(b'{"online": true, "state": "idle", "later": 1}') == Status(True, "idle")


DEEP = [b"[" * 60_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000, b'{"id": "d", "op": "ping", "x": ' + b"[" * 5000]
MALFORMED_ANY = [
    (b"{not json", "not JSON"), (b"\xff\xfe", "not JSON"), (b"", "not JSON"), (b"[1]", "not an object"),
    (b'"run"', "not an object"), (b"null", "not an object"), (42, "payload of type int"),
    (b'{"pad": "' + b"x" * 70_000 + b'"}', "exceeds the limit of 65536"),
    *((raw, "levels deep") for raw in DEEP),
]


@pytest.mark.parametrize("kind", [Command, Reply, Status, Heartbeat, Stats, Event, Pipeline])
@pytest.mark.parametrize(("raw", "expected"), MALFORMED_ANY)
def test_what_is_not_a_json_object_of_bounded_size_is_refused(kind: type, raw: object, expected: str) -> None:
    with pytest.raises(MessageError, match=expected):
        kind.decode(raw)


def test_the_size_cap_is_the_callers() -> None:
    with pytest.raises(MessageError, match="exceeds the limit of 10"):
        Heartbeat.decode(b'{"seq": 100000}', max_bytes=10)


@pytest.mark.parametrize(("kind", "raw", "expected"), [
    (Command, b'{"id": 1, "op": "stop", "ts": 1}', "command: field 'id' must be str"),
    (Command, b'{"id": "a", "op": ["stop"], "ts": 1}', "'op' must be str"),
    (Command, b'{"id": "a", "op": "stop", "ts": "now"}', "'ts' must be int/float"),
    (Command, b'{"id": "a", "op": "stop", "ts": true}', "'ts' must be int/float"),
    (Command, b'{"id": "a", "op": "stop"}', "missing field 'ts'"),
    (Command, b'{"op": "ping"}', "missing field 'id'"),
    (Command, json.dumps({"id": "x" * 500, "op": "stop", "ts": 1}).encode(), "1..128 characters"),
    (Command, b'{"id": "", "op": "stop", "ts": 1}', "1..128 characters"),
    (Reply, b'{"id": [], "ok": true}', "'id' must be str/null"),
    (Reply, b'{"id": "x", "ok": "yes"}', "'ok' must be bool"),
    (Reply, b'{"id": "x"}', "missing field 'ok'"),
    (Reply, b'{"id": "x", "ok": true, "result": [1]}', "'result' must be dict/null"),
    (Status, b'{"online": "yes"}', "'online' must be bool"),
    (Status, b'{"online": 1}', "'online' must be bool"),
    (Status, b'{"state": "idle"}', "missing field 'online'"),
    (Status, b'{"online": true, "state": "dancing"}', "unknown state 'dancing'"),
    (Status, b'{"online": true, "partition": "zero"}', "'partition' must be int/null"),
    (Status, b'{"online": true, "partition": false}', "'partition' must be int/null"),
    (Heartbeat, b'{"seq": "1"}', "'seq' must be int"),
    (Heartbeat, b'{"ts": 1}', "missing field 'seq'"),
    (Stats, b'{"frames": 3}', "'frames' must be dict"),
    (Stats, b'{"errors": {}, "board": 1}', "'board' must be str"),
    (Event, b'{"event": 5}', "'event' must be str"),
    (Event, b'{"event": "server-danced"}', "unknown event 'server-danced'"),
    (Pipeline, b'{"state": "running", "first": "10.6.6.6:7000"}', "missing field 'bundle'"),
    (Pipeline, b'{"bundle": "b", "state": "on", "first": null, "result": "h:1", "stages": []}', "unknown state 'on'"),
    (Pipeline, b'{"bundle": "b", "state": "running", "first": null, "result": "h:1", "stages": [1]}',
     r"stages\[0\] must be an object"),
    (Pipeline, b'{"bundle": "b", "state": "running", "first": null, "result": "h:1", '
               b'"stages": [{"partition": 0, "board": "z"}]}', r"stages\[0\]: missing field 'replica'"),
])
def test_wrong_types_and_missing_fields_are_named(kind: type, raw: bytes, expected: str) -> None:
    with pytest.raises(MessageError, match=expected):
        kind.decode(raw)


def _command(**fields: object) -> bytes:
    return json.dumps({"id": "c9", "ts": 5, **fields}).encode()


@pytest.mark.parametrize(("fields", "expected"), [
    ({"op": "dance"}, r"unknown op 'dance' \(run, stop, ping\)"),
    ({"op": "run", "partition": "zero", "next": "h:1", "link_key": KEY}, "run: 'partition' must be a partition index"),
    ({"op": "run", "partition": True, "next": "h:1", "link_key": KEY}, "'partition'"),
    ({"op": "run", "partition": -1, "next": "h:1", "link_key": KEY}, "'partition'"),
    ({"op": "run", "bundle": "../../etc", "partition": 0, "next": "h:1", "link_key": KEY}, "'bundle' must be 16 hex"),
    ({"op": "run", "partition": 0, "next": "nowhere", "link_key": KEY}, "'next' must be 'host:port'"),
    ({"op": "run", "partition": 0, "next": ",".join(["h:1"] * 17), "link_key": KEY}, "'next'"),
    ({"op": "run", "partition": 0, "next": "h:1", "backend": "gpu", "link_key": KEY}, "'backend' must be one of"),
    ({"op": "run", "partition": 0, "next": "h:1", "args": "--order any", "link_key": KEY}, "'args' must be a list"),
    ({"op": "run", "partition": 0, "next": "h:1", "args": [1], "link_key": KEY}, "'args' must be a list"),
    ({"op": "run", "partition": 0, "next": "h:1", "drain_s": -1, "link_key": KEY}, "'drain_s' must be a non-neg"),
    ({"op": "run", "partition": 0, "next": "h:1", "drain_s": True, "link_key": KEY}, "'drain_s'"),
    ({"op": "run", "partition": 0, "next": "h:1", "link_key": "00" * 31}, "'link_key' must be the deployment's"),
    ({"op": "run", "partition": 0, "next": "h:1"}, "'link_key'"),
])
def test_an_unknown_op_or_a_bad_argument_keeps_the_commands_id(fields: dict, expected: str) -> None:
    with pytest.raises(BadRequest, match=expected) as refused:
        Command.decode(_command(**fields))
    assert (refused.value.cid, refused.value.ts) == ("c9", 5.0)  # the agent answers it and applies its replay rules


def test_the_ops_are_a_closed_set_with_their_results() -> None:
    assert set(OPS) == {"run", "stop", "ping"}
    assert [OPS[op].Result for op in ("run", "stop", "ping")] == [RunResult, StopResult, PingResult]
    with pytest.raises(MessageError, match="run result: missing field 'pid'"):
        RunResult.from_fields({"listen": "h:1", "bundle": "b"})
    with pytest.raises(MessageError, match="'pong' must be int/float"):
        PingResult.from_fields({"pong": "now"})

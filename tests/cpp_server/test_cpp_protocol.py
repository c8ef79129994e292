"""The server survives malformed, oversized, truncated and mis-specified input (docs/protocol.md).

Each bad peer is a real TCP connection to a real server process; after each one a well-behaved
client must still get correct results. The same suite runs against the ASan/UBSan build.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cpp_fixtures import (
    ServerFleet,
    fleet,  # noqa: F401 - fixture
    sanitizer_build,  # noqa: F401 - fixture
    server_bin,  # noqa: F401 - fixture
)

from orchestrator.dataplane.client import ChainClient, TensorSender
from orchestrator.dataplane.protocol import (
    ConnectionClosed,
    FrameType,
    HandshakeError,
    Hello,
    ProtocolError,
    WireSpec,
    encode_frame,
    read_frame,
)

SPEC = WireSpec.parse("UINT4:1,4,4,8")


def _hello(spec: WireSpec = SPEC) -> bytes:
    return encode_frame(FrameType.HELLO, 0, Hello("sender", "bad-peer", spec).encode())


def _tensor(seq: int, payload: bytes | None = None, **overrides: object) -> bytes:
    return encode_frame(FrameType.TENSOR, seq, bytes(SPEC.packed_size) if payload is None else payload, **overrides)


def _connect(address: tuple[str, int], handshake: bool) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    if handshake:
        sock.sendall(_hello())
        assert read_frame(sock, 0).type == FrameType.HELLO
    return sock


def _server_answer(sock: socket.socket) -> str:
    """The ERROR text the server sent before closing ("" if it just closed)."""
    try:
        frame = read_frame(sock, SPEC.packed_size)
    except ConnectionClosed:
        return ""
    except ProtocolError as exc:
        return f"<{exc}>"
    assert frame.type == FrameType.ERROR, frame
    try:
        read_frame(sock, SPEC.packed_size)
    except ConnectionClosed:
        return frame.payload.decode()
    raise AssertionError("server kept the connection open after ERROR")


def _abort(sock: socket.socket) -> None:
    """Close with RST instead of FIN (an abrupt disconnect)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# Each case: (handshake first?, bytes to send, then 'answer' to read the ERROR or 'close'/'reset', expected text)
CASES: dict[str, tuple[bool, bytes, str, str]] = {
    "garbage-before-hello": (False, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "answer", "bad magic"),
    "tensor-before-hello": (False, _tensor(1), "answer", "TENSOR frame before the handshake"),
    "bad-hello-payload": (False, encode_frame(FrameType.HELLO, 0, b"FSPL-HELLO role=sender dtype=UINT4"),
                          "answer", "HELLO lacks dtype, shape or packing"),
    "hello-not-ascii": (False, encode_frame(FrameType.HELLO, 0, bytes(range(200, 256))), "answer", "not printable"),
    "oversized-hello": (False, encode_frame(FrameType.HELLO, 0, b"x" * 5000), "answer", "oversized HELLO"),
    "wrong-version": (True, _tensor(1, version=1), "answer", "protocol version 1 is not supported"),
    "tagged-on-a-plain-link": (True, _tensor(1, flags=1), "answer", "a tagged frame on a link that is not auth"),
    "unknown-type": (True, encode_frame(9, 1, b""), "answer", "unknown frame type 9"),
    "reserved-flags": (True, _tensor(1, flags=4), "answer", "reserved flags"),
    "oversized-tensor": (True, _tensor(1, length=1 << 31)[:24], "answer", "oversized TENSOR frame"),
    "undersized-tensor": (True, _tensor(1, payload=b"\0" * 3), "answer", "undersized TENSOR frame"),
    "bad-checksum": (True, _tensor(1, checksum=12345), "answer", "checksum mismatch"),
    "seq-backwards": (True, _tensor(5) + _tensor(4), "answer", "sequence number 4 after 5"),
    "hello-twice": (True, _hello(), "answer", "unexpected HELLO frame"),
    "truncated-header": (True, _tensor(1)[:10], "close", ""),
    "truncated-payload": (True, _tensor(1)[:40], "close", ""),
    "reset-mid-frame": (True, _tensor(1)[:40], "reset", ""),
    "reset-in-handshake": (False, _hello()[:30], "reset", ""),
}


def _good_round_trip(server_address: tuple[str, int], client: ChainClient, rng: np.random.Generator) -> None:
    frames = [rng.integers(0, 16, size=SPEC.shape) for _ in range(3)]
    sender = TensorSender(server_address, SPEC, node="good-client")
    try:
        for frame in frames:
            sender.send(frame)
        for frame in frames:
            _, got = client.receiver.receive(timeout=10)
            np.testing.assert_array_equal(got, frame)  # the delay backend echoes its input
    finally:
        sender.close()


def _run_bad_peers(servers: ServerFleet, check_log: Callable[[str], None]) -> None:
    with ChainClient(SPEC, SPEC) as client:
        server = servers.start("s0", client.result_address, "--backend", "delay", "--delay-us", "0",
                               "--spec-in", SPEC.flag(), "--spec-out", SPEC.flag(), "--io-timeout-ms", "1000")
        client.receiver.accept()
        rng = np.random.default_rng(0)
        for number, (name, (handshake, data, then, expected)) in enumerate(CASES.items(), start=1):
            valid_frames = 1 if name == "seq-backwards" else 0  # its frame 5 is good and gets through
            sock = _connect(server.address, handshake)
            sock.sendall(data)
            if then == "answer":
                answer = _server_answer(sock)
                assert expected in answer, f"{name}: server answered {answer!r}"
                sock.close()
            elif then == "close":
                sock.shutdown(socket.SHUT_WR)
                assert _server_answer(sock) == "", name
                sock.close()
            else:
                _abort(sock)
            server.wait_log("dropping", timeout=10, count=number)
            for _ in range(valid_frames):
                seq, values = client.receiver.receive(timeout=10)
                assert seq == 5 and not values.any()
            _good_round_trip(server.address, client, rng)
        stats = server.stats(lambda s: s["frames"]["out"] >= 3 * len(CASES) + 1)
        errors = stats["errors"]
        assert errors["bad_frame"] >= 14 and errors["disconnect"] >= 4, errors
        assert stats["frames"]["dropped"] == 0
        assert server.terminate() == 0
        check_log(server.log())


def test_bad_peers_are_dropped_and_the_server_keeps_serving(fleet: ServerFleet) -> None:  # noqa: F811
    _run_bad_peers(fleet, lambda log: None)


def test_bad_peers_under_address_and_undefined_behaviour_sanitizers(sanitizer_build: Path,  # noqa: F811
                                                                    tmp_path: Path) -> None:
    servers = ServerFleet(sanitizer_build / "finnsplit-server", tmp_path,
                          env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
                               "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"})

    def no_sanitizer_reports(log: str) -> None:
        assert "ERROR: AddressSanitizer" not in log and "runtime error:" not in log and "LeakSanitizer" not in log, log

    try:
        _run_bad_peers(servers, no_sanitizer_reports)
    finally:
        servers.close()


def test_wrong_spec_is_refused_with_both_specs_named(fleet: ServerFleet) -> None:  # noqa: F811
    with ChainClient(SPEC, SPEC) as client:
        server = fleet.start("board1", client.result_address, "--backend", "delay", "--spec-in", SPEC.flag(),
                             "--spec-out", SPEC.flag())
        wrong = WireSpec.parse("UINT4:1,8,8,2")
        with pytest.raises(HandshakeError) as excinfo:
            TensorSender(server.address, wrong, node="board0")
        message = str(excinfo.value)  # an unauthenticated peer is not told what the server expects
        assert "mis-wired chain: peer 'board0' sends UINT4 1x8x8x2, which this server does not expect" in message
        assert "1x4x4x8" not in message
        log = server.wait_log("mis-wired chain")
        assert "peer sends UINT4 1x8x8x2 but this server expects UINT4 1x4x4x8" in log
        assert "board0" in log and "board1" in log
        assert server.stats(lambda s: s["errors"]["spec_mismatch"] == 1)


def test_miswired_chain_fails_loudly_on_both_boards(fleet: ServerFleet) -> None:  # noqa: F811
    first_out = WireSpec.parse("UINT4:1,56,56,128")
    second_in = WireSpec.parse("UINT4:1,28,28,256")
    with ChainClient(second_in, second_in) as client:
        second = fleet.start("board1", client.result_address, "--backend", "delay", "--spec-in", second_in.flag(),
                             "--spec-out", second_in.flag())
        first = fleet.start("board0", second.address, "--backend", "delay", "--spec-in", "UINT8:1,4,4,3",
                            "--spec-out", first_out.flag())
        text = "peer sends UINT4 1x56x56x128 but this server expects UINT4 1x28x28x256"
        assert "UINT4 1x56x56x128, which this server does not expect" in first.wait_log("mis-wired chain")
        assert text in second.wait_log("mis-wired chain")  # the full text only in the receiver's own log
        assert first.stats(lambda s: s["errors"]["send"] >= 1 and not s["downstream_connected"])


def test_result_port_refuses_a_last_server_with_the_wrong_output(fleet: ServerFleet) -> None:  # noqa: F811
    with ChainClient(SPEC, WireSpec.parse("INT8:1,10")) as client:
        server = fleet.start("last", client.result_address, "--backend", "delay", "--spec-in", SPEC.flag(),
                             "--spec-out", SPEC.flag())
        with pytest.raises(HandshakeError, match="peer sends UINT4 1x4x4x8 but this client expects INT8 1x10"):
            client.receiver.accept()
        server.wait_log("mis-wired chain: peer 'last' sends UINT4 1x4x4x8, which this client does not accept")


def test_busy_server_refuses_connections_over_the_limit(fleet: ServerFleet) -> None:  # noqa: F811
    with ChainClient(SPEC, SPEC) as client:
        server = fleet.start("s0", client.result_address, "--backend", "delay", "--spec-in", SPEC.flag(),
                             "--spec-out", SPEC.flag(), "--max-upstreams", "1")
        first = _connect(server.address, handshake=True)
        second = socket.create_connection(server.address, timeout=10)
        second.sendall(_hello())  # without authentication, a second upstream cannot evict the first
        assert "server busy" in _server_answer(second)
        first.close()
        second.close()

"""The Python side of the wire protocol (orchestrator/dataplane/: protocol, client, link_auth) over real sockets."""

from __future__ import annotations

import socket
import threading
import zlib

import numpy as np
import pytest

from core.datatypes import datatype
from core.packing import pack
from orchestrator.dataplane.client import ResultReceiver, TensorSender
from orchestrator.dataplane.link_auth import LinkSession, Proofs, new_key
from orchestrator.dataplane.protocol import (
    HEADER,
    ConnectionClosed,
    FrameType,
    HandshakeError,
    Hello,
    ProtocolError,
    WireSpec,
    decode_tensor,
    encode_frame,
    encode_tensor,
    mismatch,
    read_frame,
)
from splitter.graph import TensorSpec

SPEC = WireSpec.parse("INT3:1,2,2,5")


def test_header_layout_is_the_documented_one() -> None:
    frame = encode_frame(FrameType.TENSOR, 0x0102030405060708, b"\x01\x02\x03")
    assert len(frame) == 24 + 3 and HEADER.size == 24
    assert frame[:4] == b"FSPL" and frame[4] == 2 and frame[5] == 2 and frame[6:8] == b"\0\0"
    assert frame[8:16] == bytes([8, 7, 6, 5, 4, 3, 2, 1])  # little-endian sequence number
    assert frame[16:20] == (3).to_bytes(4, "little")
    assert int.from_bytes(frame[20:24], "little") == zlib.crc32(frame[:20] + frame[24:])


def test_tensor_payload_is_splitters_dense_packing() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(-4, 4, size=SPEC.shape)
    payload = encode_tensor(values, SPEC)
    assert payload == pack(values, datatype("INT3")) and len(payload) == SPEC.packed_size == 8  # ceil(60 / 8)
    np.testing.assert_array_equal(decode_tensor(payload, SPEC), values)
    assert WireSpec.of(TensorSpec("t", (1, 2, 2, 5), datatype("INT3"))) == SPEC
    assert str(SPEC) == "INT3 1x2x2x5" and SPEC.flag() == "INT3:1,2,2,5"


def test_hello_round_trip_and_mismatch_text() -> None:
    hello = Hello("sender", "board 0", WireSpec.parse("UINT4:1,56,56,128"))
    parsed = Hello.parse(hello.encode())
    assert parsed == Hello("sender", "board_0", hello.spec)
    expected = WireSpec.parse("UINT4:1,28,28,256")
    text = mismatch(parsed, expected, "server")
    assert text == "peer sends UINT4 1x56x56x128 but this server expects UINT4 1x28x28x256"
    assert mismatch(parsed, hello.spec, "server") == ""
    with pytest.raises(ProtocolError, match="malformed HELLO"):
        Hello.parse(b"FSPL-HELLO role=sender dtype=UINT4")


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    return a, b


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"XXXX" + bytes(20), "bad magic"),
        (encode_frame(FrameType.TENSOR, 1, bytes(8), version=3), "version 3"),
        (encode_frame(FrameType.TENSOR, 1, bytes(8), checksum=1), "checksum mismatch"),
        (encode_frame(FrameType.TENSOR, 1, bytes(9)), "agreed spec packs to 8"),
        (encode_frame(FrameType.ERROR, 0, b"x" * 5000), "limit 4096"),
        (encode_frame(FrameType.TENSOR, 1, bytes(8))[:30], "after 6 of 8 bytes"),
    ],
)
def test_read_frame_rejects_malformed_input(raw: bytes, message: str) -> None:
    a, b = _pair()
    a.sendall(raw)
    a.close()
    with pytest.raises(ProtocolError, match=message):
        read_frame(b, SPEC.packed_size)
    b.close()


def test_clean_close_between_frames_is_connection_closed() -> None:
    a, b = _pair()
    a.close()
    with pytest.raises(ConnectionClosed):
        read_frame(b, 8)


def test_sender_and_receiver_speak_to_each_other() -> None:
    """The client's two halves against each other: handshake, tensors, BYE, reconnect."""
    receiver = ResultReceiver(SPEC, timeout=5)
    rng = np.random.default_rng(1)
    frames = [rng.integers(-4, 4, size=SPEC.shape) for _ in range(3)]

    def last_server() -> None:
        for round_ in range(2):  # the "last server" restarts once: the receiver accepts again
            sender = TensorSender(receiver.address, SPEC, node=f"last-{round_}")
            for i, frame in enumerate(frames):
                sender.send(frame, seq=10 * round_ + i + 1)
            sender.close()

    thread = threading.Thread(target=last_server)
    thread.start()
    got = [receiver.receive() for _ in range(6)]
    thread.join()
    assert [seq for seq, _ in got] == [1, 2, 3, 11, 12, 13]
    for (_, values), frame in zip(got, frames * 2, strict=True):
        np.testing.assert_array_equal(values, frame)
    receiver.close()


def test_receiver_refuses_a_sender_of_another_spec() -> None:
    receiver = ResultReceiver(SPEC, timeout=5)
    errors: list[BaseException] = []

    def wrong_sender() -> None:
        try:
            TensorSender(receiver.address, WireSpec.parse("INT3:1,2,2,6"), node="board2")
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=wrong_sender)
    thread.start()
    with pytest.raises(HandshakeError, match="peer sends INT3 1x2x2x6 but this client expects INT3 1x2x2x5"):
        receiver.accept()
    thread.join()
    assert isinstance(errors[0], HandshakeError)  # unauthenticated: told only what it sent itself
    assert "peer 'board2' sends INT3 1x2x2x6, which this client does not accept" in str(errors[0])
    assert "1x2x2x5" not in str(errors[0])
    receiver.close()


def _handshake(receiver_key: bytes | None, sender_key: bytes | None, node: str = "last",
               spec: WireSpec = SPEC, accept: str | None = None) -> tuple[list[str], list[str]]:
    """A TensorSender with `sender_key` against a ResultReceiver with `receiver_key`: each end's errors."""
    receiver = ResultReceiver(SPEC, timeout=5, key=receiver_key,
                              accept_node=None if accept is None else (lambda n: n == accept))
    sender_errors: list[str] = []
    receiver_errors: list[str] = []

    def send() -> None:
        try:
            sender = TensorSender(receiver.address, spec, node=node, key=sender_key)
            sender.send(np.zeros(SPEC.shape, dtype=np.int64))
            sender.close()
        except BaseException as exc:  # reported below
            sender_errors.append(str(exc))

    thread = threading.Thread(target=send)
    thread.start()
    try:
        receiver.receive(timeout=5)
    except BaseException as exc:
        receiver_errors.append(str(exc))
    thread.join()
    receiver.close()
    return sender_errors, receiver_errors


def test_authenticated_links_refuse_strangers_without_telling_them_the_spec() -> None:
    key, other = new_key(), new_key()
    assert _handshake(key, key) == ([], [])  # the control: the deployment's own
    cases = {
        "no key": (key, None, "requires authentication", "did not authenticate"),
        "wrong key": (key, other, "failed to authenticate", "peer closed"),  # the sender notices first
        "keyed sender, keyless port": (None, key, "does not authenticate", "does not authenticate"),
    }
    for name, (receiver_key, sender_key, sender_says, receiver_says) in cases.items():
        sent, received = _handshake(receiver_key, sender_key)
        assert len(sent) == len(received) == 1, (name, sent, received)
        assert sender_says in sent[0] and receiver_says in received[0], (name, sent, received)
        assert "1x2x2x5" not in sent[0], (name, sent)
    # a stranger that does not check the port's proof and answers with a made-up one
    receiver = ResultReceiver(SPEC, timeout=5, key=key)
    refused: list[str] = []

    def accept() -> None:
        try:
            receiver.accept()
        except HandshakeError as exc:
            refused.append(str(exc))

    thread = threading.Thread(target=accept)
    thread.start()
    stranger = socket.create_connection(receiver.address, timeout=5)
    stranger.sendall(encode_frame(FrameType.HELLO, 0, Hello("sender", "x", SPEC, auth="hmac-sha256",
                                                             nonce="00" * 16).encode()))
    assert read_frame(stranger, 0).type == FrameType.AUTH
    stranger.sendall(encode_frame(FrameType.AUTH, 0, b"FSPL-AUTH mac=" + b"ab" * 32))
    assert read_frame(stranger, 0).payload == b"handshake: authentication failed"
    thread.join()
    assert refused and "failed to authenticate" in refused[0]
    stranger.close()
    receiver.close()
    sent, _ = _handshake(key, key, spec=WireSpec.parse("INT3:1,2,2,6"))
    assert "this client expects INT3 1x2x2x5" in sent[0]  # authenticated: the full mis-wiring text
    sent, received = _handshake(key, key, node="zed0", accept="zed2")
    assert "peer 'zed0' is not the chain's last stage" in received[0] and len(sent) == 1


def test_tagged_frames_cannot_be_altered_replayed_or_forged() -> None:
    key = new_key()
    ns, nr = bytes(16), bytes(range(16))
    proofs = Proofs.compute(key, ns, nr, b"FSPL-HELLO role=sender")
    payload = bytes(range(8))

    def one(raw: bytes) -> None:
        a, b = _pair()
        a.sendall(raw)
        read_frame(b, 8, LinkSession(proofs.session, is_sender=False))

    good = encode_frame(FrameType.TENSOR, 5, payload, session=LinkSession(proofs.session, is_sender=True))
    one(good)
    altered = bytearray(good)
    altered[24] ^= 1  # the checksum of a tagged frame covers its header alone: only the tag can catch this
    assert int.from_bytes(good[20:24], "little") == zlib.crc32(good[:20])
    with pytest.raises(ProtocolError, match="authentication tag mismatch"):
        one(bytes(altered))
    sender = LinkSession(proofs.session, is_sender=True)
    first = encode_frame(FrameType.TENSOR, 5, payload, session=sender)
    a, b = _pair()
    receiver = LinkSession(proofs.session, is_sender=False)
    a.sendall(first + first)  # the same frame again: its counter is used up
    read_frame(b, 8, receiver)
    with pytest.raises(ProtocolError, match="authentication tag mismatch"):
        read_frame(b, 8, receiver)
    stranger = LinkSession(Proofs.compute(new_key(), ns, nr, b"x").session, is_sender=True)
    with pytest.raises(ProtocolError, match="authentication tag mismatch"):
        one(encode_frame(FrameType.TENSOR, 6, payload, session=stranger))
    with pytest.raises(ProtocolError, match="untagged frame on an authenticated link"):
        one(encode_frame(FrameType.TENSOR, 7, payload))

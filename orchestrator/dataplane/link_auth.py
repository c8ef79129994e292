"""Authenticated data-plane links (docs/protocol.md#authentication): the key, both handshakes, frame tags.

The same construction as cpp_server/src/LinkAuth.h: every link of a deployment shares a 32-byte
key; the handshake proves both ends hold it with HMAC-SHA256 over two fresh 16-byte nonces and the
sender's HELLO; afterwards each frame carries Poly1305(HMAC-SHA256(session key, direction,
counter), header + payload), so a frame cannot be forged, replayed, reordered or moved to another
connection. A refusal names the expected spec only to a peer that proved it holds the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.poly1305 import Poly1305

from orchestrator.dataplane.protocol import (
    FrameType,
    HandshakeError,
    Hello,
    PeerError,
    ProtocolError,
    WireSpec,
    encode_frame,
    expect_hello,
    mismatch,
    read_frame,
)

KEY_BYTES, NONCE_BYTES = 32, 16
AUTH = "hmac-sha256"
RECEIVER_LABEL, SENDER_LABEL, SESSION_LABEL = b"finnsplit-link-v2 receiver", b"finnsplit-link-v2 sender", \
    b"finnsplit-link-v2 session"


def new_key() -> bytes:
    """A fresh per-deployment link key."""
    return secrets.token_bytes(KEY_BYTES)


def write_key(path: str | Path, key: bytes) -> Path:
    """Write `key` as 64 hex digits to a file only its owner can read (the server's --auth-key-file)."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(key.hex() + "\n")
    return path


def read_key(path: str | Path) -> bytes:
    """The key in `path` (64 hex digits), refused if its group or others can read it."""
    path = Path(path)
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ProtocolError(f"the link key {path} is accessible to its group or others: chmod 600 it")
    return bytes.fromhex(path.read_text().strip())


@dataclass(frozen=True)
class Proofs:
    """Both ends' handshake MACs and the session key (cpp_server/src/LinkAuth.h, HandshakeProofs)."""

    receiver: bytes
    sender: bytes
    session: bytes

    @classmethod
    def compute(cls, key: bytes, sender_nonce: bytes, receiver_nonce: bytes, sender_hello: bytes) -> Proofs:
        """From the key, both nonces and the sender's HELLO payload."""
        def mac(*parts: bytes) -> bytes:
            return hmac.new(key, b"".join(parts), hashlib.sha256).digest()

        return cls(mac(RECEIVER_LABEL, sender_nonce, receiver_nonce, sender_hello),
                   mac(SENDER_LABEL, sender_nonce, receiver_nonce, sender_hello),
                   mac(SESSION_LABEL, sender_nonce, receiver_nonce))


class LinkSession:
    """The tags of one authenticated connection; `is_sender`: this end is the link's sender."""

    def __init__(self, session_key: bytes, is_sender: bool) -> None:
        """Counters start at 0 in both directions."""
        self._key, self._is_sender = session_key, is_sender
        self._sent = self._received = 0

    def _frame_key(self, direction: bytes, counter: int) -> bytes:
        return hmac.new(self._key, direction + counter.to_bytes(8, "little"), hashlib.sha256).digest()

    def tag_outgoing(self, header: bytes, payload: bytes) -> bytes:
        """The tag of the next frame this end sends."""
        mac = Poly1305(self._frame_key(b"S" if self._is_sender else b"R", self._sent))
        self._sent += 1
        mac.update(header)
        mac.update(payload)
        return mac.finalize()

    def verify_incoming(self, header: bytes, payload: bytes, tag: bytes) -> bool:
        """Whether `tag` is the peer's tag of its next frame (the counter advances either way)."""
        mac = Poly1305(self._frame_key(b"R" if self._is_sender else b"S", self._received))
        self._received += 1
        mac.update(header)
        mac.update(payload)
        return hmac.compare_digest(mac.finalize(), tag)


def _auth_fields(payload: bytes) -> dict[str, str]:
    tokens = payload.decode("ascii", errors="replace").split()
    if not tokens or tokens[0] != "FSPL-AUTH":
        raise ProtocolError("malformed AUTH payload")
    return dict(token.partition("=")[::2] for token in tokens[1:])


def _hex(fields: dict[str, str], name: str, size: int) -> bytes:
    try:
        value = bytes.fromhex(fields.get(name, ""))
    except ValueError:
        value = b""
    if len(value) != size:
        raise ProtocolError(f"malformed AUTH payload ({name})")
    return value


def sender_handshake(sock: socket.socket, spec: WireSpec, node: str, key: bytes | None,
                     where: str, order: str = "") -> tuple[Hello, LinkSession | None]:
    """The sending side (the client to the first board): HELLO, and with a key the AUTH exchange.

    `order`: "any" if this sender's frames come in any sequence order (docs/protocol.md#fan-out-and-merge).
    Returns the receiver's HELLO and the session; HandshakeError if refused or mis-wired.
    """
    hello = Hello("sender", node, spec, order=order)
    nonce = secrets.token_bytes(NONCE_BYTES) if key else b""
    if key:
        hello = replace(hello, auth=AUTH, nonce=nonce.hex())
    text = hello.encode()
    sock.sendall(encode_frame(FrameType.HELLO, 0, text))
    session = None
    reply = read_frame(sock, 0)
    if reply.type == FrameType.ERROR:
        raise HandshakeError(f"{where} refused: {reply.payload.decode(errors='replace')}")
    if key:
        if reply.type != FrameType.AUTH:
            raise HandshakeError(f"{where} does not authenticate links (started without --auth-key-file)")
        fields = _auth_fields(reply.payload)
        proofs = Proofs.compute(key, nonce, _hex(fields, "nonce", NONCE_BYTES), text)
        if not hmac.compare_digest(_hex(fields, "mac", 32), proofs.receiver):
            raise HandshakeError(f"{where} failed to authenticate (it does not hold this deployment's link key)")
        sock.sendall(encode_frame(FrameType.AUTH, 0, f"FSPL-AUTH mac={proofs.sender.hex()}".encode()))
        session = LinkSession(proofs.session, is_sender=True)
        reply = read_frame(sock, 0, session)
    elif reply.type == FrameType.AUTH:
        raise HandshakeError(f"{where} requires link authentication: give this client the deployment's key")
    try:
        answer = expect_hello(reply)
    except PeerError as exc:
        raise HandshakeError(f"{where} refused: {exc}") from None
    if answer.spec != spec:
        raise HandshakeError(f"this client sends {spec} but server '{answer.node}' expects {answer.spec}")
    return answer, session


def receiver_handshake(conn: socket.socket, spec: WireSpec, node: str, key: bytes | None,
                       accept_node: Callable[[str], bool] = lambda _: True) -> tuple[Hello, LinkSession | None]:
    """The receiving side (the result port): the peer must prove the key (if any), be a sender of
    `spec` and a node `accept_node` admits (the chain's last stage). Answers HELLO or ERROR."""
    frame = read_frame(conn, 0)
    hello = expect_hello(frame)

    def refuse(told: str, logged: str | None = None) -> HandshakeError:
        conn.sendall(encode_frame(FrameType.ERROR, 0, told.encode()))
        return HandshakeError(logged or told)

    if hello.role != "sender":
        raise refuse(f"mis-wired chain: peer is not a sender (peer '{hello.node}')")
    if key:
        if hello.auth != AUTH or len(hello.nonce) != 2 * NONCE_BYTES or any(c not in "0123456789abcdef"
                                                                          for c in hello.nonce.lower()):
            raise refuse("handshake: this link requires authentication",
                         f"peer '{hello.node}' did not authenticate (no link key)")
        return _authenticate(conn, hello, frame.payload, spec, node, key, accept_node)
    if hello.auth:
        raise refuse("handshake: this result port does not authenticate links (no key)")
    problem = "" if accept_node(hello.node) else f"peer '{hello.node}' is not the chain's last stage"
    problem = problem or mismatch(hello, spec, "client")
    if problem:
        # unauthenticated: the peer learns nothing of what this port expects
        raise refuse(f"mis-wired chain: peer '{hello.node}' sends {hello.spec}, which this client does not accept",
                     f"mis-wired chain: {problem} (peer '{hello.node}')")
    conn.sendall(encode_frame(FrameType.HELLO, 0, Hello("receiver", node, spec).encode()))
    return hello, None


def _authenticate(conn: socket.socket, hello: Hello, sent: bytes, spec: WireSpec, node: str, key: bytes,
                  accept_node: Callable[[str], bool]) -> tuple[Hello, LinkSession]:
    """The AUTH exchange (the MACs cover the HELLO payload `sent` as received), then the spec check."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    proofs = Proofs.compute(key, bytes.fromhex(hello.nonce), nonce, sent)
    conn.sendall(encode_frame(FrameType.AUTH, 0, f"FSPL-AUTH nonce={nonce.hex()} mac={proofs.receiver.hex()}".encode()))
    answer = read_frame(conn, 0)
    try:
        good = answer.type == FrameType.AUTH and hmac.compare_digest(_hex(_auth_fields(answer.payload), "mac", 32),
                                                                     proofs.sender)
    except ProtocolError:
        good = False
    if not good:
        conn.sendall(encode_frame(FrameType.ERROR, 0, b"handshake: authentication failed"))
        raise HandshakeError(f"peer '{hello.node}' failed to authenticate (wrong link key)")
    session = LinkSession(proofs.session, is_sender=False)
    problem = "" if accept_node(hello.node) else f"peer '{hello.node}' is not the chain's last stage"
    problem = problem or mismatch(hello, spec, "client")
    if problem:
        message = f"mis-wired chain: {problem} (peer '{hello.node}')"
        conn.sendall(encode_frame(FrameType.ERROR, 0, message.encode(), session=session))
        raise HandshakeError(message)
    conn.sendall(encode_frame(FrameType.HELLO, 0, Hello("receiver", node, spec).encode(), session=session))
    return hello, session


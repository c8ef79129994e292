"""Client side of a chain of finnsplit servers: send tensors to the first, receive results from the last.

The last server connects to the client's result port (`ResultReceiver`); the client connects to the
first server (`TensorSender`). `ChainClient` combines both. Protocol: docs/protocol.md. With the
deployment's link key every link is authenticated (orchestrator/link_auth.py) and the result port
accepts only the node it is told is the chain's last stage. Wire sequence numbers start from a
random base, so a new run never reuses the numbers of one still in flight.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType

import numpy as np

from orchestrator.link_auth import receiver_handshake, sender_handshake
from orchestrator.protocol import (
    ConnectionClosed,
    Frame,
    FrameType,
    PeerError,
    ProtocolError,
    WireSpec,
    decode_tensor,
    encode_frame,
    encode_tensor,
    read_frame,
)
from splitter.graph import TensorSpec

Address = tuple[str, int]
NodeFilter = Callable[[str], bool]


def random_seq_base() -> int:
    """A random first wire sequence number (62 bits: a run can count up for ever without wrapping)."""
    return secrets.randbits(62) + 1


class TensorSender:
    """A connection to a server's listening port that sends TENSOR frames of one spec."""

    def __init__(self, address: Address, spec: TensorSpec | WireSpec, node: str = "client", timeout: float = 10.0,
                 key: bytes | None = None):
        """Connect and handshake (authenticated with `key`); HandshakeError if refused or the spec differs."""
        self.spec = WireSpec.of(spec)
        self._seq = itertools.count(random_seq_base())
        self._sock = socket.create_connection(address, timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            reply, self._session = sender_handshake(self._sock, self.spec, node, key,
                                                    f"server at {address[0]}:{address[1]}")
        except BaseException:
            self._sock.close()
            raise
        self.peer = reply.node

    def send(self, values: np.ndarray, seq: int | None = None) -> int:
        """Send one tensor; returns its sequence number (counting up from a random base unless given)."""
        return self.send_packed(encode_tensor(values, self.spec), seq)

    def send_packed(self, payload: bytes, seq: int | None = None) -> int:
        """Send one already densely packed tensor; returns its sequence number."""
        number = next(self._seq) if seq is None else seq
        self._sock.sendall(encode_frame(FrameType.TENSOR, number, payload, session=self._session))
        return number

    def close(self) -> None:
        """Say BYE and close."""
        with contextlib.suppress(OSError):
            self._sock.sendall(encode_frame(FrameType.BYE, 0, session=self._session))
        self._sock.close()


class ResultReceiver:
    """The client's result port: the last server of the chain connects here and sends results."""

    def __init__(self, spec: TensorSpec | WireSpec, host: str = "127.0.0.1", port: int = 0, node: str = "client",
                 timeout: float = 10.0, key: bytes | None = None, accept_node: NodeFilter | None = None):
        """Listen on host:port (0: an ephemeral port, see `address`); with `key`, only authenticated
        senders, and only nodes `accept_node` admits (the chain's last stage), are accepted."""
        self.spec = WireSpec.of(spec)
        self.node = node
        self.timeout = timeout
        self.key, self.accept_node = key, accept_node or (lambda _node: True)
        self._listener = socket.create_server((host, port))
        self._conn: socket.socket | None = None
        self._session = None
        self.peer = ""

    @property
    def address(self) -> Address:
        """Where the last server must connect (its --next)."""
        host, port = self._listener.getsockname()[:2]
        return host, port

    def accept(self, timeout: float | None = None) -> None:
        """Wait for the last server and handshake; raises HandshakeError if it sends a different spec."""
        self._listener.settimeout(self.timeout if timeout is None else timeout)
        try:
            conn, _ = self._listener.accept()
        except TimeoutError:
            raise ProtocolError(f"no server connected to result port {self.address[1]}") from None
        conn.settimeout(self.timeout)
        try:
            hello, self._session = receiver_handshake(conn, self.spec, self.node, self.key, self.accept_node)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self.peer = hello.node

    def receive(self, timeout: float | None = None) -> tuple[int, np.ndarray]:
        """The next result as (sequence number, int64 array of spec.shape); see receive_packed."""
        seq, payload = self.receive_packed(timeout)
        return seq, decode_tensor(payload, self.spec)

    def receive_packed(self, timeout: float | None = None) -> tuple[int, bytes]:
        """The next result as (sequence number, densely packed payload).

        Accepts the last server first if needed, and again if it closes or says BYE (a restarted
        or reconnecting last server), within the same timeout.
        """
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError(f"no result within {wait} s")
            if self._conn is None:
                self.accept(left)
            assert self._conn is not None
            self._conn.settimeout(left)
            try:
                frame = read_frame(self._conn, self.spec.packed_size, self._session)
            except ConnectionClosed:
                frame = Frame(FrameType.BYE, 0, b"")
            if frame.type == FrameType.TENSOR:
                return frame.seq, frame.payload
            if frame.type == FrameType.ERROR:
                raise PeerError(frame.payload.decode(errors="replace"))
            if frame.type != FrameType.BYE:
                raise ProtocolError(f"expected a TENSOR result, got {frame.type.name}")
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Close the result connection and the listening socket."""
        if self._conn is not None:
            self._conn.close()
        self._listener.close()


class ChainClient:
    """Send tensors into a chain of servers and receive its results, in order."""

    def __init__(self, input_spec: TensorSpec | WireSpec, output_spec: TensorSpec | WireSpec,
                 result_host: str = "127.0.0.1", result_port: int = 0, node: str = "client", timeout: float = 30.0,
                 key: bytes | None = None, last_stage: str | None = None):
        """Open the result port; start the chain with its last --next = `result_address`, then `connect`.

        With `key` both ends are authenticated; `last_stage`: the only node the result port accepts.
        """
        self.input_spec = WireSpec.of(input_spec)
        self.key = key
        self.receiver = ResultReceiver(output_spec, result_host, result_port, node=node, timeout=timeout, key=key,
                                       accept_node=None if last_stage is None else (lambda n: n == last_stage))
        self.node = node
        self.timeout = timeout
        self.sender: TensorSender | None = None

    @property
    def result_address(self) -> Address:
        """The address the last server connects to."""
        return self.receiver.address

    def connect(self, first_hop: Address) -> None:
        """Connect to the first server (handshake both ends)."""
        self.sender = TensorSender(first_hop, self.input_spec, node=self.node, timeout=self.timeout, key=self.key)
        if self.receiver._conn is None:
            self.receiver.accept()

    def infer(self, values: np.ndarray) -> np.ndarray:
        """One tensor through the chain."""
        return self.infer_many([values])[0]

    def infer_many(self, tensors: Iterable[np.ndarray]) -> list[np.ndarray]:
        """Many tensors, pipelined (sending in a thread while receiving); results in input order."""
        if self.sender is None:
            raise ProtocolError("ChainClient.connect() first")
        payloads = [encode_tensor(t, self.input_spec) for t in tensors]
        sender = self.sender
        seqs: list[int] = []
        failure: list[BaseException] = []

        def send_all() -> None:
            try:
                seqs.extend(sender.send_packed(p) for p in payloads)
            except BaseException as exc:  # reported in the caller's thread
                failure.append(exc)

        thread = threading.Thread(target=send_all, daemon=True)
        thread.start()
        results = []
        try:
            for _ in payloads:
                results.append(self.receiver.receive())
        finally:
            thread.join()
        if failure:
            raise failure[0]
        if [seq for seq, _ in results] != seqs:
            raise ProtocolError(f"results arrived out of order: {[seq for seq, _ in results][:10]} ...")
        return [values for _, values in results]

    def close(self) -> None:
        """Close both connections."""
        if self.sender is not None:
            self.sender.close()
        self.receiver.close()

    def __enter__(self) -> ChainClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

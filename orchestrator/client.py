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
import select
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from types import TracebackType
from typing import Any

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
                 key: bytes | None = None, order: str = ""):
        """Connect and handshake (authenticated with `key`); HandshakeError if refused or the spec differs.

        `order="any"`: the frames' sequence numbers need not increase (as a stage after replicas sends)."""
        self.spec = WireSpec.of(spec)
        self._seq = itertools.count(random_seq_base())
        self._sock = socket.create_connection(address, timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            reply, self._session = sender_handshake(self._sock, self.spec, node, key,
                                                    f"server at {address[0]}:{address[1]}", order)
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
    """The client's result port: the last server of the chain connects here and sends results.

    Several senders may be connected at once (the replicas of a replicated last stage, or a last
    stage that reconnects); results come from whichever has one (docs/protocol.md#fan-out-and-merge).
    """

    def __init__(self, spec: TensorSpec | WireSpec, host: str = "127.0.0.1", port: int = 0, node: str = "client",
                 timeout: float = 10.0, key: bytes | None = None, accept_node: NodeFilter | None = None):
        """Listen on host:port (0: an ephemeral port, see `address`); with `key`, only authenticated
        senders, and only nodes `accept_node` admits (the chain's last stage), are accepted."""
        self.spec = WireSpec.of(spec)
        self.node = node
        self.timeout = timeout
        self.key, self.accept_node = key, accept_node or (lambda _node: True)
        self._listener = socket.create_server((host, port))
        self._links: list[tuple[socket.socket, Any]] = []  # (connection, session) past the handshake
        self.refused: list[str] = []  # why later upstreams were refused (the first one's refusal is raised)
        self.peer = ""

    @property
    def address(self) -> Address:
        """Where the last server must connect (its --next)."""
        host, port = self._listener.getsockname()[:2]
        return host, port

    @property
    def _conn(self) -> socket.socket | None:
        """The first connected sender, if any."""
        return self._links[0][0] if self._links else None

    def accept(self, timeout: float | None = None) -> None:
        """Wait for the last server and handshake; raises HandshakeError if it sends a different spec."""
        self._listener.settimeout(self.timeout if timeout is None else timeout)
        try:
            conn, _ = self._listener.accept()
        except TimeoutError:
            raise ProtocolError(f"no server connected to result port {self.address[1]}") from None
        self._handshake(conn, self.timeout)

    def _handshake(self, conn: socket.socket, timeout: float) -> None:
        conn.settimeout(timeout)
        try:
            hello, session = receiver_handshake(conn, self.spec, self.node, self.key, self.accept_node)
        except BaseException:
            conn.close()
            raise
        self._links.append((conn, session))
        self.peer = hello.node

    def receive(self, timeout: float | None = None) -> tuple[int, np.ndarray]:
        """The next result as (sequence number, int64 array of spec.shape); see receive_packed."""
        seq, payload = self.receive_packed(timeout)
        return seq, decode_tensor(payload, self.spec)

    def receive_packed(self, timeout: float | None = None) -> tuple[int, bytes]:
        """The next result from any connected sender as (sequence number, densely packed payload).

        Accepts the last server first if needed, and more senders as they connect (replicas, a
        restarted or reconnecting last server), within the same timeout. A sender that closes or
        says BYE is dropped; one that sends ERROR raises PeerError.
        """
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError(f"no result within {wait} s")
            if not self._links:
                self.accept(left)
                continue
            ready, _, _ = select.select([self._listener] + [c for c, _ in self._links], [], [], left)
            for sock in ready:
                if sock is self._listener:
                    self._accept_another(left)
                    continue
                frame = self._read(sock, left)
                if frame is not None and frame.type == FrameType.TENSOR:
                    return frame.seq, frame.payload

    def _accept_another(self, left: float) -> None:
        """A further sender while one is connected: a refusal is recorded, not raised (a stranger must
        not end the stream)."""
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        try:
            self._handshake(conn, min(left, 5.0))
        except (ProtocolError, OSError) as exc:
            self.refused.append(str(exc))
            del self.refused[:-100]

    def _read(self, sock: socket.socket, left: float) -> Frame | None:
        """One frame from a connected sender; None (and the sender dropped) on BYE or a close."""
        session = next(s for c, s in self._links if c is sock)
        sock.settimeout(left)
        try:
            frame = read_frame(sock, self.spec.packed_size, session)
        except ConnectionClosed:
            frame = Frame(FrameType.BYE, 0, b"")
        if frame.type == FrameType.TENSOR:
            return frame
        if frame.type == FrameType.ERROR:
            raise PeerError(frame.payload.decode(errors="replace"))
        if frame.type != FrameType.BYE:
            raise ProtocolError(f"expected a TENSOR result, got {frame.type.name}")
        self._links = [(c, s) for c, s in self._links if c is not sock]
        sock.close()
        return None

    def close(self) -> None:
        """Close the result connections and the listening socket."""
        for conn, _ in self._links:
            conn.close()
        self._links = []
        self._listener.close()


def node_filter(nodes: str | Collection[str] | None) -> NodeFilter | None:
    """The result port's filter for the chain's last stage: one node, or the replicas of a replicated one."""
    if nodes is None:
        return None
    allowed = {nodes} if isinstance(nodes, str) else set(nodes)
    return lambda node: node in allowed


class ChainClient:
    """Send tensors into a chain of servers and receive its results, in order.

    With a replicated first stage the client fans out (each frame to one replica, round robin);
    with a replicated stage anywhere, results arrive interleaved and are put back in order by
    sequence number (`ordered=False`; docs/protocol.md#fan-out-and-merge).
    """

    def __init__(self, input_spec: TensorSpec | WireSpec, output_spec: TensorSpec | WireSpec,
                 result_host: str = "127.0.0.1", result_port: int = 0, node: str = "client", timeout: float = 30.0,
                 key: bytes | None = None, last_stage: str | Collection[str] | None = None, ordered: bool = True):
        """Open the result port; start the chain with its last --next = `result_address`, then `connect`.

        With `key` both ends are authenticated; `last_stage`: the only node (or nodes: the replicas of
        the last stage) the result port accepts. `ordered`: results must arrive in the order sent (a
        chain without replicas); else they are sorted by sequence number.
        """
        self.input_spec = WireSpec.of(input_spec)
        self.key = key
        self.ordered = ordered
        self.receiver = ResultReceiver(output_spec, result_host, result_port, node=node, timeout=timeout, key=key,
                                       accept_node=node_filter(last_stage))
        self.node = node
        self.timeout = timeout
        self.senders: list[TensorSender] = []
        self._seq = itertools.count(random_seq_base())
        self.delivered = 0  # results received so far (a progress bar follows it)

    @property
    def sender(self) -> TensorSender | None:
        """The (first) connection to the first stage, once connected."""
        return self.senders[0] if self.senders else None

    @property
    def result_address(self) -> Address:
        """The address the last server connects to."""
        return self.receiver.address

    def connect(self, first_hop: Address | Sequence[Address]) -> None:
        """Connect to the first server, or to each replica of a replicated first stage (handshake both ends)."""
        hops = [first_hop] if isinstance(first_hop[0], str) else list(first_hop)  # type: ignore[list-item]
        self.senders = [TensorSender(hop, self.input_spec, node=self.node, timeout=self.timeout, key=self.key)
                        for hop in hops]
        if self.receiver._conn is None:
            self.receiver.accept()

    def send_packed(self, payload: bytes) -> int:
        """Send one packed tensor to the next first-stage connection (round robin); its sequence number."""
        number = next(self._seq)
        return self.senders[number % len(self.senders)].send_packed(payload, number)

    def infer(self, values: np.ndarray) -> np.ndarray:
        """One tensor through the chain."""
        return self.infer_many([values])[0]

    def infer_many(self, tensors: Iterable[np.ndarray]) -> list[np.ndarray]:
        """Many tensors, pipelined (sending in a thread while receiving); results in input order."""
        if not self.senders:
            raise ProtocolError("ChainClient.connect() first")
        payloads = [encode_tensor(t, self.input_spec) for t in tensors]
        seqs: list[int] = []
        failure: list[BaseException] = []

        def send_all() -> None:
            try:
                seqs.extend(self.send_packed(p) for p in payloads)
            except BaseException as exc:  # reported in the caller's thread
                failure.append(exc)

        thread = threading.Thread(target=send_all, daemon=True)
        thread.start()
        results = []
        try:
            for _ in payloads:
                results.append(self.receiver.receive())
                self.delivered += 1
        finally:
            thread.join()
        if failure:
            raise failure[0]
        got = [seq for seq, _ in results]
        if self.ordered and got != seqs:
            raise ProtocolError(f"results arrived out of order: {got[:10]} ...")
        by_seq = dict(results)
        if len(by_seq) != len(seqs) or set(by_seq) != set(seqs):
            raise ProtocolError(f"results do not match the frames sent: {len(set(by_seq) & set(seqs))} of "
                                f"{len(seqs)} sequence numbers, {len(results) - len(by_seq)} duplicated")
        return [by_seq[seq] for seq in seqs]

    def close(self) -> None:
        """Close every connection."""
        for sender in self.senders:
            sender.close()
        self.receiver.close()

    def __enter__(self) -> ChainClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

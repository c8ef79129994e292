"""Client side of a chain of finnsplit servers: send tensors to the first, receive results from the last.

The last server connects to the client's result port (`ResultReceiver`); the client connects to the
first server (`TensorSender`). `ChainClient` combines both. Protocol: docs/protocol.md. With the
deployment's link key every link is authenticated (orchestrator/dataplane/link_auth.py) and the result port
accepts only the node it is told is the chain's last stage. Wire sequence numbers start from a
random base, so a new run never reuses the numbers of one still in flight.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from types import TracebackType
from typing import Any

import numpy as np

from orchestrator.dataplane.link_auth import receiver_handshake, sender_handshake
from orchestrator.dataplane.protocol import (
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


class ResultPort:
    """The client's one result port: the last stage connects here; every accepted upstream's results
    go to `deliver(wire_seq, payload)`, each upstream served by a thread of its own.

    Several upstreams may be connected at once (the replicas of a replicated last stage, or a last
    stage that reconnects or moved to another board; docs/protocol.md#fan-out-and-merge). With `key`
    only authenticated upstreams, and only nodes `accept_node` admits (the chain's last stage), are
    accepted. `on_handshake(hello, error)` hears every handshake's outcome, `on_error(message)` an
    upstream's ERROR frame. An upstream that closes, says BYE or breaks the protocol is dropped.
    """

    def __init__(self, spec: TensorSpec | WireSpec, deliver: Callable[[int, bytes], None], host: str = "127.0.0.1",
                 port: int = 0, key: bytes | None = None, accept_node: NodeFilter | None = None,
                 node: str = "client", handshake_timeout: float = 5.0,
                 on_handshake: Callable[[Any, BaseException | None], None] | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        """Listen on host:port (0: an ephemeral port, see `address`) and accept in a background thread."""
        self.spec, self.deliver, self.node = WireSpec.of(spec), deliver, node
        self.key, self.accept_node = key, accept_node or (lambda _node: True)
        self.handshake_timeout = handshake_timeout
        self.on_handshake, self.on_error = on_handshake, on_error
        self.refused: list[str] = []  # why upstreams were refused, for the abuse tests and the log
        self._listener = socket.create_server((host, port))
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def address(self) -> Address:
        """Where the last stage sends (its --next)."""
        host, port = self._listener.getsockname()[:2]
        return host, port

    @property
    def connected(self) -> int:
        """Upstreams connected now, past the handshake or in it."""
        with self._lock:
            return len(self._conns)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                try:
                    conn.settimeout(self.handshake_timeout)  # the whole handshake
                    hello, session = receiver_handshake(conn, self.spec, self.node, self.key, self.accept_node)
                    conn.settimeout(None)
                except (ProtocolError, OSError) as exc:
                    self.refused.append(str(exc))
                    del self.refused[:-100]
                    if self.on_handshake is not None:
                        self.on_handshake(None, exc)
                    return
                if self.on_handshake is not None:
                    self.on_handshake(hello, None)
                self._read(conn, session)
        finally:
            with self._lock:
                self._conns.discard(conn)

    def _read(self, conn: socket.socket, session: Any) -> None:
        try:
            while not self._closed.is_set():
                frame = read_frame(conn, self.spec.packed_size, session)
                if frame.type == FrameType.TENSOR:
                    self.deliver(frame.seq, frame.payload)
                elif frame.type == FrameType.ERROR and self.on_error is not None:
                    self.on_error(frame.payload.decode(errors="replace"))
                elif frame.type == FrameType.BYE:
                    return
        except (ProtocolError, OSError):
            return  # that upstream is gone (or broke the protocol); the orchestrator wires a new one

    def close(self) -> None:
        """Stop accepting and close every upstream's connection."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()


class ResultReceiver:
    """Results to ask for, one at a time: the result port (`ResultPort`) with a queue.

    The first upstream's refusal is raised (by `accept` or `receive`), later ones are only recorded
    in `refused` (a stranger must not end the stream). An upstream's ERROR frame raises PeerError.
    """

    def __init__(self, spec: TensorSpec | WireSpec, host: str = "127.0.0.1", port: int = 0, node: str = "client",
                 timeout: float = 10.0, key: bytes | None = None, accept_node: NodeFilter | None = None):
        """Listen on host:port (0: an ephemeral port, see `address`); `key`, `accept_node` as ResultPort's."""
        self.spec, self.key = WireSpec.of(spec), key
        self.timeout = timeout
        self.peer = ""
        self._results: queue.Queue[tuple[int, bytes] | BaseException] = queue.Queue()
        self._admissions: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue()
        self._admitted = threading.Event()  # an upstream was accepted once: later refusals are not raised
        self._port = ResultPort(self.spec, lambda seq, payload: self._results.put((seq, payload)), host, port, key,
                                accept_node, node, handshake_timeout=min(timeout, 5.0),
                                on_handshake=self._handshake, on_error=lambda m: self._results.put(PeerError(m)))

    @property
    def address(self) -> Address:
        """Where the last server must connect (its --next)."""
        return self._port.address

    @property
    def refused(self) -> list[str]:
        """Why upstreams were refused."""
        return self._port.refused

    @property
    def admitted(self) -> bool:
        """An upstream has been accepted."""
        return self._admitted.is_set()

    def _handshake(self, hello: Any, error: BaseException | None) -> None:
        if error is None and not self._admitted.is_set():
            self.peer = hello.node
        if not self._admitted.is_set():
            self._admissions.put((hello, error))
        if error is None:
            self._admitted.set()

    def accept(self, timeout: float | None = None) -> None:
        """Wait for the last server's handshake; raises its refusal (HandshakeError: a different spec, a
        stranger) or ProtocolError if none connects in time."""
        try:
            _, error = self._admissions.get(timeout=self.timeout if timeout is None else timeout)
        except queue.Empty:
            if self._admitted.is_set():
                return
            raise ProtocolError(f"no server connected to result port {self.address[1]}") from None
        if error is not None:
            raise error

    def receive(self, timeout: float | None = None) -> tuple[int, np.ndarray]:
        """The next result as (sequence number, int64 array of spec.shape); see receive_packed."""
        seq, payload = self.receive_packed(timeout)
        return seq, decode_tensor(payload, self.spec)

    def receive_packed(self, timeout: float | None = None) -> tuple[int, bytes]:
        """The next result from any connected upstream as (sequence number, densely packed payload).

        Waits for the last server's handshake first if none was accepted yet, all within `timeout`.
        """
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while not self._admitted.is_set():
            self.accept(max(deadline - time.monotonic(), 0.0))
        try:
            item = self._results.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise ProtocolError(f"no result within {wait} s") from None
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Close the result connections and the listening socket."""
        self._port.close()


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
        if not self.receiver.admitted:
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

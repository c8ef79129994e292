"""A client that keeps a pipeline's frames flowing while boards fail and the orchestrator re-wires.

Frames are numbered by the client; each transmission gets a fresh wire sequence number (strictly
increasing, as docs/protocol.md requires per connection), so a frame lost inside a dead board is
simply sent again under a new number when its deadline passes, or at once when the orchestrator
re-wires the chain or the client has to connect to the first stage anew. The
result port accepts a new upstream whenever the last stage moves to another board, and only the
board that is the last stage now, authenticated with the deployment's link key
(orchestrator/link_auth.py). Wire numbers start from a random base. Results are delivered once per
frame, in frame order.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterable

import numpy as np

from orchestrator.client import Address, NodeFilter, TensorSender, random_seq_base
from orchestrator.link_auth import receiver_handshake
from orchestrator.protocol import (
    ConnectionClosed,
    FrameType,
    ProtocolError,
    WireSpec,
    decode_tensor,
    encode_tensor,
    read_frame,
)


class ResultPort:
    """Listens for the last stage; every accepted upstream's results go to `deliver(wire_seq, payload)`."""

    def __init__(self, spec: WireSpec, deliver: Callable[[int, bytes], None], host: str = "127.0.0.1",
                 port: int = 0, key: bytes | None = None, accept_node: NodeFilter | None = None) -> None:
        """Start accepting in a background thread; `key` and `accept_node` as ResultReceiver's."""
        self.spec, self.deliver = spec, deliver
        self.key, self.accept_node = key, accept_node or (lambda _node: True)
        self.refused: list[str] = []  # why upstreams were refused, for the abuse tests and the log
        self._listener = socket.create_server((host, port))
        self._closed = threading.Event()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def address(self) -> Address:
        """Where the last stage sends (its --next)."""
        host, port = self._listener.getsockname()[:2]
        return host, port

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5.0)  # the whole handshake
                _, session = receiver_handshake(conn, self.spec, "client", self.key, self.accept_node)
                conn.settimeout(None)
            except (ProtocolError, OSError) as exc:
                self.refused.append(str(exc))
                del self.refused[:-100]
                return
            try:
                while not self._closed.is_set():
                    frame = read_frame(conn, self.spec.packed_size, session)
                    if frame.type == FrameType.TENSOR:
                        self.deliver(frame.seq, frame.payload)
                    elif frame.type == FrameType.BYE:
                        return
            except (ProtocolError, OSError):
                return  # that upstream is gone; the orchestrator wires a new one

    def close(self) -> None:
        """Stop accepting."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()


class ResilientClient:
    """Send frames to whichever board is first now; resend what a failure swallowed."""

    def __init__(self, input_spec: WireSpec, output_spec: WireSpec, first_hop: Callable[[], Address | None],
                 result_host: str = "127.0.0.1", result_port: int = 0, deadline_s: float = 3.0,
                 window: int = 8, rewired: Callable[[], int] | None = None, key: bytes | None = None,
                 last_stage: Callable[[], str | None] | None = None) -> None:
        """`first_hop()` answers where the pipeline starts now (None while it is being re-wired);
        `rewired()`, if given, counts the orchestrator's re-wirings: a change resends what was in flight.
        `key`: the deployment's link key; `last_stage()`: the node the result port accepts now."""
        self.rewired = rewired or (lambda: 0)
        self.input_spec, self.output_spec = input_spec, output_spec
        self.first_hop, self.deadline_s, self.window = first_hop, deadline_s, window
        self.key = key
        self._wire = itertools.count(random_seq_base())
        self._lock = threading.Condition()
        self._wire_to_frame: dict[int, int] = {}
        self._results: dict[int, bytes] = {}
        self.resent = 0
        # per frame of the last infer_many: first transmission and result (perf_counter), for benchmarks
        self.sent_at: dict[int, float] = {}
        self.arrived_at: dict[int, float] = {}
        accept = None if last_stage is None else (lambda node: node == last_stage())
        self.port = ResultPort(output_spec, self._on_result, result_host, result_port, key, accept)
        self._sender: TensorSender | None = None
        self._sender_hop: Address | None = None
        self._connections = 0  # first-hop connections made after the first: each means the chain was re-wired
        self._connected_once = False

    @property
    def result_address(self) -> Address:
        """Where the last stage must send."""
        return self.port.address

    @property
    def delivered(self) -> int:
        """Results received so far in the current infer_many."""
        with self._lock:
            return len(self._results)

    def _on_result(self, wire_seq: int, payload: bytes) -> None:
        with self._lock:
            frame = self._wire_to_frame.pop(wire_seq, None)
            if frame is not None and frame not in self._results:
                self._results[frame] = payload
                self.arrived_at[frame] = time.perf_counter()
                self._lock.notify_all()

    def _send(self, frame: int, payload: bytes) -> bool:
        """One transmission of `frame` to the current first hop; False if there is none or it failed."""
        hop = self.first_hop()
        if hop is None:
            return False
        try:
            if self._sender is None or self._sender_hop != hop:
                self._drop_sender()
                self._sender, self._sender_hop = TensorSender(hop, self.input_spec, timeout=5.0, key=self.key), hop
                self._connections += self._connected_once  # the very first connection is not a re-wiring
                self._connected_once = True
            wire = next(self._wire)
            with self._lock:
                self._wire_to_frame[wire] = frame
            self._sender.send_packed(payload, wire)
            return True
        except (OSError, ProtocolError, ConnectionClosed):
            self._drop_sender()
            return False

    def _drop_sender(self) -> None:
        if self._sender is not None:
            with contextlib.suppress(OSError):
                self._sender.close()
        self._sender, self._sender_hop = None, None

    def infer_many(self, tensors: Iterable[np.ndarray], timeout_s: float = 120.0) -> list[np.ndarray]:
        """Every tensor's result, in order, resending frames whose results do not arrive in time."""
        payloads = [encode_tensor(t, self.input_spec) for t in tensors]
        sent_at: dict[int, float] = {}
        next_frame, done_before = 0, time.monotonic() + timeout_s
        generation_seen = (self._connections, self.rewired())
        with self._lock:
            self._results.clear()
            self.sent_at, self.arrived_at = {}, {}
        while True:
            with self._lock:
                pending = [f for f in sent_at if f not in self._results]
                if len(self._results) == len(payloads):
                    break
            now = time.monotonic()
            generation = (self._connections, self.rewired())
            if generation != generation_seen:  # the chain was re-wired or the first stage restarted
                generation_seen = generation
                for frame in pending:
                    if sent_at[frame] < now - 0.001:
                        sent_at[frame] = -np.inf
            if now > done_before:
                raise ProtocolError(f"pipeline gave {len(self._results)} of {len(payloads)} results in {timeout_s} s")
            for frame in pending:  # lost in a failed board, or sent to a hop that is gone
                if now - sent_at[frame] > self.deadline_s and self._send(frame, payloads[frame]):
                    sent_at[frame] = now
                    self.resent += 1
            while next_frame < len(payloads) and len(pending) < self.window:
                if not self._send(next_frame, payloads[next_frame]):
                    break
                sent_at[next_frame] = time.monotonic()
                self.sent_at[next_frame] = time.perf_counter()
                pending.append(next_frame)
                next_frame += 1
            with self._lock:
                self._lock.wait(timeout=0.05)
        with self._lock:
            return [decode_tensor(self._results[f], self.output_spec) for f in range(len(payloads))]

    def close(self) -> None:
        """Close the sender and the result port."""
        self._drop_sender()
        self.port.close()

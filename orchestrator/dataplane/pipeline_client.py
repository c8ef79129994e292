"""A client that keeps a pipeline's frames flowing while boards fail and the orchestrator re-wires.

Frames are numbered by the client; each transmission gets a fresh wire sequence number (strictly
increasing, as docs/protocol.md requires per connection), so a frame lost inside a dead board is
simply sent again under a new number when its deadline passes, or at once when the orchestrator
re-wires the chain or the client has to connect to the first stage anew. A replicated first stage
gets the frames round robin (a replica that fails is skipped); results of replicated stages arrive
interleaved and are put back in frame order here (docs/protocol.md#fan-out-and-merge). The
result port accepts a new upstream whenever the last stage moves to another board, and only the
board that is the last stage now, authenticated with the deployment's link key
(orchestrator/dataplane/link_auth.py). Wire numbers start from a random base. Results are delivered once per
frame, in frame order.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence

import numpy as np

from orchestrator.dataplane.client import Address, ResultPort, TensorSender, random_seq_base
from orchestrator.dataplane.protocol import (
    ConnectionClosed,
    ProtocolError,
    WireSpec,
    decode_tensor,
    encode_tensor,
)


def _is_one_of(node: str, allowed: str | Collection[str] | None) -> bool:
    return allowed is not None and (node == allowed if isinstance(allowed, str) else node in allowed)


class ResilientClient:
    """Send frames to whichever board is first now; resend what a failure swallowed."""

    def __init__(self, input_spec: WireSpec, output_spec: WireSpec,
                 first_hop: Callable[[], Address | Sequence[Address] | None],
                 result_host: str = "127.0.0.1", result_port: int = 0, deadline_s: float = 3.0,
                 window: int = 8, rewired: Callable[[], int] | None = None, key: bytes | None = None,
                 last_stage: Callable[[], str | Collection[str] | None] | None = None) -> None:
        """`first_hop()` answers where the pipeline starts now: an address, the replicas' addresses
        of a replicated first stage (frames go round robin), or None while it is being re-wired;
        `rewired()`, if given, counts the orchestrator's re-wirings: a change resends what was in flight.
        `key`: the deployment's link key; `last_stage()`: the node (or the replicas' nodes) the result
        port accepts now."""
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
        accept = None if last_stage is None else (lambda node: _is_one_of(node, last_stage()))
        self.port = ResultPort(output_spec, self._on_result, result_host, result_port, key, accept)
        self._senders: dict[Address, TensorSender] = {}  # one per first-stage replica
        self._next_hop = 0  # round robin over the first stage's replicas
        self._down_until: dict[Address, float] = {}  # a replica that failed is skipped until then
        self._known_hops: set[Address] = set()
        self._dropped = False  # a first-hop connection failed or its hop went away
        self._connections = 0  # reconnections to a first hop: each means the chain was re-wired

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

    def _hops(self) -> list[Address]:
        """The first stage's addresses now: one board, or the replicas of a replicated first stage."""
        hop = self.first_hop()
        if hop is None:
            return []
        return [hop] if isinstance(hop[0], str) else list(hop)  # type: ignore[list-item]

    def _send(self, frame: int, payload: bytes) -> bool:
        """One transmission of `frame` to a first hop (round robin over the replicas, skipping dead
        ones); False if there is none or every one failed."""
        hops = self._hops()
        for gone in [h for h in self._senders if h not in hops]:
            self._drop_sender(gone)
        now = time.monotonic()
        for k in range(len(hops)):
            hop = hops[(self._next_hop + k) % len(hops)]
            if self._down_until.get(hop, 0.0) > now:
                continue
            try:
                sender = self._senders.get(hop)
                if sender is None:
                    sender = self._senders[hop] = TensorSender(hop, self.input_spec, timeout=5.0, key=self.key)
                    # after a lost or replaced first hop, a new connection means the chain was re-wired
                    self._connections += hop in self._known_hops or self._dropped
                    self._known_hops.add(hop)
                wire = next(self._wire)
                with self._lock:
                    self._wire_to_frame[wire] = frame
                sender.send_packed(payload, wire)
                self._next_hop = (self._next_hop + k + 1) % len(hops)
                return True
            except (OSError, ProtocolError, ConnectionClosed):
                self._drop_sender(hop)
                if len(hops) > 1:
                    self._down_until[hop] = now + 0.5  # a dead replica: the others carry the stream meanwhile
        return False

    def _drop_sender(self, hop: Address | None = None) -> None:
        """Close the connection to `hop` (every one if None)."""
        for address in list(self._senders) if hop is None else [hop]:
            sender = self._senders.pop(address, None)
            if sender is not None and hop is not None:
                self._dropped = True
            if sender is not None:
                with contextlib.suppress(OSError):
                    sender.close()

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
            with self._lock:  # a result that arrived while sending must not cost a whole wait
                if len(self._results) < len(payloads):
                    self._lock.wait(timeout=0.05)
        with self._lock:
            return [decode_tensor(self._results[f], self.output_spec) for f in range(len(payloads))]

    def close(self) -> None:
        """Close the sender and the result port."""
        self._drop_sender()
        self.port.close()

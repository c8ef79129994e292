"""What the live dashboard shows (docs/dashboard.md): the daemon's view of its fleet, sampled once a second.

Everything comes from what the orchestrator already knows: the fleet file, the agents' status and
heartbeats and the servers' stats lines over MQTT (orchestrator/fleet_link.py), its assignment of
stages to boards, and its own log. A sample is a plain JSON-able dict; the page
(orchestrator/dashboard_page.py) polls it from `GET /api/state` (orchestrator/web.py).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from orchestrator.daemon import Orchestrator

Log = Callable[[str], None]
TROUBLE = ("failed", "DEGRADED", "killing", "refused", "lost", "error", "gave up")
STALE_S = 3.0  # a board whose stats stopped this long ago shows 0 fps (it sends nothing now)


class RecentLog:
    """A log callable that passes every line on and keeps the last lines reporting trouble."""

    def __init__(self, log: Log, keep: int = 50) -> None:
        """`log`: where lines go as before (the terminal)."""
        self.log = log
        self.errors: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)

    def __call__(self, message: str) -> None:
        """Log one line; keep it if it reports trouble."""
        self.log(message)
        if any(word in message for word in TROUBLE):
            self.errors.append({"t": time.time(), "source": "orchestrator", "text": message})


class _Rate:
    """Frames out per second of one board from its stats lines (which arrive at their own pace)."""

    def __init__(self) -> None:
        self.uptime, self.out, self.fps, self.changed = 0.0, 0, 0.0, 0.0

    def update(self, line: dict[str, Any], now: float) -> float:
        uptime, out = float(line.get("uptime_s", 0.0)), int(line.get("frames", {}).get("out", 0))
        if uptime > self.uptime:
            if uptime - self.uptime < 30 and out >= self.out:  # else a restarted server: a new baseline
                self.fps = (out - self.out) / (uptime - self.uptime)
            self.uptime, self.out, self.changed = uptime, out, now
        elif uptime < self.uptime:  # a new server on this board
            self.uptime, self.out, self.fps, self.changed = uptime, out, 0.0, now
        return self.fps if now - self.changed <= STALE_S else 0.0


class DashboardState:
    """Samples an orchestrator into the dashboard's JSON; `run` in a thread, `snapshot` from any thread."""

    def __init__(self, orch: Orchestrator, recent: RecentLog | None = None,
                 extra: Callable[[], dict[str, Any]] | None = None, history: int = 180) -> None:
        """`extra()`: more sections to show (the ingress's counters); `history`: samples of fps kept."""
        self.orch, self.recent, self.extra = orch, recent, extra
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=history)
        self.failovers: collections.deque[dict[str, Any]] = collections.deque(maxlen=50)
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=50)
        self._rates: dict[str, _Rate] = {}
        self._assignment: dict[int, str] = {}
        self._last_event: dict[str, int] = {}  # per board: id() of the last event shown
        self._lock = threading.Lock()
        self._snapshot: dict[str, Any] = {"seq": 0, "state": "starting"}
        self.seq = 0

    def run(self, stop: threading.Event, period_s: float = 1.0) -> None:
        """Sample every `period_s` until `stop` is set; a failing sample is skipped, never fatal."""
        while not stop.is_set():
            with contextlib.suppress(RuntimeError):  # a dict the orchestrator's thread resized meanwhile
                self.sample()
            stop.wait(period_s)

    def snapshot(self) -> dict[str, Any]:
        """The latest sample."""
        with self._lock:
            return self._snapshot

    def sample(self) -> dict[str, Any]:
        """Take one sample now."""
        orch, now, mono = self.orch, time.time(), time.monotonic()
        assignment = dict(orch.assignment)
        self._note_failovers(assignment, now)
        stages = [self._stage(key, board, mono) for key, board in sorted(assignment.items())]
        slowest = max(stages, key=lambda s: s["compute_ms"] / s["replicas"], default=None)
        bottleneck = slowest["stage"] if slowest and slowest["compute_ms"] > 0 else None
        self.history.append({"t": now, "fps": {s["stage"]: round(s["fps"], 2) for s in stages}})
        self.seq += 1
        snap = {"seq": self.seq, "t": now, "state": orch.state, "bundle": orch.bundle, "chain": orch.fleet.chain,
                "generation": orch.generation, "first_hop": _address(orch.first_hop()),
                "boards": self._boards(assignment, mono), "stages": stages, "bottleneck": bottleneck,
                "history": list(self.history), "failovers": list(self.failovers), "errors": self._errors(),
                **(self.extra() if self.extra else {})}
        with self._lock:
            self._snapshot = snap
        return snap

    def _stage(self, key: int, board: str, mono: float) -> dict[str, Any]:
        line = self.orch.link.board(board).stats or {}
        fps = self._rates.setdefault(board, _Rate()).update(line, mono) if line else 0.0
        means, queues = line.get("stage_mean_us", {}), line.get("queues", {})
        return {"stage": self.orch.label(key), "board": board, "replicas": self.orch.replicas(key),
                "fps": fps, "compute_ms": float(means.get("compute", 0.0)) / 1000,
                "send_ms": float(means.get("send", 0.0)) / 1000, "wait_ms": float(means.get("recv_wait", 0.0)) / 1000,
                "queue_in": int(queues.get("in", 0)), "queue_in_capacity": int(queues.get("in_capacity", 0)),
                "queue_out": int(queues.get("out", 0)), "queue_out_capacity": int(queues.get("out_capacity", 0)),
                "frames_out": int(line.get("frames", {}).get("out", 0)),
                "errors": sum(int(v) for v in line.get("errors", {}).values())}

    def _boards(self, assignment: dict[int, str], mono: float) -> list[dict[str, Any]]:
        runs = {board: self.orch.label(key) for key, board in assignment.items()}
        rows = []
        for entry in self.orch.fleet.boards:
            seen = self.orch.link.board(entry.name)
            status = seen.status
            alive = seen.alive(mono, self.orch.cfg.heartbeat_timeout_s)
            rows.append({"name": entry.name, "type": entry.type, "address": f"{entry.address}:{entry.data_port}",
                         "alive": alive, "state": status.get("state", "unknown") if alive else "lost",
                         "stage": runs.get(entry.name), "error": status.get("error"),
                         "heard_s": round(mono - seen.last_seen, 1) if seen.last_seen else None})
            self._note_events(entry.name, seen.events)
        return rows

    def _note_failovers(self, assignment: dict[int, str], now: float) -> None:
        for key, board in assignment.items():
            before = self._assignment.get(key)
            if before is not None and before != board:
                self.failovers.append({"t": now, "stage": self.orch.label(key), "from": before, "to": board})
        self._assignment = assignment

    def _note_events(self, board: str, events: list[dict[str, Any]]) -> None:
        """Server exits and restarts the agents reported (each once)."""
        events = list(events)  # the link keeps the last 50: find the last one shown by identity
        ids = [id(e) for e in events]
        last = self._last_event.get(board)
        for event in events[ids.index(last) + 1:] if last in ids else events:
            if event.get("event") != "server-started":
                self.events.append({"t": time.time(), "source": board, "text": str(event.get("event"))[:200]})
        if events:
            self._last_event[board] = ids[-1]

    def _errors(self) -> list[dict[str, Any]]:
        found = list(self.recent.errors) if self.recent else []
        found += list(self.events)
        found += [{"t": None, "source": "fleet link", "text": why[:200]} for why in list(self.orch.link.refused)[-5:]]
        return sorted(found, key=lambda e: e["t"] or 0.0, reverse=True)[:20]


def _address(hop: Any) -> str | None:
    if hop is None:
        return None
    hops = [hop] if isinstance(hop[0], str) else hop
    return ",".join(f"{h}:{p}" for h, p in hops)

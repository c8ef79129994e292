"""What the live dashboard shows (docs/dashboard.md): the daemon's view of its fleet, sampled once a second.

Everything comes from what the orchestrator already knows: the fleet file, the agents' status and
heartbeats and the servers' stats lines over MQTT (orchestrator/control/fleet_link.py), its assignment of
stages to boards, and its own log. A sample is a plain JSON-able dict; the page
(orchestrator/web/dashboard_page.py) polls it from `GET /api/state` (orchestrator/web/server.py).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from core.messages import Event
from orchestrator.control.daemon import Orchestrator

Log = Callable[[str], None]
log = logging.getLogger("orchestrator.web.dashboard")
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
    """One board's frames out per second and mean times per frame, from its stats lines (which arrive
    at their own pace): differences of the running totals, so an interval without frames keeps the
    last means instead of showing 0 (the servers' own `stage_mean_us` covers one stats interval)."""

    MEANS = (("compute_ms", "compute", "computed"), ("wait_ms", "recv_wait", "in"), ("send_ms", "send", "out"))

    def __init__(self) -> None:
        self.uptime, self.changed, self.fps = 0.0, 0.0, 0.0
        self.frames: dict[str, int] = {}
        self.totals: dict[str, float] = {}
        self.means = {name: 0.0 for name, _, _ in self.MEANS}

    def update(self, line: dict[str, Any], now: float) -> tuple[float, dict[str, float]]:
        uptime = float(line.get("uptime_s", 0.0))
        frames = {k: int(v) for k, v in line.get("frames", {}).items() if isinstance(v, int | float)}
        totals = {k: float(v) for k, v in line.get("stage_total_ms", {}).items() if isinstance(v, int | float)}
        if uptime > self.uptime and frames.get("out", 0) >= self.frames.get("out", 0) and self.frames:
            self.fps = (frames.get("out", 0) - self.frames.get("out", 0)) / (uptime - self.uptime)
            for name, total, count in self.MEANS:
                done = frames.get(count, 0) - self.frames.get(count, 0)
                if done > 0:
                    self.means[name] = (totals.get(total, 0.0) - self.totals.get(total, 0.0)) / done
        elif uptime < self.uptime:  # a new server on this board: a new baseline
            self.fps, self.means = 0.0, {name: 0.0 for name, _, _ in self.MEANS}
        if uptime != self.uptime:
            self.uptime, self.frames, self.totals, self.changed = uptime, frames, totals, now
        return (self.fps if now - self.changed <= STALE_S else 0.0), self.means


class DashboardState:
    """Samples an orchestrator into the dashboard's JSON; `run` in a thread, `snapshot` from any thread."""

    def __init__(self, orch: Orchestrator, recent: RecentLog | None = None,
                 extra: Callable[[], dict[str, Any]] | None = None, history: int = 180) -> None:
        """`orch`: the daemon's orchestrator, or what reads like one (status_web.BrokerView); `extra()`:
        more sections to show (the ingress's counters); `history`: samples of fps kept."""
        self.orch, self.recent, self.extra = orch, recent, extra
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=history)
        self.failovers: collections.deque[dict[str, Any]] = collections.deque(maxlen=50)
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=50)
        self._rates: dict[str, _Rate] = {}
        self._assignment: dict[int, str] = {}
        self._alive: dict[str, bool] = {}
        self._last_event: dict[str, int] = {}  # per board: id() of the last event shown
        self._lock = threading.Lock()
        self._snapshot: dict[str, Any] = {"seq": 0, "state": "starting"}
        self.seq = 0

    def run(self, stop: threading.Event, period_s: float = 1.0) -> None:
        """Sample every `period_s` until `stop` is set; a failing sample is skipped, never fatal."""
        while not stop.is_set():
            try:
                self.sample()
            except RuntimeError:  # a dict the orchestrator's thread resized meanwhile: the next sample
                pass
            except Exception:  # a bug must not freeze the dashboard for good
                log.exception("dashboard sample failed")
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
        fps, means = self._rates.setdefault(board, _Rate()).update(line, mono) if line else (0.0, {})
        queues = line.get("queues", {})
        return {"stage": self.orch.label(key), "board": board, "replicas": self.orch.replicas(key),
                "fps": fps, "compute_ms": means.get("compute_ms", 0.0), "send_ms": means.get("send_ms", 0.0),
                "wait_ms": means.get("wait_ms", 0.0),
                "queue_in": int(queues.get("in", 0)), "queue_in_capacity": int(queues.get("in_capacity", 0)),
                "queue_out": int(queues.get("out", 0)), "queue_out_capacity": int(queues.get("out_capacity", 0)),
                "frames_out": int(line.get("frames", {}).get("out", 0)),
                "errors": sum(int(v) for v in line.get("errors", {}).values())}

    def _boards(self, assignment: dict[int, str], mono: float) -> list[dict[str, Any]]:
        runs = {board: self.orch.label(key) for key, board in assignment.items()}
        rows = []
        for entry in self.orch.fleet.boards:
            seen = self.orch.link.board(entry.name)
            status = seen.last_status
            alive = seen.alive(mono, self.orch.cfg.heartbeat_timeout_s)
            if not alive and self._alive.get(entry.name):
                self.events.append({"t": time.time(), "source": entry.name,
                                    "text": f"{entry.name} lost (status {(status and status.state) or '?'}, "
                                            f"heard {mono - seen.last_seen:.1f} s ago)"})
            self._alive[entry.name] = alive
            rows.append({"name": entry.name, "type": entry.type, "address": f"{entry.address}:{entry.data_port}",
                         "alive": alive, "state": (status and status.state) or "unknown" if alive else "lost",
                         "stage": runs.get(entry.name), "error": status and status.error,
                         "heard_s": round(mono - seen.last_seen, 1) if seen.last_seen else None})
            self._note_events(entry.name, seen.events)
        return rows

    def _note_failovers(self, assignment: dict[int, str], now: float) -> None:
        for key, board in assignment.items():
            before = self._assignment.get(key)
            if before is not None and before != board:
                self.failovers.append({"t": now, "stage": self.orch.label(key), "from": before, "to": board})
                self.events.append({"t": now, "source": "orchestrator",
                                    "text": f"stage {self.orch.label(key)} moved from {before} to {board}"})
        self._assignment = assignment

    def _note_events(self, board: str, events: list[Event]) -> None:
        """Server exits and restarts the agents reported (each once)."""
        events = list(events)  # the link keeps the last 50: find the last one shown by identity
        ids = [id(e) for e in events]
        last = self._last_event.get(board)
        for event in events[ids.index(last) + 1:] if last in ids else events:
            if event.event != "server-started":
                self.events.append({"t": time.time(), "source": board, "text": event.event[:200]})
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

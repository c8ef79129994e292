"""Pipeline health from the boards' stats: per-stage throughput, compute time, queues, the bottleneck."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StageHealth:
    """One stage's figures between two stats lines of its board."""

    partition: int | str  # a partition index, or "K.R" for replica R of a replicated partition K
    board: str
    fps: float  # frames sent per second since the previous sample
    compute_us: float  # mean compute time per frame
    queue_in: int
    queue_out: int
    errors: int
    replicas: int = 1  # boards sharing this stage's partition: each computes 1/replicas of the frames


class HealthTracker:
    """Keeps the previous stats line per board to turn counters into rates."""

    def __init__(self) -> None:
        """No samples yet."""
        self._last: dict[str, tuple[float, int]] = {}

    def sample(self, assignment: dict[Any, str], stats: dict[str, dict[str, Any]],
               replicas: dict[Any, int] | None = None) -> list[StageHealth]:
        """One row per assigned stage that has reported stats; `replicas`: per stage, how many boards
        run its partition (1 if not given)."""
        rows = []
        for partition, board in sorted(assignment.items()):
            line = stats.get(board) or {}
            if not line:
                continue
            uptime, out = float(line.get("uptime_s", 0.0)), int(line.get("frames", {}).get("out", 0))
            before = self._last.get(board)
            fps = (out - before[1]) / (uptime - before[0]) if before and uptime > before[0] else 0.0
            self._last[board] = (uptime, out)
            queues = line.get("queues", {})
            compute = float(line.get("stage_mean_us", {}).get("compute", 0.0))
            rows.append(StageHealth(partition, board, max(fps, 0.0), compute, int(queues.get("in", 0)),
                                    int(queues.get("out", 0)), sum(int(v) for v in line.get("errors", {}).values()),
                                    (replicas or {}).get(partition, 1)))
        return rows


def bottleneck(rows: list[StageHealth]) -> StageHealth | None:
    """The stage with the longest compute per frame of its partition (a replica's time over its
    partition's replicas: they share the frames); it bounds a pipelined chain. None before any frame."""
    slowest = max(rows, key=lambda r: r.compute_us / r.replicas, default=None)
    return slowest if slowest is not None and slowest.compute_us > 0 else None


def format_health(state: str, rows: list[StageHealth]) -> str:
    """A one-line-per-stage report."""
    slowest = bottleneck(rows)
    lines = [f"pipeline {state}" + (f"; bottleneck: partition {slowest.partition} on {slowest.board} "
                                    f"({slowest.compute_us / 1000:.2f} ms compute per frame)" if slowest else "")]
    for r in rows:
        compute_ms = r.compute_us / 1000
        lines.append(f"  partition {r.partition} on {r.board:<16} {r.fps:8.1f} fps  compute {compute_ms:7.2f} ms"
                     f"  queues in {r.queue_in} out {r.queue_out}  errors {r.errors}")
    return "\n".join(lines)

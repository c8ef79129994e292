"""Pipeline health from stats lines: rates from counter deltas, the bottleneck stage."""

from __future__ import annotations

from orchestrator.control.health import HealthTracker, bottleneck, format_health


def stats(uptime: float, out: int, compute_us: float, queue_in: int = 0) -> dict:
    """A stats line as finnsplit-server prints it (docs/protocol.md)."""
    return {"event": "stats", "uptime_s": uptime, "frames": {"in": out, "computed": out, "out": out},
            "errors": {"bad_frame": 0, "send": 1}, "queues": {"in": queue_in, "out": 0},
            "stage_mean_us": {"compute": compute_us}}


def test_rates_come_from_counter_deltas_and_the_slowest_compute_is_the_bottleneck() -> None:
    tracker = HealthTracker()
    assignment = {0: "a", 1: "b"}
    first = tracker.sample(assignment, {"a": stats(1.0, 10, 2000), "b": stats(1.0, 8, 5000, queue_in=3)})
    assert [r.fps for r in first] == [0.0, 0.0]  # no previous sample yet
    rows = tracker.sample(assignment, {"a": stats(3.0, 410, 2000), "b": stats(3.0, 408, 5000, queue_in=3)})
    assert [round(r.fps) for r in rows] == [200, 200]
    assert bottleneck(rows).board == "b"
    text = format_health("running", rows)
    assert "bottleneck: partition 1 on b (5.00 ms compute per frame)" in text
    assert "errors 1" in text


def test_boards_without_stats_are_left_out() -> None:
    assert HealthTracker().sample({0: "a"}, {"a": {}}) == []
    assert bottleneck([]) is None


def test_a_replicated_partition_shares_its_frames_so_its_replicas_are_not_the_bottleneck() -> None:
    from orchestrator.control.health import StageHealth

    rows = [StageHealth("0", "a", 100.0, 3000.0, 0, 0, 0), StageHealth("1.0", "b", 50.0, 5000.0, 0, 0, 0, replicas=2),
            StageHealth("1.1", "c", 50.0, 5000.0, 0, 0, 0, replicas=2)]
    assert bottleneck(rows).board == "a"

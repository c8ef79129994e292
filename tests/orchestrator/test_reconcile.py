"""The orchestrator's planner on plain data: assignments, failover, re-wiring, degraded stages."""

from __future__ import annotations

import dataclasses

from orchestrator.control.reconcile import (
    BoardView,
    Degraded,
    Deploy,
    Prestage,
    Run,
    StagePlan,
    Stop,
    Target,
    plan_steps,
)

TARGET = Target("b1", (StagePlan(0, "zedboard"), StagePlan(1, "zedboard"), StagePlan(2, "pynq-z2")), "10.0.0.1:9000")


def fleet(**changes: dict) -> dict[str, BoardView]:
    """Four zedboards (one spare) and one pynq-z2, alive and idle, with `changes` per board."""
    boards = {
        name: BoardView(name, kind, f"10.0.0.{10 + i}:7000", alive=True, state="idle")
        for i, (name, kind) in enumerate([("z0", "zedboard"), ("z1", "zedboard"), ("z2", "zedboard"),
                                          ("p0", "pynq-z2")])
    }
    for name, fields in changes.items():
        boards[name] = dataclasses.replace(boards[name], **fields)
    return boards


def running(partition: int, next_hop: str) -> dict:
    """Fields of a board running `partition` of b1 with its files deployed."""
    return {"state": "running", "bundle": "b1", "partition": partition, "next_hop": next_hop,
            "deployed": frozenset({("b1", partition)})}


def test_fresh_fleet_deploys_then_starts_downstream_first() -> None:
    decision = plan_steps(TARGET, fleet(), {})
    assert decision.assignment == {0: "z0", 1: "z1", 2: "p0"}
    assert not decision.settled
    assert decision.steps == [
        Deploy("z0", "b1", 0), Deploy("z1", "b1", 1), Deploy("p0", "b1", 2),
        Run("p0", "b1", 2, "10.0.0.1:9000"), Run("z1", "b1", 1, "10.0.0.13:7000"), Run("z0", "b1", 0, "10.0.0.11:7000"),
    ]


def test_steady_state_only_prepares_the_spare() -> None:
    boards = fleet(z0=running(0, "10.0.0.11:7000"), z1=running(1, "10.0.0.13:7000"), p0=running(2, "10.0.0.1:9000"))
    decision = plan_steps(TARGET, boards, {0: "z0", 1: "z1", 2: "p0"})
    assert decision.settled
    assert decision.steps == [Prestage("z2", "b1", 0), Prestage("z2", "b1", 1)]  # the zedboard stages only
    boards["z2"] = dataclasses.replace(boards["z2"], deployed=frozenset({("b1", 0), ("b1", 1)}))
    assert plan_steps(TARGET, boards, {0: "z0", 1: "z1", 2: "p0"}).steps == []


def test_lost_board_fails_over_to_a_spare_and_rewires_its_upstream() -> None:
    lost = {**running(1, "10.0.0.13:7000"), "alive": False, "state": "lost"}
    boards = fleet(z0=running(0, "10.0.0.11:7000"), z1=lost, p0=running(2, "10.0.0.1:9000"))
    decision = plan_steps(TARGET, boards, {0: "z0", 1: "z1", 2: "p0"})
    assert decision.assignment == {0: "z0", 1: "z2", 2: "p0"}
    assert decision.steps == [Deploy("z2", "b1", 1), Run("z2", "b1", 1, "10.0.0.13:7000"),
                              Run("z0", "b1", 0, "10.0.0.12:7000")]


def test_failover_prefers_a_spare_that_already_holds_the_files() -> None:
    boards = fleet(z1={"alive": False, "state": "lost"}, z2={"deployed": frozenset({("b1", 1)})},
                   z0={"deployed": frozenset({("b1", 0)})})
    boards["z3"] = BoardView("z3", "zedboard", "10.0.0.20:7000", alive=True, state="idle")
    decision = plan_steps(TARGET, boards, {0: "z0", 1: "z1"})
    assert decision.assignment[1] == "z2"
    assert Deploy("z2", "b1", 1) not in decision.steps


def test_no_live_board_of_a_type_is_degraded_not_a_guess() -> None:
    decision = plan_steps(TARGET, fleet(p0={"alive": False, "state": "lost"}), {})
    assert decision.degraded == [Degraded(2, "pynq-z2", "no free live pynq-z2 (0 alive, all in use)")]
    assert not any(isinstance(s, Run) for s in decision.steps)


def test_a_stage_whose_board_never_reported_waits_and_is_not_degraded() -> None:
    starting = fleet(p0={"alive": False, "state": "lost", "heard": False})
    decision = plan_steps(TARGET, starting, {})
    assert decision.degraded == [Degraded(2, "pynq-z2", "waiting for the agent of a pynq-z2 (1 not heard from yet)",
                                          waiting=True)]
    # once heard from and then lost, the same stage is degraded
    lost = plan_steps(TARGET, fleet(p0={"alive": False, "state": "lost", "heard": True}), {})
    assert [d.waiting for d in lost.degraded] == [False]


def test_a_board_running_what_is_no_longer_needed_is_stopped() -> None:
    boards = fleet(z2=running(1, "10.0.0.13:7000"))
    decision = plan_steps(TARGET, boards, {0: "z0", 1: "z1", 2: "p0"})
    assert Stop("z2") in decision.steps
    assert decision.assignment == {0: "z0", 1: "z1", 2: "p0"}


def test_failed_boards_are_not_assigned() -> None:
    decision = plan_steps(TARGET, fleet(z0={"failed": True}), {})
    assert decision.assignment == {0: "z1", 1: "z2", 2: "p0"}

"""Cutting a dataflow graph's layers into per-board partitions and predicting the pipeline's throughput.

Strategies (docs/cost-model.md#cut-strategies): "greedy" is the reference paper's (fixed folding,
fill boards in order); "balanced" maximizes min over boards of min(clock / slowest layer's cycles,
link rate / packed bytes crossing its cuts), choosing every layer's folding jointly with the cuts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from splitter.boards import Board
from splitter.cost import CostConfig, Folding, folding_from_attrs
from splitter.graph import Layer, TensorSpec
from splitter.partition.search import PlanningProblem
from splitter.partition.types import LayerTooLargeError, Partition, PartitionError, Plan, TooFewBoardsError

STRATEGIES = ("balanced", "greedy")
OBJECTIVES = ("fps", "fps-per-watt")
TARGET_OBJECTIVES = ("boards", "power")  # with a target fps: the fewest boards or the least power meeting it
# Front sizes tried in turn until a plan is provably optimal; None: fronts are never cut (exact, slow).
FRONT_LIMITS: tuple[int | None, ...] = (8, 32)
__all__ = ["OBJECTIVES", "STRATEGIES", "TARGET_OBJECTIVES", "LayerTooLargeError", "Partition", "PartitionError",
           "Plan", "TooFewBoardsError", "plan", "plan_for"]


def plan(
    layers: Sequence[Layer], tensors: Mapping[str, TensorSpec], boards: Sequence[Board],
    strategy: str = "balanced", link_gbps: float | None = None, cfg: CostConfig | None = None,
    greedy_foldings: Sequence[Folding] | None = None, replicate: bool = True,
    front_limit: int | Sequence[int | None] = FRONT_LIMITS, target_fps: float | None = None,
    max_boards: int | None = None, least_power: bool = False, on_probe: Callable[[int, int], None] | None = None,
) -> Plan:
    """Split `layers` over `boards` (in the order given for greedy; in any order for balanced).

    balanced: the Pareto fronts of the search are cut to `front_limit` elements (None: never); a
    sequence is tried in order until the plan reaches its upper bound (Plan.fps_bound), i.e. is
    provably the best one (docs/cost-model.md#cut-strategies). `target_fps`: instead the plan that
    reaches it on the fewest boards (`least_power`: drawing the least predicted power).
    `max_boards`: use at most that many of the boards given. `on_probe(done, of)`: balanced's
    search steps, counted again from 0 for each front limit tried (a progress bar).
    """
    if strategy not in STRATEGIES:
        raise PartitionError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if not layers or not boards:
        raise PartitionError("need at least one layer and one board")
    limits = list(front_limit) if isinstance(front_limit, Sequence) else [front_limit]
    if strategy == "greedy":
        problem = PlanningProblem(layers, tensors, boards, cfg or CostConfig(), link_gbps, limits[0])
        folds = list(greedy_foldings) if greedy_foldings is not None else [folding_from_attrs(x) for x in layers]
        return problem.greedy(folds)
    if target_fps is not None:
        problem = PlanningProblem(layers, tensors, boards, cfg or CostConfig(), link_gbps, limits[-1])
        problem.max_boards = max_boards
        return problem.fewest(target_fps, replicate, least_power)
    best: Plan | None = None
    options = None
    for limit in limits:
        problem = PlanningProblem(layers, tensors, boards, cfg or CostConfig(), link_gbps, limit, options)
        problem.max_boards, problem.on_probe = max_boards, on_probe
        found = problem.balanced(replicate)
        options = problem.shared_options()
        bound = min(found.fps_bound, best.fps_bound) if best else found.fps_bound
        if best is None or found.fps > best.fps * (1 + 1e-12):
            best = found
        best = dataclasses.replace(best, fps_bound=bound)
        if best.gap <= 1e-9:
            break
    assert best is not None
    return best


def plan_for(
    layers: Sequence[Layer], tensors: Mapping[str, TensorSpec], boards: Sequence[Board], objective: str = "fps",
    power_cap_w: float | None = None, **kwargs: object,
) -> Plan:
    """The balanced plan best for `objective` ("fps" or "fps-per-watt") within `power_cap_w` watts.

    "fps": the fastest plan drawing at most the cap (exact: PlanningProblem.fastest_within). "fps-per-watt":
    for every board count k, the fastest plan on k boards is re-planned for the least power at its
    rate; among those within the cap, the one with the most frames per joule wins.
    """
    if objective not in OBJECTIVES:
        raise PartitionError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    if objective == "fps" and power_cap_w is not None:
        return _chain(layers, tensors, boards, kwargs).fastest_within(power_cap_w, bool(kwargs.get("replicate", True)))
    plans = []
    for k in range(1, len(boards) + 1):
        try:
            fastest = plan(layers, tensors, boards, "balanced", max_boards=k, **kwargs)  # type: ignore[arg-type]
            plans.append(plan(layers, tensors, boards, "balanced", max_boards=k, target_fps=fastest.fps,
                              least_power=True, **kwargs))  # type: ignore[arg-type]
        except PartitionError:
            continue
    if not plans:
        return plan(layers, tensors, boards, "balanced", **kwargs)  # type: ignore[arg-type]  # raises the reason
    fitting = [p for p in plans if power_cap_w is None or p.power_w <= power_cap_w + 1e-9]
    if not fitting:
        least = min(plans, key=lambda p: p.power_w)
        raise PartitionError(f"no plan draws at most {power_cap_w:g} W; the least a plan draws is "
                             f"{least.power_w:.2f} W ({least.boards_used} board(s), {least.fps:.1f} fps)")
    if objective == "fps":
        return max(fitting, key=lambda p: (p.fps, -p.power_w))
    return max(fitting, key=lambda p: (p.fps / p.power_w, p.fps))


def _chain(layers: Sequence[Layer], tensors: Mapping[str, TensorSpec], boards: Sequence[Board],
           kwargs: Mapping[str, object]) -> PlanningProblem:
    """The search of `plan`'s keyword arguments, with its loosest front limit."""
    limits = kwargs.get("front_limit", FRONT_LIMITS)
    limit = list(limits)[-1] if isinstance(limits, Sequence) else limits
    return PlanningProblem(layers, tensors, boards, kwargs.get("cfg") or CostConfig(), kwargs.get("link_gbps"), limit)  # type: ignore[arg-type]

"""Cutting a layer chain into per-board partitions and predicting the pipeline's throughput.

Strategies (docs/cost-model.md#cut-strategies): "greedy" is the reference paper's (fixed folding,
fill boards in order); "balanced" maximizes min over boards of min(clock / slowest layer's cycles,
link rate / packed bytes crossing its cuts), choosing every layer's folding jointly with the cuts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from splitter.boards import Board
from splitter.cost import CostConfig, Folding, folding_from_attrs
from splitter.graph import Layer, TensorSpec
from splitter.partition.search import Chain
from splitter.partition.types import LayerTooLargeError, Partition, PartitionError, Plan, TooFewBoardsError

STRATEGIES = ("balanced", "greedy")
# Front sizes tried in turn until a plan is provably optimal; None: fronts are never cut (exact, slow).
FRONT_LIMITS: tuple[int | None, ...] = (8, 32, 128)
__all__ = ["STRATEGIES", "LayerTooLargeError", "Partition", "PartitionError", "Plan", "TooFewBoardsError", "plan"]


def plan(
    layers: Sequence[Layer], tensors: Mapping[str, TensorSpec], boards: Sequence[Board],
    strategy: str = "balanced", link_gbps: float | None = None, cfg: CostConfig | None = None,
    greedy_foldings: Sequence[Folding] | None = None, replicate: bool = True,
    front_limit: int | Sequence[int | None] = FRONT_LIMITS,
) -> Plan:
    """Split `layers` over `boards` (in the order given for greedy; in any order for balanced).

    balanced: the Pareto fronts of the search are cut to `front_limit` elements (None: never); a
    sequence is tried in order until the plan reaches its upper bound (Plan.fps_bound), i.e. is
    provably the best one (docs/cost-model.md#cut-strategies).
    """
    if strategy not in STRATEGIES:
        raise PartitionError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if not layers or not boards:
        raise PartitionError("need at least one layer and one board")
    limits = list(front_limit) if isinstance(front_limit, Sequence) else [front_limit]
    if strategy == "greedy":
        chain = Chain(layers, tensors, boards, cfg or CostConfig(), link_gbps, limits[0])
        folds = list(greedy_foldings) if greedy_foldings is not None else [folding_from_attrs(x) for x in layers]
        return chain.greedy(folds)
    best: Plan | None = None
    options = None
    for limit in limits:
        chain = Chain(layers, tensors, boards, cfg or CostConfig(), link_gbps, limit, options)
        found = chain.balanced(replicate)
        options = chain.shared_options()
        bound = min(found.fps_bound, best.fps_bound) if best else found.fps_bound
        if best is None or found.fps > best.fps * (1 + 1e-12):
            best = found
        best = dataclasses.replace(best, fps_bound=bound)
        if best.gap <= 1e-9:
            break
    assert best is not None
    return best

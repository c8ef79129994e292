"""Cutting a layer chain into per-board partitions and predicting the pipeline's throughput.

Strategies (docs/cost-model.md#cut-strategies): "greedy" is the reference paper's (fixed folding,
fill boards in order); "balanced" maximizes min over boards of min(clock / slowest layer's cycles,
link rate / packed bytes crossing its cuts), choosing every layer's folding jointly with the cuts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from splitter.boards import Board
from splitter.cost import CostConfig, Folding, folding_from_attrs
from splitter.graph import Layer, TensorSpec
from splitter.partition.search import Chain
from splitter.partition.types import LayerTooLargeError, Partition, PartitionError, Plan, TooFewBoardsError

STRATEGIES = ("balanced", "greedy")
__all__ = ["STRATEGIES", "LayerTooLargeError", "Partition", "PartitionError", "Plan", "TooFewBoardsError", "plan"]


def plan(
    layers: Sequence[Layer], tensors: Mapping[str, TensorSpec], boards: Sequence[Board],
    strategy: str = "balanced", link_gbps: float | None = None, cfg: CostConfig | None = None,
    greedy_foldings: Sequence[Folding] | None = None, replicate: bool = True, front_limit: int = 24,
) -> Plan:
    """Split `layers` over `boards` (in the order given for greedy; in any order for balanced)."""
    if strategy not in STRATEGIES:
        raise PartitionError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if not layers or not boards:
        raise PartitionError("need at least one layer and one board")
    chain = Chain(layers, tensors, boards, cfg or CostConfig(), link_gbps, front_limit)
    if strategy == "greedy":
        folds = list(greedy_foldings) if greedy_foldings is not None else [folding_from_attrs(x) for x in layers]
        return chain.greedy(folds)
    return chain.balanced(replicate)

"""A plan's data: partitions in pipeline order, predicted figures, and the errors planning raises."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.errors import FinnsplitError
from splitter.boards import Board
from splitter.cost import Folding, LayerCost, Resources


class PartitionError(FinnsplitError):
    """The layers cannot be placed on the given boards."""


class LayerTooLargeError(PartitionError):
    """A layer (or a group of layers that cannot be cut apart) fits no board even at its cheapest folding."""

    def __init__(
        self, layer_names: Sequence[str], op_types: Sequence[str], board: str, overflows: list,
        folding: str = "even at its cheapest folding",
    ) -> None:
        what = ", ".join(f"{n} ({t})" for n, t in zip(layer_names, op_types, strict=True))
        super().__init__(
            f"layer {what} fits no board {folding}: on {board}, "
            + "; ".join(str(o) for o in overflows)
            + " (needs include the shell; limits are the usable fractions of the board file)"
        )
        self.layer_names, self.board, self.overflows = tuple(layer_names), board, overflows


class TooFewBoardsError(PartitionError):
    """More boards are needed than were given."""

    def __init__(self, strategy: str, given: int, needed: Mapping[str, int]) -> None:
        options = " or ".join(f"{n} x {name}" for name, n in needed.items())
        super().__init__(f"the {strategy} strategy needs at least {options}; {given} board(s) given")
        self.strategy, self.given, self.needed = strategy, given, dict(needed)


@dataclass(frozen=True)
class Partition:
    """One stage of the pipeline: a layer range on one board type, run on `replicas` boards."""

    index: int
    start: int  # first layer index
    stop: int  # one past the last layer index
    board: Board
    replicas: int
    layer_names: tuple[str, ...]
    foldings: tuple[Folding, ...]
    costs: tuple[LayerCost, ...]
    resources: Resources  # one board's total: layers, FIFOs, DWCs and shell
    cycles: int  # slowest layer's cycles per frame
    bottleneck: str  # name of that layer
    compute_fps: float  # replicas * clock / cycles
    bytes_in: int  # packed bytes per frame received
    bytes_out: int  # packed bytes per frame sent
    link_fps: float  # link rate * NICs carrying the traffic (replicas; 1 at the client) / bytes
    fps: float
    power_w: float  # one board

    @property
    def utilization(self) -> dict[str, float]:
        """Fraction of each of the board's resources used (shell included)."""
        return self.resources.fractions(self.board.resources)

    @property
    def within_usable(self) -> bool:
        """True when the partition respects the board's usable fractions."""
        return self.resources.fits(self.board.usable)


@dataclass(frozen=True)
class Plan:
    """A split: partitions in pipeline order and the predicted pipeline throughput."""

    strategy: str
    partitions: tuple[Partition, ...]
    fps: float
    limited_by: str
    unused_boards: tuple[str, ...]
    front_truncated: bool = False  # a Pareto front hit the search's size limit: may be below the optimum
    fps_bound: float = 0.0  # no plan on these boards is faster (balanced; 0: not computed)

    @property
    def gap(self) -> float:
        """How far the plan may be below the best one, as a fraction (0: optimal or unknown)."""
        return max(0.0, self.fps_bound / self.fps - 1.0) if self.fps_bound and self.fps else 0.0

    @property
    def boards_used(self) -> int:
        """Boards the pipeline occupies (replicas included)."""
        return sum(p.replicas for p in self.partitions)

    @property
    def power_w(self) -> float:
        """Predicted power of all used boards."""
        return sum(p.power_w * p.replicas for p in self.partitions)

    def rows(self) -> list[dict[str, object]]:
        """One summary dict per partition (for tables and manifests)."""
        out = []
        for p in self.partitions:
            u = p.utilization
            out.append({
                "partition": p.index, "board": p.board.name, "replicas": p.replicas,
                "layers": f"{p.layer_names[0]}..{p.layer_names[-1]} ({len(p.layer_names)})",
                "lut_pct": 100 * u["lut"], "bram_pct": 100 * u["bram18"], "dsp_pct": 100 * u["dsp"],
                "cycles": p.cycles, "fps": p.fps, "bytes_out": p.bytes_out, "power_w": p.power_w,
            })
        return out

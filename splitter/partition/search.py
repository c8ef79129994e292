"""The cut search: layer groups, per-board folding options, and the two strategies over them.

"balanced" binary-searches the pipeline throughput over every value a bottleneck can set and asks,
per target, for the fewest boards reaching the last layer (docs/cost-model.md#cut-strategies).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from splitter.boards import Board
from splitter.cost import (
    CostConfig,
    Folding,
    Resources,
    extra_iodmas,
    layer_cost,
    output_fifo_cost,
    partition_resources,
)
from splitter.cost.front import Front, Options
from splitter.cost.memory import dwc
from splitter.cost.resources import RESOURCE_NAMES
from splitter.folding import GroupOption, carried, carried_bytes, group_options, groups, in_block, last_reader
from splitter.graph import Layer, TensorSpec
from splitter.partition.types import LayerTooLargeError, Partition, PartitionError, Plan, TooFewBoardsError


@dataclass(frozen=True)
class Segment:
    start: int  # group index
    stop: int
    board: int  # board type index
    replicas: int
    options: tuple[int, ...]  # option id per group


class PlanningProblem:
    """One planning problem: groups of layers, board types, options and link sizes."""

    def __init__(
        self, layers: Sequence[Layer], tensors: Mapping[str, TensorSpec], boards: Sequence[Board],
        cfg: CostConfig, link_gbps: float | None, limit: int | None,
        options: dict[tuple[int, int], list[GroupOption]] | None = None,
    ) -> None:
        self.layers, self.tensors, self.cfg, self.limit = list(layers), tensors, cfg, limit
        self.truncated = False  # a front was cut to `limit`: the plan may be below the optimum
        self.max_boards: int | None = None  # at most this many boards in all (None: every board given)
        self.on_probe: Callable[[int, int], None] | None = None  # balanced: (searches done, of), for a progress bar
        self.boards = list(boards)
        self.types = list({b.name: b for b in boards}.values())
        self.avail = [sum(b.name == t.name for b in boards) for t in self.types]
        self.groups = groups(self.layers)
        cuts = [0] + [stop for _, stop in self.groups]
        # a cut inside a residual block carries several tensors: all of their bytes cross the link
        self.bytes = [carried_bytes(self.layers, tensors, i) for i in cuts]
        # ... and each tensor needs an IODMA of its own on both boards (the shell has one per side)
        self.tensor_count = [len(carried(self.layers, i)) for i in cuts]
        # a segment from group boundary g must end after layer need[g]: no tensor passes a board untouched
        self.need = [last_reader(self.layers, i) for i in cuts]
        self.rates = [_link_rate(t, link_gbps) for t in self.types]
        self._options: dict[tuple[int, int], list[GroupOption]] = options if options is not None else {}
        self._arrays: dict[tuple[int, int], Options] = {}
        self._within: dict[tuple[int, int, float], Options] = {}
        self._dwc: dict[tuple[int, int], float] = {}
        self._ends: dict[tuple[int, int, int, float], tuple[dict, dict]] = {}

    def options(self, g: int, t: int) -> list[GroupOption]:
        """Every coupled folding of group g on board type t."""
        if (g, t) not in self._options:
            start, stop = self.groups[g]
            self._options[(g, t)] = group_options(self.layers[start:stop], self.types[t], self.tensors, self.cfg,
                                                  budgeted=in_block(self.layers, start, stop))
        return self._options[(g, t)]

    def shared_options(self) -> dict[tuple[int, int], list[GroupOption]]:
        """The group options computed so far, for another search of the same problem."""
        return self._options

    def option_arrays(self, g: int, t: int) -> Options:
        """The non-dominated options of group g on board type t, as arrays."""
        if (g, t) not in self._arrays:
            items = [(o.resources, o.in_width, o.out_width, o.cycles) for o in self.options(g, t)]
            self._arrays[(g, t)] = Options.build(items, pruned=True)
        return self._arrays[(g, t)]

    def within(self, g: int, t: int, max_cycles: float) -> Options:
        """The options of group g on type t meeting a cycle budget (cached by which options meet it)."""
        opts = self.option_arrays(g, t)
        key = (g, t, int(np.count_nonzero(opts.cycles <= max_cycles * (1 + 1e-12))))
        if key not in self._within:
            self._within[key] = opts.within(max_cycles)
        return self._within[key]

    def dwc_lut(self, prev: int, width: int) -> float:
        """LUTs of a width converter from `prev` bits (negative: the IODMA, none) to `width`."""
        if (prev, width) not in self._dwc:
            self._dwc[(prev, width)] = 0.0 if prev < 0 else dwc(prev, width, self.cfg.ff_per_lut).lut
        return self._dwc[(prev, width)]

    def tail(self, width: int) -> Resources:
        """What closing a segment after an output stream of `width` bits adds: the output FIFO."""
        return output_fifo_cost(width, self.cfg)

    def opening(self, t: int, pos: int) -> Resources:
        """What a board of type t starting at group boundary `pos` holds before any layer: the shell and an
        IODMA per further tensor crossing into it."""
        return self.types[t].shell + extra_iodmas(self.types[t], inputs=self.tensor_count[pos])

    def closing(self, t: int, end: int) -> Callable[[int], Resources]:
        """`tail` for a segment on type t ending at group boundary `end`: plus an IODMA per further tensor
        leaving it. The same for every element of a front, so it never changes which one dominates."""
        extra = extra_iodmas(self.types[t], outputs=self.tensor_count[end])
        return lambda width: self.tail(width) + extra

    def ends(self, pos: int, t: int, r: int, fps: float) -> dict[int, tuple[int, ...]]:
        """Every group boundary a segment from `pos` on r boards of type t can end at for `fps`, with its options.

        All of them, not only the farthest: a nearer end may carry fewer bytes to the next board.
        """
        return {end: path for end, (path, _) in self.scored_ends(pos, t, r, fps).items()}

    def scored_ends(
        self, pos: int, t: int, r: int, fps: float, by_power: bool = False,
    ) -> dict[int, tuple[tuple[int, ...], float]]:
        """`ends`, each with the predicted power of one of its boards; `by_power`: the options drawing the
        least power at each end instead of the ones using the least of the board (both are found
        from one front and kept, so the two searches share the work)."""
        key = (pos, t, r, fps)
        if key not in self._ends:
            self._ends[key] = self._scored_ends(pos, t, r, fps)
        return self._ends[key][by_power]

    def _scored_ends(self, pos: int, t: int, r: int, fps: float) -> tuple[dict, dict]:
        board, rate = self.types[t], self.rates[t]
        out: tuple[dict[int, tuple[tuple[int, ...], float]], ...] = ({}, {})
        if self.bytes[pos] * fps > self._link_share(pos, r) * rate * (1 + 1e-12):
            return out
        budget = r * board.clock_hz / fps
        cap = np.array(board.usable.as_tuple())
        watts = _watts_per_unit(board)
        front = Front.start(self.opening(t, pos))
        for g in range(pos, len(self.groups)):
            nxt = self.within(g + 1, t, budget).in_w if g + 1 < len(self.groups) else None
            front = front.extend(self.within(g, t, budget), cap, self.dwc_lut, self.cfg.ff_per_lut, self.limit,
                                 self.tail, nxt)
            self.truncated = self.truncated or front.truncated
            if not len(front):
                break
            link_ok = self.bytes[g + 1] * fps <= self._link_share(g + 1, r) * rate * (1 + 1e-12)
            if link_ok and self.reads_all(pos, g + 1):
                tail = self.closing(t, g + 1)
                for by_power in (False, True):
                    k = front.best_closed(cap, tail, watts if by_power else None)
                    if k is not None:
                        out[by_power][g + 1] = (front.paths[k], board.power.ps_w + board.power.pl_static_w
                                                + float(front.closed(k, tail) @ watts))
        return out

    def reach(self, pos: int, t: int, r: int, fps: float) -> tuple[int, tuple[int, ...]]:
        """The farthest end of a segment from `pos` (`pos` itself if none) and its options."""
        ends = self.ends(pos, t, r, fps)
        return max(ends.items()) if ends else (pos, ())

    def reads_all(self, pos: int, end: int) -> bool:
        """True when a segment of groups [pos, end) reads every tensor crossing into it."""
        return self.groups[end - 1][1] > self.need[pos]

    def _link_share(self, boundary: int, replicas: int) -> int:
        """How many NICs carry the frames crossing a group boundary: the client has one."""
        return 1 if boundary in (0, len(self.groups)) else replicas

    def _undominated(self, positions: list[int], replicate: bool) -> list[int]:
        """The reached boundaries worth going on from: `q` is dropped when some `p > q` was reached too
        and carries no more bytes than any boundary between them (the board that took over at one
        of them can start at `p` instead). Without replication every board's link check is the
        same, so the farthest boundary alone is enough."""
        if not replicate:
            return positions[-1:]
        keep = []
        for i, q in enumerate(positions):
            low = self.bytes[q]
            dominated = False
            for p in range(q + 1, positions[-1] + 1):
                low = min(low, self.bytes[p])
                if p in positions[i + 1:] and self.bytes[p] <= low:
                    dominated = True
                    break
            if not dominated:
                keep.append(q)
        return keep

    def relaxed_ends(self, pos: int, t: int, r: int, fps: float) -> dict[int, tuple[int, ...]]:
        """The ends a segment could have by a Lagrangian relaxation: a superset of `ends`.

        For weights w >= 0 over the resources, any segment that fits needs w . (shell + sum over groups of
        its option + width converters + output FIFO) <= w . cap, and so at least w . shell + sum over
        groups of the least w . option of any option meeting the budget (converters left out, the
        cheapest output FIFO). A segment failing this for one of WEIGHTS cannot fit; a plan over
        these ends bounds the best plan from above (PlanningProblem.upper_bound).
        """
        board, rate = self.types[t], self.rates[t]
        out: dict[int, tuple[int, ...]] = {}
        if self.bytes[pos] * fps > self._link_share(pos, r) * rate * (1 + 1e-12):
            return out
        budget = r * board.clock_hz / fps
        cap = np.array(board.usable.as_tuple())
        weights = _weights(cap)  # (W, R)
        limit = weights @ cap + 1e-6
        low = weights @ np.array(self.opening(t, pos).as_tuple())
        for g in range(pos, len(self.groups)):
            opts = self.within(g, t, budget)
            if not len(opts.ids):
                break
            low = low + (opts.res @ weights.T).min(axis=0)
            if np.any(low > limit):
                break
            tail = self.closing(t, g + 1)
            tails = np.array([tail(int(w)).as_tuple() for w in np.unique(opts.out_w)]) @ weights.T
            link_ok = self.bytes[g + 1] * fps <= self._link_share(g + 1, r) * rate * (1 + 1e-12)
            if link_ok and self.reads_all(pos, g + 1) and np.all(low + tails.min(axis=0) <= limit):
                out[g + 1] = ()
        return out

    def feasible(
        self, fps: float, avail: Sequence[int], replicate: bool, relaxed: bool = False,
    ) -> list[Segment] | None:
        """Segments reaching the last layer at `fps` with the boards in `avail`, fewest boards first.

        A dynamic program over (boards of each type used, group boundary reached): every reachable
        boundary is kept, so the answer is exact whenever the fronts are. `relaxed`: over
        relaxed_ends (no options chosen), for the upper bound.
        """
        ends = functools.cache(self.relaxed_ends if relaxed else self.ends)
        # counts -> {boundary reached: back pointer (previous counts, previous boundary, segment)}
        best: dict[tuple[int, ...], dict[int, tuple | None]] = {(0,) * len(avail): {0: None}}
        most = sum(avail) if self.max_boards is None else min(sum(avail), self.max_boards)
        for total in range(most + 1):
            for counts in sorted(c for c in best if sum(c) == total):
                reached = best[counts]
                if len(self.groups) in reached:
                    return _unwind(best, counts, len(self.groups))
                for pos in self._undominated(sorted(reached), replicate):
                    for t, limit in enumerate(avail):
                        for r in range(1, (limit - counts[t] if replicate else min(1, limit - counts[t])) + 1):
                            nxt = tuple(c + r * (i == t) for i, c in enumerate(counts))
                            if sum(nxt) > most:
                                continue
                            for end, path in ends(pos, t, r, fps).items():
                                best.setdefault(nxt, {}).setdefault(end, (counts, pos, Segment(pos, end, t, r, path)))
        return None

    def least_power(self, fps: float, replicate: bool) -> list[Segment] | None:
        """Segments reaching the last layer at `fps` drawing the least predicted power in all."""
        fewest = self.feasible(fps, self.avail, replicate)
        if fewest is None:
            return None
        incumbent = self.build("balanced", [self._folds(s) for s in fewest], fewest).power_w
        found = self._least_power(fps, replicate, incumbent)
        return fewest if found is None else found[0]

    def fastest_within(self, power_cap_w: float, replicate: bool) -> Plan:
        """The fastest plan predicted to draw at most `power_cap_w` watts (PartitionError if none does).

        The least power a plan meeting a rate can draw only grows with the rate, so a binary search
        over every rate a bottleneck can set finds the fastest one within the cap exactly.
        """
        cand = self.candidates(replicate)
        found: dict[int, tuple[list[Segment], float] | None] = {}

        def within(i: int) -> bool:
            if i not in found:
                found[i] = self._least_power(float(cand[i]), replicate, power_cap_w)
            answer = found[i]
            return answer is not None and answer[1] <= power_cap_w + 1e-9

        if not within(0):
            answer = self._least_power(float(cand[0]), replicate)
            if answer is None:
                self.diagnose(float(cand[0]))
            assert answer is not None
            raise PartitionError(f"no plan draws at most {power_cap_w:g} W; the least a plan draws is "
                                 f"{answer[1]:.2f} W ({sum(s.replicas for s in answer[0])} board(s))")
        lo, hi = 0, len(cand) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if within(mid) else (lo, mid - 1)
        answer = found[lo]
        assert answer is not None
        return self.build("balanced", [self._folds(s) for s in answer[0]], answer[0])

    def _least_power(self, fps: float, replicate: bool, bound: float = np.inf) -> tuple[list[Segment], float] | None:
        """Segments reaching the last layer at `fps` drawing the least predicted power in all.

        The dynamic program of `feasible`, over (boards of each type used, boundary reached), keeping
        the least power per state instead of stopping at the fewest boards: a plan on more boards can
        draw less (smaller foldings) only if their static power is repaid, and the search weighs that.
        """
        ends = functools.partial(self.scored_ends, by_power=True)
        static = [b.power.ps_w + b.power.pl_static_w for b in self.types]
        least_static = min(static)
        # (counts, boundary) -> (watts so far, back pointer (previous counts, previous boundary, segment))
        best: dict[tuple[tuple[int, ...], int], tuple[float, tuple | None]] = {((0,) * len(self.avail), 0): (0.0, None)}
        most = sum(self.avail) if self.max_boards is None else min(sum(self.avail), self.max_boards)
        end = len(self.groups)
        for total in range(most + 1):
            for counts, pos in sorted(k for k in best if sum(k[0]) == total and k[1] < end):
                watts = best[(counts, pos)][0]
                if any(k[1] == pos and k[0] != counts and all(a <= b for a, b in zip(k[0], counts, strict=True))
                       and v[0] <= watts for k, v in best.items()):
                    continue  # as far on fewer boards of each type, for no more power
                for t, limit in enumerate(self.avail):
                    for r in range(1, (limit - counts[t] if replicate else min(1, limit - counts[t])) + 1):
                        nxt = tuple(c + r * (i == t) for i, c in enumerate(counts))
                        if sum(nxt) > most or watts + r * static[t] > bound + 1e-9:
                            continue  # every board draws at least its static power
                        for stop, (path, w) in ends(pos, t, r, fps).items():
                            key, value = (nxt, stop), watts + r * w
                            if value + (least_static if stop < end else 0.0) > bound + 1e-9:
                                continue
                            if key not in best or value < best[key][0] - 1e-12:
                                best[key] = (value, (counts, pos, Segment(pos, stop, t, r, path)))
        done = [k for k in best if k[1] == end]
        if not done:
            return None
        key = min(done, key=lambda k: (best[k][0], sum(k[0])))
        watts, out = best[key][0], []
        while best[key][1] is not None:
            counts, pos, seg = best[key][1]
            out.append(seg)
            key = (counts, pos)
        return out[::-1], watts

    def candidates(self, replicate: bool) -> np.ndarray:
        """Every throughput a bottleneck can set: r * clock / option cycles and r * rate / cut bytes."""
        values = []
        for t, board in enumerate(self.types):
            rs = np.arange(1, (self.avail[t] if replicate else 1) + 1)
            cycles = np.unique(np.concatenate([self.option_arrays(g, t).cycles for g in range(len(self.groups))]))
            values.append((board.clock_hz / np.maximum(cycles, 1))[:, None] * rs[None, :])
            values.append((self.rates[t] / np.maximum(np.array(self.bytes), 1))[:, None] * rs[None, :])
        return np.unique(np.concatenate([v.ravel() for v in values]))

    def fewest(self, target_fps: float, replicate: bool, least_power: bool = False) -> Plan:
        """The plan reaching `target_fps` on the fewest boards, or drawing the least power
        (PartitionError naming the fastest if none can)."""
        if least_power:
            segments = self.least_power(target_fps, replicate)
        else:
            segments = self.feasible(target_fps, self.avail, replicate)
        if segments is None:
            fastest = self.balanced(replicate)
            raise PartitionError(f"no plan reaches {target_fps:g} fps on these boards; the fastest reaches "
                                 f"{fastest.fps:.1f} fps ({fastest.limited_by})")
        return self.build("balanced", [self._folds(s) for s in segments], segments)

    def balanced(self, replicate: bool) -> Plan:
        single = self.candidates(False)
        minimal = self.feasible(single[0], self.avail, False)
        if minimal is None:
            self.diagnose(single[0])
        # A replica needs a board the plan does not need even at the loosest target.
        most = len(self.boards) if self.max_boards is None else min(len(self.boards), self.max_boards)
        replicate = replicate and len(minimal) < most
        cand = self.candidates(True) if replicate else single
        found: dict[int, list[Segment] | None] = {}  # candidate index -> feasible's answer

        steps = math.ceil(math.log2(len(cand))) if len(cand) > 1 else 0  # the binary search's probes

        def feasible(i: int) -> list[Segment] | None:
            if i not in found:
                found[i] = self.feasible(cand[i], self.avail, replicate)
                if self.on_probe is not None:
                    self.on_probe(min(len(found), steps), steps)
            return found[i]

        lo, hi = 0, len(cand) - 1
        while lo < hi:  # largest feasible candidate; feasibility is monotone in fps
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if feasible(mid) else (lo, mid - 1)
        segments = feasible(lo)
        assert segments is not None
        if self.on_probe is not None:
            self.on_probe(steps, steps)
        result = self.build("balanced", [self._folds(s) for s in segments], segments)
        bound = self.upper_bound(cand, lo, replicate)
        return dataclasses.replace(result, fps_bound=max(bound, result.fps))

    def upper_bound(self, cand: np.ndarray, found: int, replicate: bool) -> float:
        """The largest candidate throughput the relaxation cannot rule out: no plan is faster.

        With exact fronts (nothing truncated) the plan is the best one and this is its throughput;
        otherwise the largest candidate the per-resource relaxation cannot rule out.
        """
        if not self.truncated:
            return float(cand[found])
        lo, hi = found, len(cand) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if self.feasible(cand[mid], self.avail, replicate, relaxed=True) else (lo, mid - 1)
        return float(cand[lo])

    def _folds(self, seg: Segment) -> list[Folding]:
        folds: list[Folding] = []
        for g, option in zip(range(seg.start, seg.stop), seg.options, strict=True):
            folds.extend(self.options(g, seg.board)[option].foldings)
        return folds

    def diagnose(self, fps: float) -> None:
        """Raise the error explaining why nothing fits at the loosest throughput target."""
        for g, (start, stop) in enumerate(self.groups):
            fits = [self.reach(g, t, 1, fps)[0] > g for t in range(len(self.types))]
            if not any(fits):
                board, overflows = self._least_overflow(g)
                names = [x.name for x in self.layers[start:stop]]
                raise LayerTooLargeError(names, [x.op_type for x in self.layers[start:stop]], board, overflows)
        needed = {}
        for t, board in enumerate(self.types):
            alone = [len(self.layers) if i == t else 0 for i in range(len(self.types))]
            segments = self.feasible(fps, alone, replicate=False)
            if segments is not None:
                needed[board.name] = len(segments)
        raise TooFewBoardsError("balanced", len(self.boards), needed)

    def _least_overflow(self, g: int) -> tuple[str, list]:
        best = None
        for t, board in enumerate(self.types):
            for o in self.options(g, t):
                total = self.opening(t, g) + o.resources + self.closing(t, g + 1)(o.out_width)
                over = total.overflows(board.usable)
                worst = max((v.needed - v.available) / max(v.available, 1) for v in over) if over else 0
                if best is None or worst < best[0]:
                    best = (worst, board.name, over)
        assert best is not None
        return best[1], best[2]

    def greedy(self, folds: list[Folding]) -> Plan:
        """The paper's method: fixed folding, fill boards in the order given until a resource overflows."""
        segments: list[Segment] = []
        start, board_i, used, prev = 0, 0, None, None
        for g, (a, b) in enumerate(self.groups):
            while True:
                t = self._type_of(board_i)
                board = self.types[t]
                option = group_options(self.layers[a:b], board, self.tensors, self.cfg, fixed=folds[a:b])[0]
                grown = (self.opening(t, start) if used is None else used) + option.resources
                if prev is not None:
                    grown = grown + dwc(prev, option.in_width, self.cfg.ff_per_lut)
                closed = grown + self.closing(t, g + 1)(option.out_width)
                if closed.fits(board.usable):
                    used, prev = grown, option.out_width
                    break
                if used is None:  # does not fit even alone on an empty board
                    over = closed.overflows(board.usable)
                    layers = self.layers[a:b]
                    raise LayerTooLargeError([x.name for x in layers], [x.op_type for x in layers], board.name,
                                             over, "with its fixed folding")
                segments.append(Segment(start, g, t, 1, ()))
                start, board_i, used, prev = g, board_i + 1, None, None
        segments.append(Segment(start, len(self.groups), self._type_of(board_i), 1, ()))
        for seg in segments:
            if not self.reads_all(seg.start, seg.stop):
                a, b = self.groups[seg.start][0], self.groups[seg.stop - 1][1]
                raise PartitionError(f"greedy: the board holding {self.layers[a].name}..{self.layers[b - 1].name} "
                                     "would pass a residual block's skip tensor on untouched; use --strategy balanced")
        if len(segments) > len(self.boards):
            raise TooFewBoardsError("greedy", len(self.boards), {self.boards[-1].name: len(segments)})
        seg_folds = [folds[self.groups[s.start][0]:self.groups[s.stop - 1][1]] for s in segments]
        return self.build("greedy", seg_folds, segments)

    def _type_of(self, board_index: int) -> int:
        board = self.boards[min(board_index, len(self.boards) - 1)]
        return next(i for i, t in enumerate(self.types) if t.name == board.name)

    def build(self, strategy: str, seg_folds: list[list[Folding]], segments: list[Segment]) -> Plan:
        """Cost every partition and assemble the plan."""
        parts = []
        for i, (seg, folds) in enumerate(zip(segments, seg_folds, strict=True)):
            parts.append(self._partition(i, seg, folds))
        used = {}
        for p in parts:
            used[p.board.name] = used.get(p.board.name, 0) + p.replicas
        unused = []
        for t, board in enumerate(self.types):
            unused += [board.name] * (self.avail[t] - used.get(board.name, 0))
        worst = min(parts, key=lambda p: p.fps)
        why = "compute" if worst.compute_fps <= worst.link_fps else "link"
        detail = f" in {worst.bottleneck}" if why == "compute" else ""
        limited = f"partition {worst.index} ({worst.board.name}) {why}{detail}"
        return Plan(strategy, tuple(parts), worst.fps, limited, tuple(unused), self.truncated)

    def _partition(self, index: int, seg: Segment, folds: list[Folding]) -> Partition:
        board, rate = self.types[seg.board], self.rates[seg.board]
        start, stop = self.groups[seg.start][0], self.groups[seg.stop - 1][1]
        layers = self.layers[start:stop]
        costs = [layer_cost(x, f, board, self.tensors, self.cfg) for x, f in zip(layers, folds, strict=True)]
        resources = partition_resources(costs, board, self.cfg, self.tensor_count[seg.start],
                                        self.tensor_count[seg.stop])
        slowest = max(range(len(costs)), key=lambda k: costs[k].cycles)
        cycles = max(costs[slowest].cycles, 1)
        compute = seg.replicas * board.clock_hz / cycles
        b_in, b_out = self.bytes[seg.start], self.bytes[seg.stop]
        link = rate * min(self._link_share(seg.start, seg.replicas) / max(b_in, 1),
                          self._link_share(seg.stop, seg.replicas) / max(b_out, 1))
        return Partition(
            index, start, stop, board, seg.replicas, tuple(x.name for x in layers), tuple(folds), tuple(costs),
            resources, costs[slowest].cycles, layers[slowest].name, compute, b_in, b_out, link, min(compute, link),
            board.power.watts(resources, board.clock_mhz),
        )


def _weights(cap: np.ndarray) -> np.ndarray:
    """Weight vectors of the relaxation: each capped resource alone, and every pair and all of them
    as fractions of their caps."""
    capped = np.nonzero(cap > 0)[0]
    frac = np.where(cap > 0, 1.0 / np.where(cap > 0, cap, 1.0), 0.0)
    rows = [np.eye(len(cap))[i] for i in capped]
    rows += [frac * np.isin(np.arange(len(cap)), pair) for pair in itertools.combinations(capped, 2)]
    rows.append(frac)
    return np.array(rows)


def _watts_per_unit(board: Board) -> np.ndarray:
    """Predicted watts per used unit of each resource at the board's clock (splitter.boards.PowerModel)."""
    per_unit = np.array(board.power.dynamic_mw_at_100mhz.as_tuple(), dtype=float)
    per_unit[RESOURCE_NAMES.index("lutram")] = 0.0  # already in lut
    return per_unit * 1e-3 * board.clock_mhz / 100.0


def _link_rate(board: Board, link_gbps: float | None) -> float:
    """Bytes per second one board moves per direction: NIC goodput (or the override), capped by its IODMA."""
    nic = link_gbps * 1e9 / 8 if link_gbps is not None else board.link_bytes_per_s
    return min(nic, board.iodma_width / 8 * board.clock_hz)


def _unwind(best: dict, counts: tuple[int, ...], pos: int) -> list[Segment]:
    """Follow back-pointers from the final (board counts, boundary) to the first segment."""
    out = []
    while best[counts][pos] is not None:
        counts, pos, seg = best[counts][pos]
        out.append(seg)
    return out[::-1]

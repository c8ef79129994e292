"""Pareto fronts of partial partitions: which joint foldings of consecutive groups still fit a board.

A front element is the resource vector of a run of groups folded one way, the output stream width of
its last group (a width converter to the next group depends on it) and the option chosen per group.
Elements that another element with the same output width beats in every resource are dropped, so
extending a front is exact. `limit` (None: none) bounds its size; a front cut to it keeps the lowest
scores and says so (`Front.truncated`), so a plan can report that it may be below the optimum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from splitter.cost.resources import RESOURCE_NAMES, Resources

LUT, FF = RESOURCE_NAMES.index("lut"), RESOURCE_NAMES.index("ff")
NO_PRODUCER = -1  # output width standing for "fed by the IODMA" (no width converter)


@dataclass(frozen=True)
class Options:
    """The candidate foldings of one group: resources (k x R), stream widths, cycles, option ids."""

    res: np.ndarray
    in_w: np.ndarray
    out_w: np.ndarray
    cycles: np.ndarray
    ids: np.ndarray

    @classmethod
    def build(cls, items: Sequence[tuple[Resources, int, int, int]], pruned: bool = False) -> Options:
        """From (resources, in width, out width, cycles) per option; drops dominated options.

        An option is dominated when another with the same stream widths needs no more of any
        resource and no more cycles: it can never be the better choice at any cycle budget.
        `pruned`: the items are already free of dominated options (splitter.folding.group_options).
        """
        res = np.array([r.as_tuple() for r, *_ in items], dtype=float).reshape(len(items), len(RESOURCE_NAMES))
        ints = np.array([rest for _, *rest in items], dtype=np.int64).reshape(len(items), 3)
        if pruned:
            idx = np.arange(len(items))
        else:
            keys = ints[:, 0] * (1 << 32) + ints[:, 1]
            with_cycles = np.concatenate([res, ints[:, 2:3].astype(float)], axis=1)
            idx = np.nonzero(pareto_mask(with_cycles, keys, res.sum(axis=1) + ints[:, 2]))[0]
        order = idx[np.argsort(ints[idx, 2], kind="stable")]  # by cycles
        return cls(res[order], ints[order, 0], ints[order, 1], ints[order, 2], order)

    def within(self, max_cycles: float) -> Options:
        """The options taking at most `max_cycles` cycles per frame that no other such option beats.

        Once both meet the budget, cycles no longer matter: an option needing no more of any
        resource (with the same stream widths) than another replaces it.
        """
        keep = np.nonzero(self.cycles <= max_cycles * (1 + 1e-12))[0]
        keys = self.in_w[keep] * (1 << 32) + self.out_w[keep]
        keep = keep[pareto_mask(self.res[keep], keys, self.res[keep].sum(axis=1))]
        return Options(self.res[keep], self.in_w[keep], self.out_w[keep], self.cycles[keep], self.ids[keep])


def pareto_mask(res: np.ndarray, keys: np.ndarray, score: np.ndarray, slack: np.ndarray | float = 0.0,
                block: int = 256) -> np.ndarray:
    """True for rows no other row with the same key matches or beats in every column (first kept).

    With `slack` (per column), a row within `slack` of an earlier kept row in every column is dropped
    too: the kept row may need up to `slack` more of a resource than the one it replaces.
    Rows are visited by increasing score (a dominator never scores higher), a block at a time, each
    compared with the rows kept so far and with the earlier rows of its block: memory grows with
    block x kept, not with the square of the candidates.
    """
    tol = np.broadcast_to(np.asarray(slack, dtype=float), (res.shape[1],)) + 1e-9
    keep = np.zeros(len(res), dtype=bool)
    order = np.argsort(score, kind="stable")
    sorted_keys = keys[order]
    for key in np.unique(keys):
        rows = order[sorted_keys == key]
        kept = np.zeros((0, res.shape[1]))
        for start in range(0, len(rows), block):
            part = rows[start:start + block]
            sub = res[part]
            dominated = np.zeros(len(part), dtype=bool)
            if len(kept):
                dominated = np.all(kept[None, :, :] <= sub[:, None, :] + tol, axis=2).any(axis=1)
            if np.any(tol > 1e-9):
                # with slack, being close is not transitive: compare only with rows actually kept
                chosen: list[int] = []
                for i in np.nonzero(~dominated)[0]:
                    if chosen and np.all(sub[chosen] <= sub[i] + tol, axis=1).any():
                        dominated[i] = True
                    else:
                        chosen.append(int(i))
            else:
                le = np.all(sub[None, :, :] <= sub[:, None, :] + tol, axis=2)  # le[i, j]: row j <= row i
                earlier = np.arange(len(part))[None, :] < np.arange(len(part))[:, None]
                dominated |= (le & earlier).any(axis=1)
            new = part[~dominated]
            keep[new] = True
            kept = np.concatenate([kept, res[new]])
    return keep


@dataclass(frozen=True)
class Front:
    """Non-dominated partial solutions: resources (m x R), last output width, option id per group."""

    res: np.ndarray
    out_w: np.ndarray
    paths: tuple[tuple[int, ...], ...]
    truncated: bool = False  # some non-dominated element was dropped to respect the size limit

    @classmethod
    def start(cls, base: Resources) -> Front:
        """The empty run on a board whose fixed cost (shell) is `base`."""
        return cls(np.array([base.as_tuple()], dtype=float), np.array([NO_PRODUCER]), ((),))

    def __len__(self) -> int:
        return len(self.paths)

    def extend(
        self, opts: Options, cap: np.ndarray, dwc_lut: Callable[[int, int], float], ff_per_lut: float,
        limit: int | None = None, tail: Callable[[int], Resources] | None = None,
        next_in: np.ndarray | None = None, slack: np.ndarray | None = None,
    ) -> Front:
        """Append one group's options; keep combinations within `cap` that nothing dominates.

        With `tail` (the cost of closing the segment after a given output width) and `next_in` (the
        input widths the next group's options take), elements of different output widths are
        compared too, exactly: `a` replaces `b` when, for every way to go on (closing, or a width
        converter into each next input width), `a` plus that cost needs no more than `b` plus its.
        With `slack` (per resource), `a` replaces `b` already when it needs at most `slack` more:
        the front stays small, and a plan found may be below the optimum by what that slack costs
        (the search bounds the gap, splitter/partition/search.py).
        """
        if not len(self) or not len(opts.ids):
            return Front(np.zeros((0, len(RESOURCE_NAMES))), np.zeros(0, dtype=np.int64), (), self.truncated)
        cand = self.res[:, None, :] + opts.res[None, :, :]
        prev_u, prev_i = np.unique(self.out_w, return_inverse=True)
        in_u, in_i = np.unique(opts.in_w, return_inverse=True)
        table = np.array([[dwc_lut(int(p), int(c)) for c in in_u] for p in prev_u]).reshape(len(prev_u), len(in_u))
        conv = table[prev_i.reshape(-1)][:, in_i.reshape(-1)]
        cand[:, :, LUT] += conv
        cand[:, :, FF] += conv * ff_per_lut
        flat = cand.reshape(-1, cand.shape[-1])
        ok = np.nonzero(np.all(flat <= cap + 1e-6, axis=1))[0]
        flat = flat[ok]
        parent, choice = np.divmod(ok, len(opts.ids))
        keys, score = opts.out_w[choice], scores(flat, cap)
        if not len(flat):
            return Front(np.zeros((0, len(RESOURCE_NAMES))), np.zeros(0, dtype=np.int64), (), self.truncated)
        slack = np.zeros(flat.shape[1]) if slack is None else slack
        if tail is None:
            mask = pareto_mask(flat, keys, score, slack)
        else:
            columns, resource = _continuations(flat, keys, tail, next_in, dwc_lut, ff_per_lut)
            mask = pareto_mask(columns, np.zeros_like(keys), score, slack[resource])
        idx = np.nonzero(mask)[0]
        truncated = self.truncated
        if limit is not None and len(idx) > limit:
            idx, truncated = _best(idx, flat, score, cap, limit), True
        paths = tuple((*self.paths[parent[i]], int(opts.ids[choice[i]])) for i in idx)
        return Front(flat[idx], keys[idx], paths, truncated)

    def best_closed(self, cap: np.ndarray, tail: Callable[[int], Resources], weights: np.ndarray | None = None,
                    ) -> int | None:
        """Index of the lowest-score element that still fits once `tail(out width)` is added.

        `weights` (per resource): the score is the weighted sum of the closed element's resources
        (e.g. watts per unit, for the least power) instead of its use of `cap`.
        """
        if not len(self):
            return None
        widths, inverse = np.unique(self.out_w, return_inverse=True)
        extra = np.array([tail(int(w)).as_tuple() for w in widths], dtype=float)[inverse.reshape(-1)]
        total = self.res + extra
        fits = np.all(total <= cap + 1e-6, axis=1)
        if not fits.any():
            return None
        score = np.where(fits, scores(total, cap) if weights is None else total @ weights, np.inf)
        return int(np.argmin(score))

    def closed(self, k: int, tail: Callable[[int], Resources]) -> np.ndarray:
        """Resources of element k once `tail(out width)` is added."""
        return self.res[k] + np.array(tail(int(self.out_w[k])).as_tuple(), dtype=float)


def _best(idx: np.ndarray, res: np.ndarray, score: np.ndarray, cap: np.ndarray, limit: int) -> np.ndarray:
    """`limit` of the elements `idx`: the one using least of each capped resource, then the lowest scores."""
    chosen = list(dict.fromkeys(int(idx[np.argmin(res[idx, d])]) for d in np.nonzero(cap > 0)[0]))[:limit]
    rest = [int(i) for i in idx[np.argsort(score[idx], kind="stable")] if int(i) not in set(chosen)]
    return np.array(chosen + rest[: limit - len(chosen)], dtype=np.int64)


def _continuations(
    res: np.ndarray, out_w: np.ndarray, tail: Callable[[int], Resources], next_in: np.ndarray | None,
    dwc_lut: Callable[[int, int], float], ff_per_lut: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Each element's resources after every way to go on, side by side (columns: closing, then each next width),
    and the resource index of each column."""
    widths, inverse = np.unique(out_w, return_inverse=True)
    inverse = inverse.reshape(-1)
    closing = np.array([tail(int(w)).as_tuple() for w in widths], dtype=float)[inverse]
    columns = [res + closing]
    for width in np.unique(next_in) if next_in is not None else ():
        conv = np.array([dwc_lut(int(w), int(width)) for w in widths])[inverse]
        extra = np.zeros_like(res)
        extra[:, LUT], extra[:, FF] = conv, conv * ff_per_lut
        columns.append(res + extra)
    out = np.concatenate(columns, axis=1)
    resource = np.tile(np.arange(res.shape[1]), len(columns))
    varying = np.ptp(out, axis=0) > 1e-9  # a column equal for all elements decides nothing
    if not varying.any():
        varying[0] = True
    out, resource = out[:, varying], resource[varying]
    # a converter adds only LUTs and FFs: the other columns of each way to go on repeat the first
    _, first = np.unique(out.T, axis=0, return_index=True)
    first = np.sort(first)
    return out[:, first], resource[first]


def scores(res: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Largest fraction of `cap` each row uses, ties broken by the sum of fractions (zero caps ignored)."""
    safe = np.where(cap > 0, cap, 1.0)
    frac = np.where(cap > 0, res / safe, 0.0)
    return np.max(frac, axis=1) + 1e-9 * np.sum(frac, axis=1)

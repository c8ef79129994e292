"""Pareto fronts of partial partitions: which joint foldings of consecutive groups still fit a board.

A front element is the resource vector of a run of groups folded one way, the output stream width of
its last group (a width converter to the next group depends on it) and the option chosen per group.
Elements that another element with the same output width beats in every resource are dropped, so
extending a front is exact; `limit` bounds its size on big models (then the lowest scores survive).
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
    def build(cls, items: Sequence[tuple[Resources, int, int, int]]) -> Options:
        """From (resources, in width, out width, cycles) per option; drops dominated options.

        An option is dominated when another with the same stream widths needs no more of any
        resource and no more cycles: it can never be the better choice at any cycle budget.
        """
        res = np.array([r.as_tuple() for r, *_ in items], dtype=float).reshape(len(items), len(RESOURCE_NAMES))
        ints = np.array([rest for _, *rest in items], dtype=np.int64).reshape(len(items), 3)
        keys = ints[:, 0] * (1 << 32) + ints[:, 1]
        with_cycles = np.concatenate([res, ints[:, 2:3].astype(float)], axis=1)
        idx = np.nonzero(pareto_mask(with_cycles, keys, res.sum(axis=1) + ints[:, 2]))[0]
        return cls(res[idx], ints[idx, 0], ints[idx, 1], ints[idx, 2], idx)

    def within(self, max_cycles: float) -> Options:
        """The options taking at most `max_cycles` cycles per frame."""
        keep = self.cycles <= max_cycles * (1 + 1e-12)
        return Options(self.res[keep], self.in_w[keep], self.out_w[keep], self.cycles[keep], self.ids[keep])


def pareto_mask(res: np.ndarray, keys: np.ndarray, score: np.ndarray) -> np.ndarray:
    """True for rows no other row with the same key matches or beats in every column (first kept)."""
    keep = np.ones(len(res), dtype=bool)
    order = np.argsort(score, kind="stable")
    sorted_keys = keys[order]
    for key in np.unique(keys):
        rows = order[sorted_keys == key]
        if len(rows) < 2:
            continue
        sub = res[rows]
        le = np.all(sub[None, :, :] <= sub[:, None, :] + 1e-9, axis=2)  # le[i, j]: row j <= row i
        earlier = np.arange(len(rows))[None, :] < np.arange(len(rows))[:, None]
        keep[rows[(le & earlier).any(axis=1)]] = False  # sorted by score: a dominator comes first
    return keep


@dataclass(frozen=True)
class Front:
    """Non-dominated partial solutions: resources (m x R), last output width, option id per group."""

    res: np.ndarray
    out_w: np.ndarray
    paths: tuple[tuple[int, ...], ...]

    @classmethod
    def start(cls, base: Resources) -> Front:
        """The empty run on a board whose fixed cost (shell) is `base`."""
        return cls(np.array([base.as_tuple()], dtype=float), np.array([NO_PRODUCER]), ((),))

    def __len__(self) -> int:
        return len(self.paths)

    def extend(
        self, opts: Options, cap: np.ndarray, dwc_lut: Callable[[int, int], float], ff_per_lut: float,
        limit: int,
    ) -> Front:
        """Append one group's options; keep combinations within `cap` that nothing dominates."""
        if not len(self) or not len(opts.ids):
            return Front(np.zeros((0, len(RESOURCE_NAMES))), np.zeros(0, dtype=np.int64), ())
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
        if len(ok) > 8 * limit:  # heuristic pre-cut on big models only
            first = np.argsort(score, kind="stable")[: 8 * limit]
            flat, parent, choice, keys, score = flat[first], parent[first], choice[first], keys[first], score[first]
        mask = pareto_mask(flat, keys, score)
        idx = np.nonzero(mask)[0]
        if len(idx) > limit:
            idx = idx[np.argsort(score[idx], kind="stable")[:limit]]
        paths = tuple((*self.paths[parent[i]], int(opts.ids[choice[i]])) for i in idx)
        return Front(flat[idx], keys[idx], paths)

    def best_closed(self, cap: np.ndarray, tail: Callable[[int], Resources]) -> int | None:
        """Index of the lowest-score element that still fits once `tail(out width)` is added."""
        if not len(self):
            return None
        widths, inverse = np.unique(self.out_w, return_inverse=True)
        extra = np.array([tail(int(w)).as_tuple() for w in widths], dtype=float)[inverse.reshape(-1)]
        total = self.res + extra
        fits = np.all(total <= cap + 1e-6, axis=1)
        if not fits.any():
            return None
        score = np.where(fits, scores(total, cap), np.inf)
        return int(np.argmin(score))


def scores(res: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Largest fraction of `cap` each row uses, ties broken by the sum of fractions (zero caps ignored)."""
    safe = np.where(cap > 0, cap, 1.0)
    frac = np.where(cap > 0, res / safe, 0.0)
    return np.max(frac, axis=1) + 1e-9 * np.sum(frac, axis=1)

"""Pareto fronts of partial partitions: dominance pruning and exact extension."""

from __future__ import annotations

import numpy as np

from splitter.cost import Resources
from splitter.cost.front import Front, Options, pareto_mask


def test_pareto_mask_keeps_non_dominated_rows_per_key() -> None:
    res = np.array([[1, 5], [2, 2], [3, 3], [5, 1], [2, 2], [0, 9]], dtype=float)
    keys = np.array([0, 0, 0, 0, 0, 1])
    keep = pareto_mask(res, keys, res.sum(axis=1))
    # [3, 3] is beaten by [2, 2]; the second [2, 2] duplicates the first; key 1 is alone
    assert keep.tolist() == [True, True, False, True, False, True]


def test_options_drop_options_dominated_in_resources_and_cycles() -> None:
    opts = Options.build([
        (Resources(lut=100), 8, 8, 10),
        (Resources(lut=200), 8, 8, 10),  # same widths, more LUTs, same cycles: dropped
        (Resources(lut=200), 8, 8, 5),  # more LUTs but faster: kept
        (Resources(lut=50), 16, 8, 10),  # other input width: kept
    ])
    assert opts.ids.tolist() == [2, 0, 3]  # by cycles
    assert opts.within(7).ids.tolist() == [2]


def test_front_extension_is_exact_where_a_greedy_choice_fails() -> None:
    # group 1: A (1 BRAM, 10 LUT) or B (0 BRAM, 100 LUT); group 2: only C (100 LUT)
    # capacity 1 BRAM, 150 LUT: only A + C fits, although B alone scores better than A alone
    cap = np.array(Resources(lut=150, ff=1000, bram18=1, lutram=100).as_tuple())
    first = Options.build([(Resources(lut=10, bram18=1), 8, 8, 1), (Resources(lut=100), 8, 8, 1)])
    second = Options.build([(Resources(lut=100), 8, 8, 1)])

    def no_dwc(prev: int, width: int) -> float:
        return 0.0

    full = Front.start(Resources()).extend(first, cap, no_dwc, 1.0, limit=8).extend(second, cap, no_dwc, 1.0, 8)
    assert full.paths == ((0, 0),) and not full.truncated
    cut = Front.start(Resources()).extend(first, cap, no_dwc, 1.0, limit=1)
    assert len(cut) == 1 and cut.truncated  # a cut front says so: the search then reports a gap


def test_front_adds_width_converters_and_closes_with_a_tail() -> None:
    cap = np.array(Resources(lut=1000, ff=1000, bram18=4, lutram=100).as_tuple())
    opts = Options.build([(Resources(lut=100, ff=100), 8, 32, 1)])
    front = Front.start(Resources(lut=50, ff=50)).extend(opts, cap, lambda p, w: 0.0 if p < 0 else 7.0, 1.0, 8)
    front = front.extend(Options.build([(Resources(lut=100, ff=100), 16, 16, 1)]), cap,
                         lambda p, w: 0.0 if p < 0 else 7.0, 1.0, 8)
    assert front.res[0][0] == 50 + 100 + 7 + 100  # the DWC between the two groups costs 7 LUT
    assert front.out_w.tolist() == [16]
    assert front.best_closed(cap, lambda w: Resources(lut=10)) == 0
    assert front.best_closed(cap, lambda w: Resources(lut=800)) is None

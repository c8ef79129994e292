"""Legal foldings (FINN's divisor rules), the cheapest folding for a budget, groups, FINN configs."""

from __future__ import annotations

import numpy as np
import pytest

from core.datatypes import datatype
from splitter.boards import load_board
from splitter.cost import CostConfig, Folding, boundary_cost, layer_cost
from splitter.cost.synthetic import LayerBuilder
from splitter.folding import (
    CycleTargetError,
    apply_folding,
    cheapest_folding,
    cut_allowed,
    divisors,
    finn_folding_config,
    finn_set_folding,
    group_options,
    groups,
    legal_foldings,
    resource_score,
)

ZED = load_board("zedboard")
ZCU = load_board("zcu104")


def chain():
    """conv 3x3 (8->16) then a depthwise-separable block (16->32) on an 8x8 image."""
    b = LayerBuilder((1, 8, 8, 8), datatype("UINT4"))
    b.window(3, 1, depthwise=False).mvau(16, "INT4", "UINT4")
    b.pad(1).window(3, 1, depthwise=True).vvau(3, "INT4", "UINT4").mvau(32, "INT4", "UINT4")
    return b.build()


def test_divisors() -> None:
    assert divisors(12) == [1, 2, 3, 4, 6, 12]
    assert divisors(1) == [1]


def test_mvau_legal_foldings() -> None:
    layers, _ = chain()
    mvau = layers[1]  # MW = 72 (3*3*8), MH = 16
    folds = legal_foldings(mvau, ZED)
    assert {f.simd for f in folds} == set(divisors(72)) and {f.pe for f in folds} == set(divisors(16))
    assert {f.ram_style for f in folds} == {"block", "distributed"}  # no URAM on the XC7Z020
    assert {f.res_type for f in folds} == {"lut", "dsp"}
    assert len(folds) == 12 * 5 * 2 * 2
    assert "ultra" in {f.ram_style for f in legal_foldings(mvau, ZCU)}
    capped = legal_foldings(mvau, ZED, CostConfig(mvau_wwidth_max=36))  # FINN SetFolding's cap: SIMD*4 <= 36
    assert {f.simd for f in capped} == {1, 2, 3, 4, 6, 8, 9}


def test_vvau_and_window_legal_foldings() -> None:
    layers, _ = chain()
    swg, vvau = layers[3], layers[4]
    pairs = {(f.pe, f.simd) for f in legal_foldings(vvau, ZED)}
    assert pairs == {(1, 1), (2, 1), (4, 1), (8, 1), (16, 1), (16, 9)}  # SIMD only once PE = Channels
    windows = {(f.simd, f.parallel_window) for f in legal_foldings(swg, ZED)}
    assert windows == {(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (16, 1)}  # parallel needs SIMD = C


def test_every_legal_folding_costs() -> None:
    layers, tensors = chain()
    for layer in layers:
        for f in legal_foldings(layer, ZED):
            cost = layer_cost(layer, f, ZED, tensors)
            assert cost.cycles > 0 and cost.resources.lut > 0


def test_cheapest_folding_is_the_minimum_meeting_the_budget() -> None:
    layers, tensors = chain()
    mvau = layers[5]  # 1x1 conv 16 -> 32 on 6x6: 16*32*36 = 18432 cycles at PE=SIMD=1
    for target in (18432, 5000, 1000, 36):
        _, cost = cheapest_folding(mvau, ZED, tensors, target)
        assert cost.cycles <= target
        every = [layer_cost(mvau, g, ZED, tensors) for g in legal_foldings(mvau, ZED)]
        best = min((resource_score(c.resources, ZED), c.cycles) for c in every if c.cycles <= target)
        assert (resource_score(cost.resources, ZED), cost.cycles) == best
    slowest, _ = cheapest_folding(mvau, ZED, tensors, 18432)
    assert (slowest.pe, slowest.simd) == (1, 1)


def test_cycle_target_unreachable_is_reported() -> None:
    layers, tensors = chain()
    with pytest.raises(CycleTargetError) as exc:
        cheapest_folding(layers[5], ZED, tensors, 10)  # fully unfolded it still takes 36 cycles (6x6 pixels)
    assert exc.value.cycles == 36 and "MVAU_1" in str(exc.value) and "takes 36 cycles" in str(exc.value)


def test_groups_never_cut_after_padding_or_window() -> None:
    layers, _ = chain()
    assert [cut_allowed(layers, i) for i in range(7)] == [False, False, True, False, False, True, False]
    assert groups(layers) == [(0, 2), (2, 5), (5, 6)]


def test_group_options_respect_finn_couplings() -> None:
    layers, tensors = chain()
    options = group_options(layers[2:5], ZED, tensors)
    assert options
    for o in options:
        pad, swg, vvau = o.foldings
        assert pad.simd == swg.simd == vvau.pe  # SetFolding: dw SWG SIMD = VVAU PE; padding matched
        assert swg.parallel_window == int(vvau.simd > 1)
        assert o.cycles == max(c.cycles for c in o.costs)
        prev, total = None, o.costs[0].resources.scale(0)
        for c in o.costs:
            total, prev = total + c.resources + boundary_cost(prev, c.in_width), c.out_width
        assert o.resources == total and (o.in_width, o.out_width) == (o.costs[0].in_width, o.costs[-1].out_width)


def test_apply_folding_copies() -> None:
    layers, _ = chain()
    layer = layers[5]
    layer.params["weights"] = np.zeros((16, 32), dtype=np.int8)
    folded = apply_folding(layer, Folding(pe=4, simd=2, ram_style="block", res_type="dsp"))
    assert (folded.attrs["PE"], folded.attrs["SIMD"], folded.attrs["ram_style"], folded.attrs["resType"]) == (
        4, 2, "block", "dsp")
    assert layer.attrs["PE"] == 1 and folded.params["weights"] is layer.params["weights"]


def test_finn_folding_config_uses_finn_node_names() -> None:
    layers, tensors = chain()
    folds = [Folding(simd=2, ram_style="distributed"), Folding(pe=4, simd=8, ram_style="block", res_type="lut"),
             Folding(simd=4), Folding(simd=4, ram_style="distributed"),
             Folding(pe=4, ram_style="block", res_type="lut"),
             Folding(pe=2, simd=16, ram_style="distributed", res_type="dsp")]
    config = finn_folding_config(layers, folds, ZED, tensors)
    assert list(config) == ["Defaults", "ConvolutionInputGenerator_rtl_0", "MVAU_hls_0", "FMPadding_rtl_0",
                            "ConvolutionInputGenerator_rtl_1", "VVAU_hls_0", "MVAU_hls_1"]
    assert config["MVAU_hls_0"] == {"PE": 4, "SIMD": 8, "ram_style": "block", "resType": "lut",
                                    "mem_mode": "internal_decoupled"}
    assert config["FMPadding_rtl_0"] == {"SIMD": 4}
    assert config["ConvolutionInputGenerator_rtl_1"] == {"SIMD": 4, "parallel_window": 0, "ram_style": "distributed"}


def test_finn_set_folding_mimics_setfolding() -> None:
    layers, tensors = chain()
    folds = finn_set_folding(layers, ZED, tensors, target_cycles=2000)
    conv, block_pw = folds[1], folds[5]
    # MVAU: SIMD walks divisors of MW=72 while SIMD*4 <= 36 -> stops at 9 (12*4 > 36, reverted), then PE
    assert conv.simd == 9 and conv.pe == 4  # 16/4 * 72/9 * 36 = 1152 < 2000 (PE=2 gives 2304)
    assert folds[2].simd == 16  # FMPadding_rtl is not in SetFolding's list: SIMD = channels from FINN's HW conversion
    assert folds[3].simd == folds[4].pe  # depthwise SWG follows its VVAU
    # SIMD 8 gives 2304 >= 2000; SIMD 16 meets the target before the width check: 32 * 16/16 * 36 = 1152
    assert block_pw.simd == 16 and block_pw.pe == 1
    # two-pass relaxation: FMPadding at SIMD=16 still takes 8*8 = 64 cycles and the fastest folding of
    # other layers more, so a 10-cycle target is relaxed to the slowest layer after the first pass
    first = finn_set_folding(layers, ZED, tensors, target_cycles=10, two_pass=False)
    relaxed = finn_set_folding(layers, ZED, tensors, target_cycles=10)
    cycles = lambda fs: [layer_cost(x, f, ZED, tensors).cycles for x, f in zip(layers, fs, strict=True)]  # noqa: E731
    assert max(cycles(relaxed)) == max(cycles(first)) > 10
    assert sum(f.pe * f.simd for f in relaxed) <= sum(f.pe * f.simd for f in first)

"""Objectives besides the fastest plan: fewest boards or least power at a target, power caps, fps/W.

Each is checked against brute force on toy chains (every cut set, replica count and folding).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_build import finnsplit
from test_partition import brute_force_plans, tiny, toy_layers

from splitter.boards import Board
from splitter.partition import PartitionError, plan, plan_for

CASES = [
    ("three boards", [tiny("a", lut=2_000, bram=2, dsp=2)] * 3),
    ("mixed boards", [tiny("s", lut=1_300, bram=2, dsp=2)] * 2 + [tiny("b", lut=2_500, bram=2, dsp=2, clock_mhz=2)]),
]


@pytest.mark.parametrize(("label", "boards"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("replicate", [False, True])
def test_target_fps_gives_the_fewest_boards_and_the_least_power(label: str, boards: list[Board],
                                                                replicate: bool) -> None:
    layers, tensors = toy_layers()
    every = brute_force_plans(layers, tensors, boards, replicate)
    fastest = max(f for f, _, _ in every)
    for target in (fastest / 4, fastest / 2, fastest):
        meeting = [(w, k) for f, w, k in every if f >= target * (1 - 1e-9)]
        fewest = plan(layers, tensors, boards, target_fps=target, replicate=replicate, front_limit=None)
        assert fewest.fps >= target * (1 - 1e-9)
        assert fewest.boards_used == min(k for _, k in meeting)
        least = plan(layers, tensors, boards, target_fps=target, replicate=replicate, front_limit=None,
                     least_power=True)
        assert least.fps >= target * (1 - 1e-9)
        assert least.power_w == pytest.approx(min(w for w, _ in meeting), rel=1e-9)
        assert least.power_w <= fewest.power_w * (1 + 1e-12)


def test_an_unreachable_target_names_the_fastest_plan() -> None:
    layers, tensors = toy_layers()
    boards = CASES[0][1]
    fastest = plan(layers, tensors, boards).fps
    for least_power in (False, True):
        with pytest.raises(PartitionError, match=f"the fastest reaches {fastest:.1f} fps"):
            plan(layers, tensors, boards, target_fps=fastest * 1.01, least_power=least_power)


def test_power_cap_and_fps_per_watt_match_brute_force() -> None:
    layers, tensors = toy_layers()
    boards = CASES[0][1]
    every = brute_force_plans(layers, tensors, boards, replicate=True)
    best = plan_for(layers, tensors, boards, "fps-per-watt", front_limit=None)
    # per board count, the fastest rate at the least power it can be reached with
    per_count = []
    for k in {n for _, _, n in every}:
        fastest = max(f for f, _, n in every if n <= k)
        per_count.append(fastest / min(w for f, w, n in every if n <= k and f >= fastest * (1 - 1e-12)))
    assert best.fps / best.power_w == pytest.approx(max(per_count), rel=1e-9)
    assert best.fps / best.power_w <= max(f / w for f, w, _ in every) * (1 + 1e-9)
    fastest = plan_for(layers, tensors, boards, "fps", front_limit=None)
    cap = (best.power_w + fastest.power_w) / 2
    capped = plan_for(layers, tensors, boards, "fps", power_cap_w=cap, front_limit=None)
    assert capped.power_w <= cap
    assert capped.fps == pytest.approx(max(f for f, w, _ in every if w <= cap), rel=1e-9)
    least = min(w for _, w, _ in every)
    with pytest.raises(PartitionError, match="no plan draws at most"):
        plan_for(layers, tensors, boards, "fps", power_cap_w=least * 0.99, front_limit=None)


def test_cli_objectives_need_or_refuse_a_target(zoo_dir: Path, tmp_path: Path) -> None:
    model = str(zoo_dir / "tfc-w2a2.onnx")
    needs = finnsplit("build", model, "--boards", "2", "--objective", "power", "--finn", "no",
                      "-o", str(tmp_path / "a"))
    assert needs.returncode == 2 and "--objective power needs --target-fps" in needs.stderr
    refuses = finnsplit("build", model, "--boards", "2", "--objective", "fps-per-watt", "--target-fps", "100",
                        "--finn", "no", "-o", str(tmp_path / "b"))
    assert refuses.returncode == 2 and "with a target, use --objective boards" in refuses.stderr
    least = finnsplit("build", model, "--boards", "2", "--objective", "power", "--target-fps", "1000",
                      "--finn", "no", "-o", str(tmp_path / "c"))
    assert least.returncode == 0, least.stderr

"""Objectives besides the fastest plan: fewest boards or least power at a target, power caps, fps/W.

Each is checked against brute force on toy chains (every cut set, replica count and folding).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from test_build import finnsplit
from test_partition import _rate, tiny, toy_chain

from splitter.boards import Board
from splitter.cost import output_fifo_cost
from splitter.cost.memory import dwc
from splitter.folding import group_options, groups
from splitter.packing import packed_size
from splitter.partition import PartitionError, plan, plan_for


def _watts(board: Board, res: np.ndarray) -> np.ndarray:
    per_unit = np.array(board.power.dynamic_mw_at_100mhz.as_tuple(), dtype=float)
    per_unit[-1] = 0.0  # lutram: already in lut
    dynamic = res @ (per_unit * 1e-3 * board.clock_mhz / 100.0)
    return board.power.ps_w + board.power.pl_static_w + dynamic


def brute_force_plans(layers, tensors, boards: Sequence[Board], replicate: bool) -> list[tuple[float, float, int]]:
    """(fps, least watts reaching that fps, boards) of every plan: cut set, board types, replicas, foldings."""
    grp = groups(layers)
    ends = [layers[0].input] + [layers[stop - 1].output for _, stop in grp]
    nbytes = [packed_size(tensors[e].num_elements, tensors[e].dtype) for e in ends]
    types = list({b.name: b for b in boards}.values())
    avail = {t.name: sum(b.name == t.name for b in boards) for t in types}
    options = {(g, t.name): group_options(layers[a:b], t, tensors) for g, (a, b) in enumerate(grp) for t in types}

    def segment(i: int, j: int, board: Board) -> tuple[np.ndarray, np.ndarray]:
        """Cycles and watts of every folding combination of groups i..j-1 that fits one board."""
        res, cyc, out_w = np.array([board.shell.as_tuple()]), np.zeros(1), np.array([-1])
        for g in range(i, j):
            opts = options[(g, board.name)]
            o_res = np.array([o.resources.as_tuple() for o in opts])
            conv = np.array([[0.0 if p < 0 else dwc(int(p), o.in_width, 1.0).lut for o in opts] for p in out_w])
            res = res[:, None, :] + o_res[None, :, :]
            res[:, :, 0] += conv
            res[:, :, 1] += conv
            res = res.reshape(-1, res.shape[-1])
            cyc = np.maximum(cyc[:, None], np.array([o.cycles for o in opts])[None, :]).reshape(-1)
            out_w = np.tile(np.array([o.out_width for o in opts]), len(out_w))
        res = res + np.array([output_fifo_cost(int(w)).as_tuple() for w in out_w])
        fits = np.all(res <= np.array(board.usable.as_tuple()) + 1e-6, axis=1)
        return cyc[fits], _watts(board, res[fits])

    out = []
    n = len(grp)
    for k in range(1, len(boards) + 1):
        for cuts in itertools.combinations(range(1, n), k - 1):
            segs = list(itertools.pairwise([0, *cuts, n]))
            for assign in itertools.product(types, repeat=k):
                for reps in itertools.product(range(1, (len(boards) if replicate else 1) + 1), repeat=k):
                    used = {t.name: 0 for t in types}
                    for t, r in zip(assign, reps, strict=True):
                        used[t.name] += r
                    if any(used[name] > avail[name] for name in used):
                        continue
                    per_seg = []
                    for (i, j), t, r in zip(segs, assign, reps, strict=True):
                        cyc, watts = segment(i, j, t)
                        link = _rate(t, None) * min((1 if i == 0 else r) / nbytes[i], (1 if j == n else r) / nbytes[j])
                        per_seg.append((np.minimum(r * t.clock_hz / np.maximum(cyc, 1), link), r * watts))
                    if any(not len(f) for f, _ in per_seg):
                        continue
                    # every throughput one segment can set, and the least power of the plan at it
                    for fps in {float(v) for f, _ in per_seg for v in f}:
                        meets = [w[f >= fps * (1 - 1e-12)] for f, w in per_seg]
                        if all(len(m) for m in meets):
                            out.append((fps, sum(float(m.min()) for m in meets), sum(reps)))
    return out


CASES = [
    ("three boards", [tiny("a", lut=2_000, bram=2, dsp=2)] * 3),
    ("mixed boards", [tiny("s", lut=1_300, bram=2, dsp=2)] * 2 + [tiny("b", lut=2_500, bram=2, dsp=2, clock_mhz=2)]),
]


@pytest.mark.parametrize(("label", "boards"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("replicate", [False, True])
def test_target_fps_gives_the_fewest_boards_and_the_least_power(label: str, boards: list[Board],
                                                                replicate: bool) -> None:
    layers, tensors = toy_chain()
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
    layers, tensors = toy_chain()
    boards = CASES[0][1]
    fastest = plan(layers, tensors, boards).fps
    for least_power in (False, True):
        with pytest.raises(PartitionError, match=f"the fastest reaches {fastest:.1f} fps"):
            plan(layers, tensors, boards, target_fps=fastest * 1.01, least_power=least_power)


def test_power_cap_and_fps_per_watt_match_brute_force() -> None:
    layers, tensors = toy_chain()
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

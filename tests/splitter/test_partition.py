"""Cut strategies: balanced is optimal (brute force on small chains), greedy fills in order, errors."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from core.datatypes import datatype
from core.packing import packed_size
from splitter.boards import Board, PowerModel, load_board, parse_board_list
from splitter.cost import CostConfig, Resources, folding_from_attrs, layer_cost, output_fifo_cost, partition_resources
from splitter.cost.errors import UnsupportedLayerError
from splitter.cost.memory import dwc
from splitter.cost.synthetic import LayerBuilder, mobilenet_v1_w4a4
from splitter.folding import finn_set_folding, group_options, groups, in_block
from splitter.partition import LayerTooLargeError, PartitionError, TooFewBoardsError, plan


def tiny(name: str, lut: float, bram: float = 4, dsp: float = 4, clock_mhz: float = 1.0,
         nic_mbps: float = 1.0) -> Board:
    """A made-up small board (all of it usable) so that toy chains need several boards."""
    return Board(
        name=name, part="test", family="zynq7000", dsp_block="DSP48E1",
        resources=Resources(lut=lut, ff=2 * lut, bram18=bram, uram=0, dsp=dsp, lutram=lut / 2),
        usable_fraction=Resources(1, 1, 1, 1, 1, 1), clock_mhz=clock_mhz, nic_gbps=nic_mbps / 1000,
        link_efficiency=1.0, iodma_width=64, shell=Resources(lut=200, ff=200),
        power=PowerModel(0.5, 0.1, Resources(lut=0.01, ff=0.001, bram18=1, dsp=1)),
    )


def toy_layers(with_block: bool = True):
    """MVAU 2->4, [pad, dw window, VVAU], MVAU 4->2, Thresholding on a 4x4 UINT2 image."""
    b = LayerBuilder((1, 4, 4, 2), datatype("UINT2"))
    b.mvau(4, "INT2", "UINT2")
    if with_block:
        b.pad(1).window(3, 1, depthwise=True).vvau(3, "INT2", "UINT2")
    b.mvau(2, "INT2", "UINT2")
    b._emit("Thresholding", {"NumChannels": 2, "PE": 1, "numSteps": 3, "inputDataType": "UINT2",
                             "outputDataType": "UINT2", "ActVal": 0}, b.shape, datatype("UINT2"))
    return b.build()


def _rate(board: Board, link_gbps: float | None) -> float:
    nic = link_gbps * 1e9 / 8 if link_gbps else board.nic_gbps * board.link_efficiency * 1e9 / 8
    return min(nic, board.iodma_width / 8 * board.clock_hz)


def _watts(board: Board, res: np.ndarray) -> np.ndarray:
    per_unit = np.array(board.power.dynamic_mw_at_100mhz.as_tuple(), dtype=float)
    per_unit[-1] = 0.0  # lutram: already in lut
    dynamic = res @ (per_unit * 1e-3 * board.clock_mhz / 100.0)
    return board.power.ps_w + board.power.pl_static_w + dynamic


def brute_force_plans(layers, tensors, boards: Sequence[Board], replicate: bool,
                      link_gbps=None) -> list[tuple[float, float, int]]:
    """(fps, least watts reaching that fps, boards) of every plan: cut set, board types, replicas, foldings."""
    grp = groups(layers)
    cuts = [0] + [stop for _, stop in grp]
    crossing = [_crossing(layers, i) for i in cuts]  # inside a residual block: the skip and the branch
    nbytes = [sum(packed_size(tensors[e].num_elements, tensors[e].dtype) for e in names) for names in crossing]
    types = list({b.name: b for b in boards}.values())
    avail = {t.name: sum(b.name == t.name for b in boards) for t in types}
    options = {(g, t.name): group_options(layers[a:b], t, tensors, budgeted=in_block(layers, a, b))
               for g, (a, b) in enumerate(grp) for t in types}

    def segment(i: int, j: int, board: Board) -> tuple[np.ndarray, np.ndarray]:
        """Cycles and watts of every folding combination of groups i..j-1 that fits one board."""
        # the shell has one IODMA per side; each further tensor crossing in or out needs one more
        iodmas = board.iodma.scale(len(crossing[i]) - 1 + len(crossing[j]) - 1)
        res, cyc, out_w = np.array([(board.shell + iodmas).as_tuple()]), np.zeros(1), np.array([-1])
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
            if not all(_reads(layers[grp[i][0]:grp[j - 1][1]], crossing[i]) for i, j in segs):
                continue  # a board would pass a tensor on untouched
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
                        nics_in, nics_out = (1 if i == 0 else r), (1 if j == n else r)  # one client NIC
                        link = _rate(t, link_gbps) * min(nics_in / nbytes[i], nics_out / nbytes[j])
                        per_seg.append((np.minimum(r * t.clock_hz / np.maximum(cyc, 1), link), r * watts))
                    if any(not len(f) for f, _ in per_seg):
                        continue
                    # every throughput one segment can set, and the least power of the plan at it
                    for fps in {float(v) for f, _ in per_seg for v in f}:
                        meets = [w[f >= fps * (1 - 1e-12)] for f, w in per_seg]
                        if all(len(m) for m in meets):
                            out.append((fps, sum(float(m.min()) for m in meets), sum(reps)))
    return out


def _crossing(layers, index: int) -> list[str]:
    """The tensors a cut before layers[index] carries: written before it, read at or after it."""
    if index == len(layers):
        return [layers[-1].output]
    written = {layers[0].input} | {o for x in layers[:index] for o in x.outputs}
    return sorted({i for x in layers[index:] for i in x.inputs if i in written})


def _reads(segment, names: list[str]) -> bool:
    return set(names) <= {i for x in segment for i in x.inputs}


def brute_force(layers, tensors, boards: Sequence[Board], replicate: bool, link_gbps=None) -> float:
    """Best pipeline fps over every cut set, board assignment, replica count and folding combination."""
    return max(fps for fps, _, _ in brute_force_plans(layers, tensors, boards, replicate, link_gbps))


CASES = [
    ("one roomy board", [tiny("a", lut=60_000, bram=40, dsp=40)]),
    ("three tight boards", [tiny("a", lut=1_300, bram=2, dsp=2)] * 3),
    ("two boards", [tiny("a", lut=1_600, bram=2, dsp=2)] * 2),
    ("three boards beat one", [tiny("a", lut=2_000, bram=2, dsp=2)] * 3),
    ("slow link", [tiny("a", lut=2_000, bram=2, dsp=2, nic_mbps=0.2)] * 3),
    ("mixed boards", [tiny("s", lut=1_300, bram=2, dsp=2)] * 2 + [tiny("b", lut=2_500, bram=2, dsp=2, clock_mhz=2)]),
]


@pytest.mark.parametrize(("label", "boards"), CASES, ids=[c[0] for c in CASES])
def test_balanced_matches_brute_force(label: str, boards: list[Board]) -> None:
    layers, tensors = toy_layers()
    expected = brute_force(layers, tensors, boards, replicate=False)
    got = plan(layers, tensors, boards, "balanced", replicate=False)
    assert got.fps == pytest.approx(expected, rel=1e-9)
    _check_consistent(got, layers, tensors)


def test_balanced_chooses_memory_styles_jointly() -> None:
    """Two MVAUs, one BRAM18: the small one must take the BRAM so the big one fits in LUTRAM.

    Choosing each layer's cheapest folding on its own (a front of size 1) misses that; the full
    front finds what brute force finds.
    """
    b = LayerBuilder((1, 1, 1, 64), datatype("UINT4"))
    layers, tensors = b.mvau(64, "INT4", "UINT4").mvau(128, "INT4", "UINT4").build()
    for lut in (2_900, 3_200):
        boards = [tiny("a", lut=lut, bram=1, dsp=0)]
        expected = brute_force(layers, tensors, boards, replicate=False)
        assert plan(layers, tensors, boards, "balanced").fps == pytest.approx(expected, rel=1e-9)
        cut = plan(layers, tensors, boards, "balanced", front_limit=1)  # a cut front: the bound says so
        assert cut.front_truncated and cut.fps_bound >= expected >= cut.fps


def test_balanced_replicates_the_bottleneck_on_spare_boards() -> None:
    layers, tensors = toy_layers(with_block=False)
    boards = [tiny("a", lut=6_000, nic_mbps=50)] * 4
    expected = brute_force(layers, tensors, boards, replicate=True)
    got = plan(layers, tensors, boards, "balanced")
    alone = plan(layers, tensors, boards, "balanced", replicate=False)
    assert got.fps == pytest.approx(expected, rel=1e-9)
    assert got.fps > alone.fps and max(p.replicas for p in got.partitions) > 1
    assert got.boards_used <= 4


def test_link_override_limits_throughput() -> None:
    layers, tensors = toy_layers()
    boards = [tiny("a", lut=4_500, clock_mhz=100)] * 2
    fast = plan(layers, tensors, boards, "balanced", replicate=False)
    slow = plan(layers, tensors, boards, "balanced", replicate=False, link_gbps=1e-6)
    assert slow.fps < fast.fps and "link" in slow.limited_by
    assert slow.fps == pytest.approx(brute_force(layers, tensors, boards, False, link_gbps=1e-6), rel=1e-9)


def _check_consistent(p, layers, tensors) -> None:
    """Partitions tile the chain, fit their boards, and the plan's fps is their minimum."""
    assert p.partitions[0].start == 0 and p.partitions[-1].stop == len(layers)
    for a, b in itertools.pairwise(p.partitions):
        assert a.stop == b.start and layers[a.stop - 1].op_type not in ("FMPadding", "ConvolutionInputGenerator")
    for part in p.partitions:
        assert part.within_usable
        costs = [layer_cost(x, f, part.board, tensors) for x, f in zip(layers[part.start:part.stop], part.foldings,
                                                                        strict=True)]
        inputs, outputs = len(_crossing(layers, part.start)), len(_crossing(layers, part.stop))
        assert part.resources == partition_resources(costs, part.board, inputs=inputs, outputs=outputs)
        assert part.cycles == max(c.cycles for c in costs)
    assert p.fps == pytest.approx(min(part.fps for part in p.partitions))


def test_greedy_fills_boards_in_order() -> None:
    layers, tensors = toy_layers()
    boards = [tiny("a", lut=3_000), tiny("b", lut=3_500), tiny("a", lut=3_000)]
    p = plan(layers, tensors, boards, "greedy")
    assert [part.board.name for part in p.partitions] == ["a", "b", "a"][: len(p.partitions)]
    grp = groups(layers)
    for part in p.partitions[:-1]:
        # the next group would not have fitted on this board
        nxt = next(g for g in grp if g[0] == part.stop)
        folds = [*part.foldings, *[folding_from_attrs(x) for x in layers[part.stop:nxt[1]]]]
        more = [layer_cost(x, f, part.board, tensors) for x, f in zip(layers[part.start:nxt[1]], folds, strict=True)]
        assert not partition_resources(more, part.board).fits(part.board.usable)
    for part in p.partitions:
        assert all((f.pe, f.simd) == (1, 1) for f in part.foldings)  # FINN's default folding, untouched
    _check_consistent(p, layers, tensors)


def test_greedy_too_few_boards_says_how_many() -> None:
    layers, tensors = toy_layers()
    with pytest.raises(TooFewBoardsError) as exc:
        plan(layers, tensors, [tiny("a", lut=1_200)], "greedy")
    assert exc.value.needed["a"] >= 2 and "needs at least" in str(exc.value) and "1 board(s) given" in str(exc.value)
    needed = exc.value.needed["a"]
    assert len(plan(layers, tensors, [tiny("a", lut=1_200)] * needed, "greedy").partitions) == needed


def test_balanced_too_few_boards_says_how_many() -> None:
    layers, tensors = toy_layers()
    with pytest.raises(TooFewBoardsError) as exc:
        plan(layers, tensors, [tiny("a", lut=1_200)], "balanced")
    needed = exc.value.needed["a"]
    assert needed >= 2
    assert plan(layers, tensors, [tiny("a", lut=1_200)] * needed, "balanced").boards_used <= needed


def test_layer_too_large_names_layer_and_resource() -> None:
    b = LayerBuilder((1, 1, 1, 512), datatype("UINT4"))
    layers, tensors = b.mvau(512, "INT4", "UINT4").build()
    board = tiny("small", lut=3_000, bram=8)
    for strategy in ("balanced", "greedy"):
        with pytest.raises(LayerTooLargeError) as exc:
            plan(layers, tensors, [board] * 3, strategy)
        message = str(exc.value)
        assert "MVAU_0 (MVAU)" in message and "on small" in message
        assert "LUT needed" in message or "BRAM18 needed" in message


def test_unsupported_layer_and_strategy() -> None:
    layers, tensors = toy_layers()
    odd = [*layers[:1], dataclasses.replace(layers[1], op_type="StreamingConcat"), *layers[2:]]
    with pytest.raises(UnsupportedLayerError, match="StreamingConcat"):
        plan(odd, tensors, [tiny("a", lut=60_000)], "balanced")
    with pytest.raises(PartitionError, match="unknown strategy"):
        plan(layers, tensors, [tiny("a", lut=60_000)], "fastest")


def test_plan_rows_and_power() -> None:
    layers, tensors = toy_layers()
    p = plan(layers, tensors, [tiny("a", lut=4_500)] * 2, "balanced")
    rows = p.rows()
    assert [r["partition"] for r in rows] == list(range(len(p.partitions)))
    assert set(rows[0]) >= {"board", "layers", "lut_pct", "bram_pct", "dsp_pct", "cycles", "fps", "bytes_out",
                            "power_w"}
    assert p.power_w == pytest.approx(sum(part.power_w * part.replicas for part in p.partitions))
    assert p.power_w > 0.6 * p.boards_used  # every used board draws at least PS + PL static (0.6 W)


def test_mobilenet_v1_on_six_zedboards() -> None:
    layers, tensors = mobilenet_v1_w4a4()
    zed = parse_board_list("6")
    balanced = plan(layers, tensors, zed, "balanced")
    assert all(part.within_usable for part in balanced.partitions)
    assert balanced.fps > 1.5 * 118.3  # the reference paper measured 118.3 fps on 6 Zedboards
    assert balanced.boards_used <= 6
    # The paper's method (FINN SetFolding, fill in order) does not fit 6 boards under this cost model.
    folds = finn_set_folding(layers, load_board("zedboard"), tensors, 100e6 / 118.3)
    with pytest.raises(TooFewBoardsError) as exc:
        plan(layers, tensors, zed, "greedy", greedy_foldings=folds)
    greedy = plan(layers, tensors, parse_board_list(str(exc.value.needed["zedboard"])), "greedy", greedy_foldings=folds)
    assert greedy.fps < balanced.fps


@pytest.mark.parametrize("seed", range(4))
def test_more_resources_cheaper_terms_and_looser_limits_never_lower_the_fps(seed: int) -> None:
    """Monotone, and equal to brute force, on small chains: the exact search (no front limit)."""
    rng = np.random.default_rng(seed)
    layers, tensors = toy_layers(with_block=bool(seed % 2))
    lut = float(rng.integers(1_300, 2_600))
    base = [tiny("a", lut=lut, bram=2, dsp=2)] * int(rng.integers(2, 4))
    exact = plan(layers, tensors, base, "balanced", replicate=False, front_limit=None)
    assert exact.fps == pytest.approx(brute_force(layers, tensors, base, replicate=False), rel=1e-9)
    assert exact.gap == 0.0 and not exact.front_truncated
    roomier = [tiny("a", lut=lut * 1.3, bram=3, dsp=3)] * len(base)
    free_fifos = CostConfig(fifo_depth=0)
    for other in (plan(layers, tensors, roomier, "balanced", replicate=False, front_limit=None),
                  plan(layers, tensors, base, "balanced", replicate=False, front_limit=None, cfg=free_fifos),
                  plan(layers, tensors, base, "balanced", replicate=False, front_limit=[1, 4, None])):
        assert other.fps >= exact.fps * (1 - 1e-12)
    # a cut front never claims more than the exact answer, and its bound never claims less
    cut = plan(layers, tensors, base, "balanced", replicate=False, front_limit=1)
    assert cut.fps <= exact.fps * (1 + 1e-12) <= cut.fps_bound * (1 + 1e-12)


def residual_chain():
    """MVAU 2->4, a residual block (DuplicateStreams, two 1x1 MVAUs, AddStreams), Thresholding; 4x4 UINT2."""
    b = LayerBuilder((1, 4, 4, 2), datatype("UINT2"))
    b.mvau(4, "INT2", "UINT2")
    block_in, dt = b.current, b.dtype
    attrs = {"NumChannels": 4, "PE": 1, "NumOutputStreams": 2, "inputDataType": dt.name, "numInputVectors": (1, 4, 4)}
    skip = "DuplicateStreams_0_out1"
    b._emit("DuplicateStreams", attrs, b.shape, dt)
    b.layers[-1].extra_outputs = (skip,)
    b.tensors[skip] = b.tensors[b.current]
    b.mvau(4, "INT2", "UINT2").mvau(4, "INT2", "UINT2")
    add = {"NumChannels": 4, "PE": 1, "inputDataType": dt.name, "numInputVectors": (1, 4, 4), "inFIFOPixels": (0, 1)}
    b._emit("AddStreams", add, b.shape, datatype("UINT3"))
    b.layers[-1].extra_inputs = (skip,)
    b._emit("Thresholding", {"NumChannels": 4, "PE": 1, "numSteps": 3, "inputDataType": "UINT3",
                             "outputDataType": "UINT2", "ActVal": 0}, b.shape, datatype("UINT2"))
    assert block_in in b.layers[1].inputs
    return b.build()


RESIDUAL_CASES = [  # label, boards, whether the optimum cuts inside the block
    ("two boards", [tiny("a", lut=1_200, bram=2, dsp=2)] * 2, True),
    ("three boards", [tiny("a", lut=900, bram=2, dsp=2)] * 3, True),
    ("slow link", [tiny("a", lut=1_200, bram=2, dsp=2, nic_mbps=0.01)] * 3, True),  # link-bound: both tensors' bytes
    ("roomy boards", [tiny("a", lut=1_400, bram=2, dsp=2)] * 3, False),  # the block fits one board
    # cutting inside would pay an IODMA more on both boards: the optimum goes around the block
    # (with free IODMAs it cuts inside, as "two boards" does)
    ("dear IODMAs", [dataclasses.replace(tiny("a", lut=1_350, bram=2, dsp=2), iodma=Resources(lut=300, ff=300))] * 2,
     False),
]


@pytest.mark.parametrize(("label", "boards", "inside"), RESIDUAL_CASES, ids=[c[0] for c in RESIDUAL_CASES])
def test_balanced_cuts_inside_a_residual_block_as_brute_force(label: str, boards: list[Board], inside: bool) -> None:
    """Cuts inside the block are allowed, each charged every crossing tensor's bytes, and no board passes
    a tensor on untouched; the balanced search equals the brute force over every cut set."""
    layers, tensors = residual_chain()
    expected = brute_force(layers, tensors, boards, replicate=False)
    got = plan(layers, tensors, boards, "balanced", replicate=False)
    assert got.fps == pytest.approx(expected, rel=1e-9)
    _check_consistent(got, layers, tensors)
    assert any(len(_crossing(layers, p.start)) == 2 for p in got.partitions[1:]) == inside
    for before, after in itertools.pairwise(got.partitions):
        assert before.bytes_out == after.bytes_in == sum(
            packed_size(tensors[n].num_elements, tensors[n].dtype) for n in _crossing(layers, after.start))


def test_a_cut_inside_a_block_pays_an_iodma_per_further_tensor() -> None:
    """The plan's resources for a cut inside the block hold one extra IODMA on each board (the first has two
    outputs, the second two inputs), exactly board.iodma; a charge too large for the boards rules the cut out."""
    layers, tensors = residual_chain()
    free = tiny("a", lut=1_200, bram=2, dsp=2)
    dear = dataclasses.replace(free, iodma=Resources(lut=100, ff=100, bram18=0.5))
    got = plan(layers, tensors, [dear] * 2, "balanced", replicate=False)
    assert len(got.partitions) == 2 and len(_crossing(layers, got.partitions[1].start)) == 2
    for part in got.partitions:
        costs = [layer_cost(x, f, dear, tensors) for x, f in zip(layers[part.start:part.stop], part.foldings,
                                                                  strict=True)]
        uncharged = partition_resources(costs, dear)
        assert part.resources - uncharged == Resources(lut=100, ff=100, bram18=0.5)
    assert partition_resources([], dear, inputs=2, outputs=3) == dear.shell + Resources(lut=300, ff=300, bram18=1.5)
    assert plan(layers, tensors, [free] * 2, "balanced", replicate=False).fps == got.fps
    with pytest.raises(TooFewBoardsError):  # 150 LUTs more per board: neither the cut nor one board fits
        plan(layers, tensors, [dataclasses.replace(free, iodma=Resources(lut=150, ff=150))] * 2, "balanced",
             replicate=False)

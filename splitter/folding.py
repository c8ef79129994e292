"""Legal FINN foldings, the cheapest folding meeting a cycle budget, coupled layer groups, FINN configs.

Legality follows FINN's SetFolding and layer constraints (docs/cost-model.md#folding-rules).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core.packing import packed_size
from splitter.cost import (
    COSTED_OPS,
    UNSUPPORTED_OPS,
    CostConfig,
    CostError,
    Folding,
    LayerCost,
    Resources,
    boundary_cost,
    layer_cost,
)
from splitter.cost.compute import accumulator_layer, mvau_rtl_possible
from splitter.cost.errors import UnsupportedLayerError
from splitter.cost.front import pareto_mask
from splitter.cost.model import folding_from_attrs
from splitter.graph import Layer, TensorSpec, dtype_attr, pair

if TYPE_CHECKING:
    from splitter.boards import Board

# A cut right after these layers would ship a padded or im2col-expanded tensor between boards.
# After DuplicateStreams both copies would cross: the same values twice on the wire (and one QONNX tensor).
NO_CUT_AFTER = frozenset({"FMPadding", "ConvolutionInputGenerator", "DuplicateStreams"})
# FINN folding-config attributes each op type takes (post-specialization names differ only by suffix).
FOLDING_ATTRS = {
    "MVAU": ("PE", "SIMD", "ram_style", "resType", "mem_mode"),
    "VVAU": ("PE", "SIMD", "ram_style", "resType", "mem_mode"),
    "ConvolutionInputGenerator": ("SIMD", "parallel_window", "ram_style"),
    "FMPadding": ("SIMD",),
    "Thresholding": ("PE",),
    "ChannelwiseOp": ("PE", "ram_style"),
    "Pool": ("PE",),
    "GlobalAccPool": ("PE",),
    "LabelSelect": ("PE",),
    "StreamingMaxPool": (),
    "DuplicateStreams": ("PE",),
    "AddStreams": ("PE",),
}


class CycleTargetError(CostError):
    """A layer that cannot meet a cycle budget even with its fastest legal folding."""

    def __init__(self, layer: Layer, target: float, fastest: Folding, cycles: int) -> None:
        super().__init__(
            f"layer {layer.name!r} ({layer.op_type}) cannot meet {target:,.0f} cycles per frame: its fastest "
            f"legal folding ({fastest}) takes {cycles:,} cycles"
        )
        self.layer_name, self.target, self.fastest, self.cycles = layer.name, target, fastest, cycles


def divisors(n: int) -> list[int]:
    """Positive divisors of n, ascending."""
    return [d for d in range(1, n + 1) if n % d == 0]


def _mem_styles(board: Board) -> list[str]:
    styles = ["block", "distributed"]
    return [*styles, "ultra"] if board.resources.uram > 0 else styles


def legal_foldings(layer: Layer, board: Board, cfg: CostConfig | None = None) -> list[Folding]:
    """Every folding FINN accepts for `layer` on `board`: SetFolding's divisor rules, memory styles, and
    for MVAU/VVAU the implementation: thresholds embedded or standalone, MVAU_hls or MVAU_rtl, LUT or DSP."""
    cfg = cfg or CostConfig()
    op, a = layer.op_type, layer.attrs
    if op in UNSUPPORTED_OPS or op not in COSTED_OPS:
        raise UnsupportedLayerError(layer.name, op, UNSUPPORTED_OPS.get(op, "no cost model"))
    if op == "MVAU":
        mw, w_bits = int(a["MW"]), dtype_attr(layer, "weightDataType").bitwidth
        simds = [s for s in divisors(mw) if s * 1024 >= mw]  # HLS MVAU needs SIMD >= MW/1024
        if cfg.mvau_wwidth_max:
            simds = [s for s in simds if s == 1 or s * w_bits <= cfg.mvau_wwidth_max]
        base = [Folding(p, s, m) for s in simds for p in divisors(int(a["MH"])) for m in _mem_styles(board)]
        return [v for f in base for v in _implementations(layer, f, board, cfg)]
    if op == "VVAU":
        channels, (kh, kw) = int(a["Channels"]), pair(a["Kernel"])
        pe_simd = [(p, 1) for p in divisors(channels)] + ([(channels, kh * kw)] if kh * kw > 1 else [])
        base = [Folding(p, s, m) for p, s in pe_simd for m in _mem_styles(board)]
        return [v for f in base for v in _implementations(layer, f, board, cfg)]
    if op == "ConvolutionInputGenerator":
        channels, kernel = int(a["IFMChannels"]), pair(a["ConvKernelDim"])
        out = []
        for s in divisors(channels):
            windows = [0, 1] if s == channels and kernel != (1, 1) else [0]
            out += [Folding(simd=s, ram_style=m, parallel_window=pw) for pw in windows
                    for m in ["distributed", "block", *(["ultra"] if board.resources.uram > 0 else [])]]
        return out
    if op == "FMPadding":
        return [Folding(simd=s) for s in divisors(int(a["NumChannels"]))]
    if op == "StreamingMaxPool":
        return [Folding()]
    count = int(a["Labels"] if op == "LabelSelect" else a["Channels"] if op == "Pool" else a["NumChannels"])
    if op == "ChannelwiseOp":
        return [Folding(pe=p, ram_style=m) for p in divisors(count) for m in ("distributed", "block")]
    return [Folding(pe=p) for p in divisors(count)]


def _implementations(layer: Layer, f: Folding, board: Board, cfg: CostConfig) -> list[Folding]:
    """`f` with every implementation FINN can build for an MVAU/VVAU (docs/cost-model.md#implementations)."""
    activation = int(layer.attrs.get("noActivation", 0)) == 0 and "thresholds" in layer.params
    xnor = int(layer.attrs.get("binaryXnorMode", 0)) == 1
    out = []
    if not activation or cfg.thresholds != "standalone" or xnor:
        out += _node_styles(layer, f, board)  # thresholds embedded, or none
    if activation and not xnor and cfg.thresholds != "embedded":
        acc = accumulator_layer(layer)
        pe = _threshold_pe(layer, f)
        out += [dataclasses.replace(v, thresholds="standalone", thr_pe=pe) for v in _node_styles(acc, f, board)]
    return out


def _node_styles(layer: Layer, f: Folding, board: Board) -> list[Folding]:
    """One MVAU/VVAU node: HLS with LUT or DSP multipliers; MVAU_rtl (DSP only) where FINN builds it."""
    if layer.op_type == "MVAU" and int(layer.attrs.get("noActivation", 0)) == 1:
        rtl = [dataclasses.replace(f, res_type="dsp", impl_style="rtl")] if mvau_rtl_possible(
            layer, board, preferred=True) else []
        return [*(dataclasses.replace(f, res_type=r, impl_style="hls") for r in ("lut", "dsp")), *rtl]
    return [dataclasses.replace(f, res_type=r) for r in ("lut", "dsp")]


def _threshold_pe(layer: Layer, f: Folding) -> int:
    """The fewest PEs of a standalone Thresholding_rtl that keep it no slower than its MVAU/VVAU."""
    if layer.op_type == "MVAU":
        channels, fold = int(layer.attr("MH")), int(layer.attr("MW")) // f.simd  # cycles per output vector
        per_pe = channels // f.pe * fold
    else:
        (kh, kw), channels = pair(layer.attr("Kernel")), int(layer.attr("Channels"))
        per_pe = channels * kh * kw // (f.pe * f.simd)
    return next(d for d in divisors(channels) if channels // d <= per_pe)


def resource_score(res: Resources, board: Board) -> float:
    """The scalar "least resources" ranks by: the largest fraction of any available board resource."""
    fractions = res.fractions(board.available)
    return max(fractions.values())


def cheapest_folding(
    layer: Layer, board: Board, tensors: Mapping[str, TensorSpec], target_cycles: float,
    cfg: CostConfig | None = None,
) -> tuple[Folding, LayerCost]:
    """The legal folding with cycles <= target and the least resource_score (ties: fewer cycles)."""
    options = [(f, layer_cost(layer, f, board, tensors, cfg)) for f in legal_foldings(layer, board, cfg)]
    meeting = [fc for fc in options if fc[1].cycles <= target_cycles]
    if not meeting:
        fastest = min(options, key=lambda fc: fc[1].cycles)
        raise CycleTargetError(layer, target_cycles, fastest[0], fastest[1].cycles)
    return min(meeting, key=lambda fc: (resource_score(fc[1].resources, board), fc[1].cycles))


def cut_allowed(layers: Sequence[Layer], index: int) -> bool:
    """True when boards may be cut between layers[index - 1] and layers[index].

    Inside a residual block too: the cut then carries several tensors (`carried`).
    """
    if not 0 < index < len(layers):
        return False
    prev = layers[index - 1]
    # An MVAU/VVAU without activation outputs wide accumulators that the QONNX model never holds
    # as a tensor of their own (the bias add or threshold that follows is fused in the ONNX graph).
    accumulator = prev.op_type in ("MVAU", "VVAU") and int(prev.attrs.get("noActivation", 0))
    return prev.op_type not in NO_CUT_AFTER and not accumulator


def carried(layers: Sequence[Layer], index: int) -> list[str]:
    """Tensors a cut before layers[index] carries, in boundary order: written before it, read at or
    after it, ordered by the layer reading them first (as DataflowGraph.live_tensors).

    Between blocks it is one; inside a residual block two (the skip and the branch), sent as one
    frame in this order (docs/bundle.md#multi-tensor-boundaries).
    """
    if index <= 0:
        return [layers[0].input]
    if index >= len(layers):
        return [layers[-1].output]
    written = {layers[0].input} | {out for layer in layers[:index] for out in layer.outputs}
    return list(dict.fromkeys(name for layer in layers[index:] for name in layer.inputs if name in written))


def carried_bytes(layers: Sequence[Layer], tensors: Mapping[str, TensorSpec], index: int) -> int:
    """Bytes of one frame crossing a cut before layers[index]: every carried tensor, each packed densely."""
    return sum(packed_size(tensors[n].num_elements, tensors[n].dtype) for n in carried(layers, index))


def last_reader(layers: Sequence[Layer], index: int) -> int:
    """The last layer reading a tensor the cut before layers[index] carries: a partition starting there
    must reach past it, since no tensor passes a board untouched."""
    names = set(carried(layers, index))
    return max((i for i in range(index, len(layers)) if names & set(layers[i].inputs)), default=index)


def in_block(layers: Sequence[Layer], start: int, stop: int) -> bool:
    """True when layers [start, stop) lie inside a residual block: a cut at either end carries several tensors."""
    return len(carried(layers, start)) > 1 or len(carried(layers, stop)) > 1


def groups(layers: Sequence[Layer]) -> list[tuple[int, int]]:
    """Maximal runs [start, stop) of layers with no allowed cut inside (folded jointly)."""
    bounds = [0, *[i for i in range(1, len(layers)) if cut_allowed(layers, i)], len(layers)]
    return list(itertools.pairwise(bounds))


def _coupled(prev: Layer, prev_f: Folding, layer: Layer, f: Folding) -> bool:
    """FINN's folding couplings between neighbours (SetFolding and the SWG/VVAU stream order)."""
    dw_window = prev.op_type == "ConvolutionInputGenerator" and int(prev.attrs.get("depthwise", 0))
    if dw_window and layer.op_type in ("VVAU", "Pool"):
        return prev_f.simd == f.pe and prev_f.parallel_window == int(f.simd > 1)
    if prev.op_type == "FMPadding" and layer.op_type == "ConvolutionInputGenerator":
        return prev_f.simd == f.simd  # our choice: no width converter inside a padded conv
    return True


@dataclass(frozen=True)
class GroupOption:
    """One joint folding of a group of layers with its total cost (FIFOs and internal DWCs included)."""

    foldings: tuple[Folding, ...]
    costs: tuple[LayerCost, ...]
    resources: Resources
    cycles: int
    in_width: int
    out_width: int


# Partial combinations of a long group (a residual block is one) are pruned once there are more.
_PRUNE_AT = 4096


def group_options(
    layers: Sequence[Layer], board: Board, tensors: Mapping[str, TensorSpec], cfg: CostConfig | None = None,
    fixed: Sequence[Folding] | None = None, prune: bool = True, budgeted: bool = False,
) -> list[GroupOption]:
    """Every coupled legal folding of `layers` (one group) on `board`, or only `fixed` if given.

    With `prune`, a combination another one beats in every resource and in cycles, with the same
    input and output widths, is left out: it can never be the better choice. A group holding a fork
    or a join, or lying inside a residual block (`budgeted`, see `in_block`), takes one option per
    cycle budget instead (`_budgeted_options`), as the whole block did before it could be cut.
    """
    cfg = cfg or CostConfig()
    if fixed is None and (budgeted or any(x.extra_inputs or x.extra_outputs for x in layers)):
        return _budgeted_options(layers, board, tensors, cfg)
    return _joint_options(layers, board, tensors, cfg, fixed, prune)


def _joint_options(
    layers: Sequence[Layer], board: Board, tensors: Mapping[str, TensorSpec], cfg: CostConfig,
    fixed: Sequence[Folding] | None, prune: bool,
) -> list[GroupOption]:
    """group_options by enumerating every coupled combination."""
    choices = [[f] for f in fixed] if fixed is not None else [legal_foldings(x, board, cfg) for x in layers]
    costs = [[layer_cost(x, f, board, tensors, cfg) for f in fs] for x, fs in zip(layers, choices, strict=True)]
    res = [np.array([c.resources.as_tuple() for c in cs]) for cs in costs]
    in_w = [np.array([c.in_width for c in cs]) for cs in costs]
    out_w = [np.array([c.out_width for c in cs]) for cs in costs]
    cyc = [np.array([c.cycles for c in cs]) for cs in costs]
    link = _LinkCosts(cfg)
    picks = np.arange(len(choices[0]))[:, None]
    total = res[0] + link.table(np.array([-1]), in_w[0])[0]
    cycles, last_out = cyc[0].copy(), out_w[0].copy()
    for i in range(1, len(layers)):
        ok = np.array([[fixed is not None or _coupled(layers[i - 1], a, layers[i], b) for b in choices[i]]
                       for a in choices[i - 1]])
        state, option = np.nonzero(ok[picks[:, -1]])
        total = total[state] + res[i][option] + link.pairs(last_out[state], in_w[i][option])
        cycles = np.maximum(cycles[state], cyc[i][option])
        picks = np.concatenate([picks[state], option[:, None]], axis=1)
        last_out = out_w[i][option]
        if prune and fixed is None and len(picks) > _PRUNE_AT:
            # Exact: what follows depends only on this layer's folding (couplings, widths) and the
            # first input width, and a dominated partial combination stays dominated.
            keys = in_w[0][picks[:, 0]].astype(np.int64) * (1 << 32) + option
            table = np.concatenate([total, cycles[:, None].astype(float)], axis=1)
            kept = np.nonzero(pareto_mask(table, keys, total.sum(axis=1) + cycles))[0]
            total, cycles, picks, last_out = total[kept], cycles[kept], picks[kept], last_out[kept]
    first_in = in_w[0][picks[:, 0]]
    keep = np.arange(len(picks))
    if prune and fixed is None and len(picks) > 1:
        keys = first_in * (1 << 32) + last_out
        table = np.concatenate([total, cycles[:, None].astype(float)], axis=1)
        keep = np.nonzero(pareto_mask(table, keys, total.sum(axis=1) + cycles))[0]
    return [GroupOption(tuple(choices[i][j] for i, j in enumerate(picks[k])),
                        tuple(costs[i][j] for i, j in enumerate(picks[k])),
                        Resources(*(float(v) for v in total[k])), int(cycles[k]), int(first_in[k]), int(last_out[k]))
            for k in keep]


def _budgeted_options(
    layers: Sequence[Layer], board: Board, tensors: Mapping[str, TensorSpec], cfg: CostConfig,
) -> list[GroupOption]:
    """Options of a group holding a residual block (one group: no cut inside it), one per cycle budget.

    Its every joint folding would be the product of ten or more layers' options, too many to enumerate.
    Each coupled run of layers (FMPadding + sliding window, ...) is enumerated jointly; for each budget
    of cycles every run takes its option of least resource_score meeting it. The options trade cycles
    for resources along one line, not every mix of resource kinds (docs/cost-model.md#residual-branches).
    """
    runs, start = [], 0
    for i in range(1, len(layers) + 1):  # a run ends where mismatched foldings would still couple
        if i == len(layers) or _coupled(layers[i - 1], Folding(simd=2), layers[i], Folding(pe=3)):
            runs.append(_joint_options(layers[start:i], board, tensors, cfg, None, True))
            start = i
    options: dict[tuple[Folding, ...], GroupOption] = {}
    for budget in sorted({o.cycles for run in runs for o in run}):
        picks = [min((o for o in run if o.cycles <= budget), default=None,
                     key=lambda o: (resource_score(o.resources, board), o.cycles)) for run in runs]
        if any(p is None for p in picks):
            continue
        total = picks[0].resources
        for prev, nxt in itertools.pairwise(picks):  # each run's own total has its input FIFO, not the converter
            total = total + nxt.resources + boundary_cost(prev.out_width, nxt.in_width, cfg) \
                - boundary_cost(None, nxt.in_width, cfg)
        foldings = tuple(f for p in picks for f in p.foldings)
        options[foldings] = GroupOption(foldings, tuple(c for p in picks for c in p.costs), total,
                                        max(p.cycles for p in picks), picks[0].in_width, picks[-1].out_width)
    return list(options.values())


class _LinkCosts:
    """FIFO + width converter resources at a layer input, by (producer width, input width); -1: the IODMA."""

    def __init__(self, cfg: CostConfig) -> None:
        self.cfg = cfg
        self.memo: dict[tuple[int, int], np.ndarray] = {}

    def one(self, prev: int, width: int) -> np.ndarray:
        if (prev, width) not in self.memo:
            self.memo[(prev, width)] = np.array(boundary_cost(None if prev < 0 else prev, width, self.cfg).as_tuple())
        return self.memo[(prev, width)]

    def table(self, prevs: np.ndarray, widths: np.ndarray) -> np.ndarray:
        """(len(prevs), len(widths), R) resources."""
        return np.array([[self.one(int(p), int(w)) for w in widths] for p in prevs])

    def pairs(self, prevs: np.ndarray, widths: np.ndarray) -> np.ndarray:
        """(n, R) resources of each (prevs[k], widths[k])."""
        up, ip = np.unique(prevs, return_inverse=True)
        uw, iw = np.unique(widths, return_inverse=True)
        return self.table(up, uw)[ip.reshape(-1), iw.reshape(-1)]


def apply_folding(layer: Layer, folding: Folding) -> Layer:
    """A copy of `layer` whose attributes carry `folding` (parameters shared, not copied)."""
    attrs = dict(layer.attrs)
    attrs.update({k: v for k, v in _attr_values(layer, folding).items() if k in attrs or k in ("PE", "SIMD")})
    return dataclasses.replace(layer, attrs=attrs)


def _attr_values(layer: Layer, f: Folding) -> dict[str, object]:
    values = {"PE": f.pe, "SIMD": f.simd, "ram_style": f.ram_style, "resType": f.res_type,
              "parallel_window": f.parallel_window, "mem_mode": "internal_decoupled"}
    return {k: values[k] for k in FOLDING_ATTRS.get(layer.op_type, ())}


def finn_folding_config(
    layers: Sequence[Layer], foldings: Sequence[Folding], board: Board, tensors: Mapping[str, TensorSpec],
    cfg: CostConfig | None = None,
) -> dict[str, dict[str, object]]:
    """FINN folding-config JSON content for one partition, keyed by FINN's node names (MVAU_hls_0 ...).

    The entries come in the partition's node order; the names are counted per op type in the order
    FINN's flow puts the nodes (finn_node_order), which differs from ours only for branching graphs.
    """
    nodes: list[tuple[str, dict[str, object]]] = []
    counts = []
    for layer, f in zip(layers, foldings, strict=True):
        costs = layer_cost(layer, f, board, tensors, cfg).nodes
        nodes += [(node.impl, entry) for node, entry in zip(costs, node_entries(layer, f), strict=True)]
        counts.append(len(costs))
    names = [""] * len(nodes)
    counters: dict[str, int] = {}
    for i in finn_node_order(layers, counts):
        impl = nodes[i][0]
        names[i] = f"{impl}_{counters.get(impl, 0)}"
        counters[impl] = counters.get(impl, 0) + 1
    config: dict[str, dict[str, object]] = {"Defaults": {}}
    config.update((name, entry) for name, (_, entry) in zip(names, nodes, strict=True))
    return config


def finn_node_order(layers: Sequence[Layer], counts: Sequence[int]) -> list[int]:
    """Positions of the FINN nodes (`counts[k]` per layer k, in a row) in the order FINN's flow sorts them.

    qonnx's SortGraph (toposort_flatten) emits the nodes level by level, the nodes of one level by
    position; a node's level is the longest path to it. A sequence without branches keeps its order; the branches of a
    residual block interleave.
    """
    producer: dict[str, int] = {}
    depth: list[int] = []
    for layer, count in zip(layers, counts, strict=True):
        base = max((depth[producer[name]] + 1 for name in layer.inputs if name in producer), default=0)
        depth += [base + k for k in range(count)]
        producer.update(dict.fromkeys(layer.outputs, len(depth) - 1))
    return sorted(range(len(depth)), key=lambda i: (depth[i], i))


def node_entries(layer: Layer, f: Folding) -> list[dict[str, object]]:
    """The folding-config entry of each FINN node `layer` becomes (two with standalone thresholds)."""
    entry = _attr_values(layer, f)
    if entry.get("ram_style") == "ultra" and layer.op_type in ("MVAU", "VVAU"):
        entry["runtime_writeable_weights"] = 1  # FINN needs it for URAM weights off Versal
    return [entry, {"PE": f.thr_pe}] if f.standalone else [entry]


def finn_set_folding(
    layers: Sequence[Layer], board: Board, tensors: Mapping[str, TensorSpec], target_cycles: float,
    cfg: CostConfig | None = None, two_pass: bool = True, mvau_wwidth_max: int = 36,
) -> list[Folding]:
    """FINN's SetFolding (resource-blind, first divisor meeting cycles < target) as foldings."""
    cfg = cfg or CostConfig()
    folds = [folding_from_attrs(x) for x in layers]
    cyc = lambda i: layer_cost(layers[i], folds[i], board, tensors, cfg).cycles  # noqa: E731

    def sweep(i: int, field: str, values: list[int]) -> None:
        for v in values:
            folds[i] = dataclasses.replace(folds[i], **{field: v})
            if cyc(i) < target_cycles:
                break

    for i, layer in enumerate(layers):
        a = layer.attrs
        folds[i] = dataclasses.replace(folds[i], pe=1, simd=1, parallel_window=0)
        if layer.op_type == "MVAU":
            w_bits = dtype_attr(layer, "weightDataType").bitwidth
            for s in divisors(int(a["MW"])):
                prev, folds[i] = folds[i].simd, dataclasses.replace(folds[i], simd=s)
                if cyc(i) < target_cycles:
                    break
                if w_bits * s > mvau_wwidth_max:
                    folds[i] = dataclasses.replace(folds[i], simd=prev)
                    break
            sweep(i, "pe", divisors(int(a["MH"])))
        elif layer.op_type in ("VVAU", "Pool"):
            channels = int(a["Channels"])
            sweep(i, "pe", divisors(channels))
            if layer.op_type == "VVAU" and folds[i].pe == channels and cyc(i) > target_cycles:
                kh, kw = pair(a["Kernel"])
                sweep(i, "simd", divisors(kh * kw))
            if i and layers[i - 1].op_type == "ConvolutionInputGenerator":
                window = int(folds[i].simd > 1)
                folds[i - 1] = dataclasses.replace(folds[i - 1], simd=folds[i].pe, parallel_window=window)
        elif layer.op_type == "ConvolutionInputGenerator" and not int(a.get("depthwise", 0)):
            channels = int(a["IFMChannels"])
            sweep(i, "simd", divisors(channels))
            if folds[i].simd == channels and cyc(i) > target_cycles:
                folds[i] = dataclasses.replace(folds[i], parallel_window=1)
        elif layer.op_type in ("Thresholding", "ChannelwiseOp", "GlobalAccPool", "LabelSelect"):
            sweep(i, "pe", divisors(int(a["Labels"] if layer.op_type == "LabelSelect" else a["NumChannels"])))
        elif layer.op_type == "FMPadding":
            # FMPadding_rtl is not in SetFolding's SIMD op list (FINN v0.10.1 names only FMPadding_hls): it
            # keeps the SIMD that FINN's InferConvInpGen gave it, the number of channels.
            folds[i] = dataclasses.replace(folds[i], simd=int(a["NumChannels"]))
    worst = max(cyc(i) for i in range(len(layers)))
    if two_pass and worst > target_cycles:
        return finn_set_folding(layers, board, tensors, worst, cfg, False, mvau_wwidth_max)
    return folds

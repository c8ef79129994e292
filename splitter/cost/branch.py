"""Costs of the branching layers of residual networks: DuplicateStreams_hls, AddStreams_hls, and the skip FIFO.

FINN v0.10.1 estimates both layers at 0 resources (neither hls/duplicatestreams_hls.py nor
hls/addstreams_hls.py overrides HWCustomOp's estimates) and `get_exp_cycles` = numInputVectors x C / PE
for both; the LUTs here are corrections. A join's input FIFOs must hold what one branch makes
while the other still waits for rows of the fork's tensor (`inFIFOPixels`, lowering/residual.py),
else the fork stalls on a full stream and the pipeline deadlocks: the cost model charges those
FIFOs as FINN builds them, SRL up to depth 256 and Vivado FIFOs (BRAM/LUTRAM) above
(InsertFIFO's max_qsrl_depth; docs/cost-model.md#residual-branches).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from splitter.cost.errors import check_folding
from splitter.cost.memory import fifo, least_waste_memory
from splitter.cost.model import CostConfig, Folding, LayerCost, LayerIO, costed
from splitter.cost.resources import Resources
from splitter.graph import Layer

if TYPE_CHECKING:
    from splitter.boards import Board

MAX_SRL_DEPTH = 256  # FINN's InsertFIFO(max_qsrl_depth=256) in step_set_fifo_depths


def duplicate_cost(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """DuplicateStreams_hls: FINN estimates nothing; correction: a register and handshake per output stream."""
    channels, streams = int(layer.attr("NumChannels")), int(layer.attr("NumOutputStreams"))
    check_folding(layer, f, channels % f.pe == 0, f"PE={f.pe} must divide {channels}")
    width = f.pe * io.in_dtype.bitwidth
    control = Resources(lut=cfg.small_layer_base_lut + streams * width)
    return costed(Resources(), io.in_vectors * channels // f.pe, "DuplicateStreams_hls", width, width, cfg,
                  control=control)


def add_cost(layer: Layer, f: Folding, board: Board, io: LayerIO, cfg: CostConfig) -> LayerCost:
    """AddStreams_hls: FINN estimates nothing; corrections: PE adders, and the join's deep input FIFOs."""
    channels = int(layer.attr("NumChannels"))
    check_folding(layer, f, channels % f.pe == 0, f"PE={f.pe} must divide {channels}")
    width = f.pe * io.in_dtype.bitwidth
    control = Resources(lut=cfg.small_layer_base_lut + f.pe * io.out_dtype.bitwidth)
    # partition_resources charges one depth-cfg.fifo_depth FIFO per layer (the first input's)
    extra = Resources()
    for k, depth in enumerate(join_fifo_depths(layer, f.pe)):
        standard = fifo(width, cfg.fifo_depth, cfg.ff_per_lut)
        wanted = fifo_resources(width, max(depth, cfg.fifo_depth), cfg)
        extra = extra + (wanted if k else _minus(wanted, standard))
    return costed(Resources(), io.in_vectors * channels // f.pe, "AddStreams_hls", width,
                  f.pe * io.out_dtype.bitwidth, cfg, control=control, branch_fifo=extra)


def join_fifo_depths(layer: Layer, pe: int) -> tuple[int, ...]:
    """FIFO depth (stream words) at each input of an AddStreams with PE `pe` (FINN's inFIFODepths; min 2)."""
    channels = int(layer.attr("NumChannels"))
    pixels = layer.attrs.get("inFIFOPixels", (0, 0))
    pixels = (pixels,) if isinstance(pixels, int) else tuple(pixels)
    return tuple(max(2, math.ceil(int(p) * channels / pe)) for p in pixels)


def fifo_resources(width: int, depth: int, cfg: CostConfig) -> Resources:
    """A StreamingFIFO as FINN builds it: SRL (rtl) up to MAX_SRL_DEPTH, else a Vivado FIFO in BRAM/LUTRAM."""
    if depth <= MAX_SRL_DEPTH:
        return fifo(width, depth, cfg.ff_per_lut)
    padded = 8 * math.ceil(width / 8)
    control = 2 * math.ceil(math.log2(depth))
    return least_waste_memory(padded, depth, False) + Resources(lut=control, ff=cfg.ff_per_lut * control)


def _minus(a: Resources, b: Resources) -> Resources:
    """a - b, never below 0 per resource (the deep FIFO replaces the standard one)."""
    return Resources(*(max(0.0, x - y) for x, y in zip(a.as_tuple(), b.as_tuple(), strict=True)))

"""Resource and cycle cost model of FINN dataflow layers (formulas and sources: docs/cost-model.md).

Public surface: Folding, Resources, LayerCost, CostConfig, layer_cost (with the board's calibration,
docs/calibration.md), calibrated, boundary_cost, extra_iodmas, partition_resources, the op tables COSTED_OPS /
ZERO_COST_OPS / UNSUPPORTED_OPS and the errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from splitter.cost import branch, compute, stream
from splitter.cost.calibration import Calibration
from splitter.cost.errors import CostError, IllegalFoldingError, UnsupportedLayerError
from splitter.cost.memory import dwc, fifo
from splitter.cost.model import CostConfig, Folding, LayerCost, LayerIO, composite, folding_from_attrs, layer_io
from splitter.cost.resources import RESOURCE_NAMES, Overflow, Resources
from splitter.graph import Layer, TensorSpec

if TYPE_CHECKING:
    from splitter.boards import Board

__all__ = [
    "COSTED_OPS",
    "RESOURCE_NAMES",
    "UNSUPPORTED_OPS",
    "ZERO_COST_OPS",
    "CostConfig",
    "CostError",
    "Folding",
    "IllegalFoldingError",
    "LayerCost",
    "LayerIO",
    "Overflow",
    "Resources",
    "UnsupportedLayerError",
    "boundary_cost",
    "calibrated",
    "extra_iodmas",
    "folding_from_attrs",
    "layer_cost",
    "layer_io",
    "output_fifo_cost",
    "partition_resources",
]

CostFn = Callable[[Layer, Folding, "Board", LayerIO, CostConfig], LayerCost]

# One cost function per dataflow op type (splitter.graph.DATAFLOW_OP_TYPES).
COSTED_OPS: dict[str, CostFn] = {
    "MVAU": compute.mvau_cost,
    "VVAU": compute.vvau_cost,
    "ConvolutionInputGenerator": stream.swg_cost,
    "FMPadding": stream.fmpadding_cost,
    "Thresholding": stream.thresholding_cost,
    "ChannelwiseOp": stream.channelwise_cost,
    "Pool": stream.pool_cost,
    "GlobalAccPool": stream.globalaccpool_cost,
    "StreamingMaxPool": stream.maxpool_cost,
    "LabelSelect": stream.labelselect_cost,
    "DuplicateStreams": branch.duplicate_cost,
    "AddStreams": branch.add_cost,
}
# Layers that cost nothing on the FPGA. Empty on purpose: every dataflow layer takes cycles and
# logic; adding an entry here must be a deliberate, documented decision.
ZERO_COST_OPS: frozenset[str] = frozenset()
# FINN layers the cost model does not cost (the lowering never emits them).
UNSUPPORTED_OPS: dict[str, str] = {
    "StreamingConcat": "concatenation is not lowered (only residual adds join branches)",
    "StreamingEltwise": "elementwise ops on two streams other than an add are not lowered",
    "StreamingDataWidthConverter": "inserted by the cost model at boundaries, not a layer",
    "StreamingFIFO": "inserted by the cost model at boundaries, not a layer",
}


def layer_cost(
    layer: Layer, folding: Folding, board: Board, tensors: Mapping[str, TensorSpec], cfg: CostConfig | None = None
) -> LayerCost:
    """Resources and cycles per frame of `layer` folded as `folding` on `board`."""
    cfg = cfg or CostConfig()
    if layer.op_type in ZERO_COST_OPS:
        return LayerCost(Resources(), 0, layer.op_type, 0, 0)
    if layer.op_type in UNSUPPORTED_OPS:
        raise UnsupportedLayerError(layer.name, layer.op_type, UNSUPPORTED_OPS[layer.op_type])
    fn = COSTED_OPS.get(layer.op_type)
    if fn is None:
        raise UnsupportedLayerError(layer.name, layer.op_type, f"no cost model; known: {', '.join(COSTED_OPS)}")
    return calibrated(fn(layer, folding, board, layer_io(layer, tensors), cfg), board.calibration)


def calibrated(cost: LayerCost, calibration: Calibration | None) -> LayerCost:
    """`cost` plus the "calibration" correction of its impl (unchanged without factors for it)."""
    if calibration is None:
        return cost
    if cost.parts:  # each FINN node by its own factors
        return composite(tuple(calibrated(p, calibration) for p in cost.parts), cost.correction("inner_link"))
    term = calibration.correction_for(cost.impl, cost.resources, cost.finn)
    if not any(term.as_tuple()):
        return cost
    return dataclasses.replace(cost, corrections=(*cost.corrections, ("calibration", term)))


def boundary_cost(prev_out_width: int | None, in_width: int, cfg: CostConfig | None = None) -> Resources:
    """FIFO at a layer's input plus a width converter from the producer (None: fed by the IODMA)."""
    cfg = cfg or CostConfig()
    res = fifo(in_width, cfg.fifo_depth, cfg.ff_per_lut)
    if prev_out_width is not None:
        res = res + dwc(prev_out_width, in_width, cfg.ff_per_lut)
    return res


def output_fifo_cost(out_width: int, cfg: CostConfig | None = None) -> Resources:
    """The FIFO FINN inserts between a partition's last layer and its output IODMA."""
    cfg = cfg or CostConfig()
    return fifo(out_width, cfg.fifo_depth, cfg.ff_per_lut)


def extra_iodmas(board: Board, inputs: int = 1, outputs: int = 1) -> Resources:
    """The IODMAs a partition needs beyond the shell's one per side: one per further tensor of its input
    and output boundaries (FINN's InsertIODMA makes one per graph input and output;
    docs/cost-model.md#extra-iodmas)."""
    return board.iodma.scale(max(inputs - 1, 0) + max(outputs - 1, 0))


def partition_resources(costs: Sequence[LayerCost], board: Board, cfg: CostConfig | None = None,
                        inputs: int = 1, outputs: int = 1) -> Resources:
    """Everything one board holds: layers, a FIFO per layer input and output, DWCs, the shell, and an
    IODMA per tensor beyond the first of a boundary carrying `inputs` / `outputs` tensors."""
    total = board.shell + extra_iodmas(board, inputs, outputs)
    prev: int | None = None
    for cost in costs:
        total = total + cost.resources + boundary_cost(prev, cost.in_width, cfg)
        prev = cost.out_width
    if costs:
        total = total + output_fifo_cost(costs[-1].out_width, cfg)
    return total

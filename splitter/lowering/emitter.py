"""What a pattern handler may use of the lowering run: the `Emitter` protocol, and a compute layer in the making.

Handlers (compute.py, accumulator.py, activation.py, pooling.py, residual.py, window.py) are written
against this protocol, not against `Lowering` (lower.py), which walks the model and calls them: so the
walk imports its handlers and no handler imports the walk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np
import onnx

if TYPE_CHECKING:
    from core.datatypes import DataType, TensorSpec
    from splitter.graph import Layer
    from splitter.lowering.cursor import Cursor
    from splitter.lowering.onnx_view import OnnxView


class Emitter(Protocol):
    """The parts of one lowering run a handler uses: the model, the layers so far, emitting, the end."""

    view: OnnxView
    layers: list[Layer]
    tensors: dict[str, TensorSpec]
    tail: frozenset[str]  # nodes after the last quantized layer: the host may run them

    def emit(self, op_type: str, cur: Cursor, attrs: dict, out_shape: tuple[int, ...], out_dtype: DataType,
             params: dict | None = None, source: tuple[str, ...] = (), outputs: int = 1,
             extra_inputs: tuple[str, ...] = ()) -> str:
        """Append a layer reading `cur.tensor` (and `extra_inputs`); returns the name of its first output."""
        ...

    def record(self, cur: Cursor) -> None:
        """Remember where `cur`'s dataflow tensor appears in the ONNX model."""
        ...

    def finish(self, scale: np.ndarray | None, bias: np.ndarray | None = None) -> None:
        """End the walk; the host computes the output as integer * scale + bias."""
        ...

    def finish_on_host(self, tensor: str, scale: np.ndarray, bias: np.ndarray) -> None:
        """End the walk at ONNX tensor `tensor`; the host runs the rest of the model."""
        ...

    def shift_input(self, cur: Cursor, node: onnx.NodeProto) -> Cursor:
        """The declared input re-based so that padding it with integer 0 pads with 0.0."""
        ...


class ComputeLayer(NamedTuple):
    """An MVAU or VVAU before its activation is known: integer weights and accumulator meaning."""

    op_type: str  # "MVAU" (weights (K, C)) or "VVAU" (weights (C, K))
    attrs: dict
    weights: np.ndarray
    alpha: np.ndarray  # (C,) real value of one accumulator step
    beta: np.ndarray  # (C,) real value of accumulator 0
    bias: np.ndarray | None  # the node's real bias, applied before the epilogue
    source: tuple[str, ...]
    xnor: bool = False  # FINN's XNOR-popcount MVAU (lowering/binary.py)

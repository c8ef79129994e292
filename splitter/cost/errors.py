"""Errors the cost model reports: a layer it cannot cost, or a folding FINN would not accept."""

from __future__ import annotations

from core.errors import FinnsplitError


class CostError(FinnsplitError):
    """A layer cannot be costed as given."""


class UnsupportedLayerError(CostError):
    """A dataflow layer type with no cost model (or one a chain of boards cannot hold)."""

    def __init__(self, layer_name: str, op_type: str, why: str) -> None:
        super().__init__(f"unsupported layer {layer_name!r} (op type {op_type}): {why}")
        self.layer_name = layer_name
        self.op_type = op_type


class IllegalFoldingError(CostError):
    """A folding that violates FINN's rules for the layer (divisibility, SIMD/PE coupling, memory)."""

    def __init__(self, layer_name: str, op_type: str, folding: object, why: str) -> None:
        super().__init__(f"illegal folding {folding} for layer {layer_name!r} ({op_type}): {why}")
        self.layer_name = layer_name
        self.op_type = op_type


def check_folding(layer: object, folding: object, ok: bool, why: str) -> None:
    """IllegalFoldingError naming `layer` and `folding` unless `ok`."""
    if not ok:
        raise IllegalFoldingError(layer.name, layer.op_type, folding, why)  # type: ignore[attr-defined]

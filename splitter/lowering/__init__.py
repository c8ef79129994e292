"""Lowering of QONNX models to FINN-style dataflow layers (docs/lowering.md)."""

from splitter.lowering.lower import InputSpec, lower

__all__ = ["InputSpec", "lower"]

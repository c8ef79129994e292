"""Lowering of QONNX models to FINN-style dataflow layers (docs/lowering.md)."""

from splitter.lowering.lower import InputSpec, lower, lower_model

__all__ = ["InputSpec", "lower", "lower_model"]

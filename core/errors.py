"""Errors a user's model or options can cause; each carries the context needed to fix it."""

from __future__ import annotations


class FinnsplitError(Exception):
    """Base class of every error finnsplit reports to a user (the CLI prints these without a trace)."""


class LoweringError(FinnsplitError):
    """The model cannot be lowered to dataflow layers as given."""


class UnsupportedNodeError(LoweringError):
    """A node whose operation (or form of it) the lowering does not support."""

    def __init__(self, node_name: str, op_type: str, why: str) -> None:
        super().__init__(f"unsupported node {node_name!r} (op type {op_type}): {why}")
        self.node_name = node_name
        self.op_type = op_type


class InputQuantizationRequired(LoweringError):
    """The model's input is float and nothing in the model quantizes it."""


class ProgramFormatError(FinnsplitError):
    """A program file is malformed, truncated or of an unknown version."""

"""Errors a user's model or options can cause; each carries the context needed to fix it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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


@dataclass(frozen=True)
class Problem:
    """One problem of a config file: the field's path (`broker.port`, `boards[0].ssh`; "" for the whole
    file), what it must be, and what the file has."""

    field: str
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.field + ': ' if self.field else ''}expected {self.expected}, found {self.found}"


class ConfigError(FinnsplitError):
    """A config file (board file, fleet.yaml, agent.yaml, build.yaml) with problems; one line each,
    `<file>: <field path>: expected <what>, found <what>` (core/config.py, docs/config.md)."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = str(source)
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{self.source + ': ' if self.source else ''}{p}" for p in self.problems))

    def __reduce__(self) -> tuple:
        return (self.__class__, (self.source, self.problems))

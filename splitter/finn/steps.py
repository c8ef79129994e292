"""finnsplit's own FINN build step, placed in a partition's step list (docs/finn.md#our-iodmas).

Standard library only: the runner imports it wherever it runs; the step's body (iodma.py) imports
FINN and qonnx only when FINN's builder calls it, inside FINN's interpreter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

BITFILE_STEP = "step_synthesize_bitfile"  # its ZynqBuild runs FINN's InsertIODMA


def step_finnsplit_insert_iodma(model: Any, cfg: Any) -> Any:
    """The IODMAs of every graph input and output, each on the port its tensor uses (iodma.py)."""
    from splitter.finn.iodma import step_finnsplit_insert_iodma as step

    return step(model, cfg)


def _name(step: str | Callable[..., Any]) -> str:
    return step if isinstance(step, str) else getattr(step, "__name__", "")


def applies(steps: Sequence[str | Callable[..., Any]] | None) -> bool:
    """True when a step list (None: FINN's default) synthesizes a bitfile, so the IODMA step has a place."""
    return steps is None or any(_name(s) == BITFILE_STEP for s in steps)


def with_iodma_step(steps: Sequence[str | Callable[..., Any]]) -> list[str | Callable[..., Any]]:
    """`steps` with step_finnsplit_insert_iodma right before step_synthesize_bitfile (once)."""
    names = [_name(s) for s in steps]
    out = [s for s, n in zip(steps, names, strict=True) if n != step_finnsplit_insert_iodma.__name__]
    at = [_name(s) for s in out].index(BITFILE_STEP)
    return [*out[:at], step_finnsplit_insert_iodma, *out[at:]]

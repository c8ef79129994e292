"""Integer datatypes of dataflow tensors, named as FINN/QONNX name them (UINT4, INT8, BIPOLAR)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from core.errors import LoweringError

_INT_RE = re.compile(r"^(U?)INT(\d+)$")


@dataclass(frozen=True)
class DataType:
    """An integer datatype: its FINN name, bit width and value range."""

    name: str
    bitwidth: int
    signed: bool
    min: int
    max: int

    @property
    def is_bipolar(self) -> bool:
        """True for BIPOLAR, whose values are -1 and +1 (packed as 0 and 1)."""
        return self.name == "BIPOLAR"

    def allowed(self, values: np.ndarray) -> bool:
        """True when every value lies in this type's range (and is +-1 for BIPOLAR)."""
        values = np.asarray(values)
        if self.is_bipolar:
            return bool(np.all((values == -1) | (values == 1)))
        return bool(np.all((values >= self.min) & (values <= self.max)))

    def __str__(self) -> str:
        return self.name


def smallest_storage(lo: int, hi: int) -> np.dtype:
    """Smallest signed numpy integer type holding [lo, hi] (signed so arithmetic never wraps)."""
    for dt in (np.int8, np.int16, np.int32, np.int64):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    raise ValueError(f"range [{lo}, {hi}] does not fit in 64 bits")


def datatype(name: str) -> DataType:
    """The DataType called `name` (UINT4, INT8, BIPOLAR, BINARY); raises LoweringError if unknown."""
    name = name.upper()
    if name == "BIPOLAR":
        return DataType("BIPOLAR", 1, True, -1, 1)
    if name == "BINARY":
        return DataType("BINARY", 1, False, 0, 1)
    match = _INT_RE.match(name)
    if not match or not 1 <= int(match.group(2)) <= 64:
        raise LoweringError(f"unknown integer datatype {name!r} (expected UINTn, INTn, BIPOLAR or BINARY)")
    bits = int(match.group(2))
    if match.group(1):
        return DataType(name, bits, False, 0, (1 << bits) - 1)
    return DataType(name, bits, True, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def smallest_datatype(lo: int, hi: int) -> DataType:
    """Narrowest UINTn (if lo >= 0) or INTn holding every integer in [lo, hi]."""
    lo, hi = int(lo), int(hi)
    if lo >= 0:
        return datatype(f"UINT{max(1, int(hi).bit_length())}")
    bits = max((-lo - 1).bit_length(), hi.bit_length()) + 1
    return datatype(f"INT{bits}")


def threshold_datatype(thresholds: np.ndarray, idt: DataType) -> DataType:
    """Datatype of standalone thresholds on input `idt`: `idt` if it holds them (as FINN sets), else the smallest."""
    lo, hi = int(np.min(thresholds)), int(np.max(thresholds))
    if idt.min <= lo and hi <= idt.max:
        return idt
    return smallest_datatype(min(lo, idt.min), max(hi, idt.max))


@dataclass(frozen=True)
class TensorSpec:
    """An integer tensor between layers: NHWC shape and datatype."""

    name: str
    shape: tuple[int, ...]
    dtype: DataType

    @property
    def num_elements(self) -> int:
        """Number of values in one frame of this tensor."""
        return int(np.prod(self.shape))

"""FPGA resource vectors: LUT, FF, BRAM18, URAM, DSP and the LUTs used as memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RESOURCE_NAMES = ("lut", "ff", "bram18", "uram", "dsp", "lutram")


@dataclass(frozen=True)
class Overflow:
    """One resource a design needs more of than is available."""

    resource: str
    needed: float
    available: float

    def __str__(self) -> str:
        return f"{self.resource.upper()} needed {self.needed:,.0f} > available {self.available:,.0f}"


@dataclass(frozen=True)
class Resources:
    """Amounts of each FPGA resource; `lutram` counts the LUTs (already in `lut`) used as RAM or SRL."""

    lut: float = 0.0
    ff: float = 0.0
    bram18: float = 0.0
    uram: float = 0.0
    dsp: float = 0.0
    lutram: float = 0.0

    def __add__(self, other: Resources) -> Resources:
        return Resources(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def __sub__(self, other: Resources) -> Resources:
        return Resources(*(a - b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def scale(self, factor: float) -> Resources:
        """Every amount multiplied by `factor`."""
        return Resources(*(a * factor for a in self.as_tuple()))

    def times(self, other: Resources) -> Resources:
        """Element-wise product (e.g. totals times usable fractions)."""
        return Resources(*(a * b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[float, ...]:
        """The amounts in RESOURCE_NAMES order."""
        return (self.lut, self.ff, self.bram18, self.uram, self.dsp, self.lutram)

    def as_dict(self) -> dict[str, float]:
        """The amounts keyed by resource name."""
        return dict(zip(RESOURCE_NAMES, self.as_tuple(), strict=True))

    @classmethod
    def from_mapping(cls, values: Mapping[str, float]) -> Resources:
        """Build from a mapping with a subset of RESOURCE_NAMES as keys (missing ones are 0)."""
        unknown = set(values) - set(RESOURCE_NAMES)
        if unknown:
            raise ValueError(f"unknown resource(s) {sorted(unknown)}; expected {', '.join(RESOURCE_NAMES)}")
        return cls(**{k: float(v) for k, v in values.items()})

    def overflows(self, limit: Resources) -> list[Overflow]:
        """The resources where self exceeds `limit` (tolerating float rounding)."""
        return [
            Overflow(name, need, avail)
            for name, need, avail in zip(RESOURCE_NAMES, self.as_tuple(), limit.as_tuple(), strict=True)
            if need > avail + 1e-6
        ]

    def fits(self, limit: Resources) -> bool:
        """True when no resource exceeds `limit`."""
        return not self.overflows(limit)

    def fractions(self, total: Resources) -> dict[str, float]:
        """Each amount as a fraction of `total` (0 where both are 0, inf where only total is 0)."""
        out = {}
        for name, used, avail in zip(RESOURCE_NAMES, self.as_tuple(), total.as_tuple(), strict=True):
            out[name] = used / avail if avail else (0.0 if used <= 0 else float("inf"))
        return out

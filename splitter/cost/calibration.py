"""Per-board correction factors fitted from FINN's post-synthesis reports (docs/calibration.md).

A calibration holds, per FINN specialized op type ("impl") and resource, the ratio of what Vivado
synthesized to what was predicted for the nodes of that impl. It is stored beside the board file as
`<board-file-stem>.calibration.json`; `splitter.boards.load_board` reads it and `layer_cost` adds
the named correction "calibration" (`correction_for`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import FinnsplitError
from splitter.cost.resources import Resources

FORMAT = "finnsplit-calibration"
VERSION = 1
# Resources a post-synthesis report measures per node. Not lutram: FINN's post_synth_res extracts
# the SRL column but not "LUTRAMs", so the LUTs used as memory are not known per node.
CALIBRATED = ("lut", "ff", "bram18", "uram", "dsp")
# What the factors divide by. "finnsplit": the cost model's whole prediction (FINN's term plus the
# corrections), read from the bundle manifest. "finn": FINN's own estimate_layer_resources.json.
BASES = ("finnsplit", "finn")
SUFFIX = ".calibration.json"
FIT_NOTE = ("factor = sum of post-synthesis amounts / sum of predicted amounts over the nodes of one impl; "
            "a node whose prediction of a resource is 0 is skipped for that resource (no ratio to fit)")


class CalibrationError(FinnsplitError):
    """Reports or a calibration file that cannot be used to calibrate the cost model."""


class CalibrationFileError(CalibrationError):
    """A calibration file that is missing, not JSON, of another format version, or has a bad field."""

    def __init__(self, path: Path | str, field: str, expected: str, found: object) -> None:
        super().__init__(f"calibration file {path}: field {field!r}: expected {expected}, found {found!r}")
        self.path, self.field, self.expected, self.found = str(path), field, expected, found


def now() -> str:
    """The current UTC time as the `created` field writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class Sample:
    """One node: its impl, what was predicted for it and what synthesis measured (CALIBRATED keys)."""

    impl: str
    node: str
    predicted: Resources
    measured: Mapping[str, float]
    source: str = ""  # the post-synthesis report the node came from


@dataclass(frozen=True)
class Factor:
    """The fitted ratio post_synth / predicted of one resource over `samples` nodes of one impl."""

    impl: str
    resource: str
    factor: float
    samples: int
    predicted: float  # sum over the samples
    post_synth: float  # sum over the samples


@dataclass(frozen=True)
class Calibration:
    """Correction factors of one board; tuples only, so a Board holding one stays hashable."""

    board: str
    basis: str  # one of BASES
    factors: tuple[Factor, ...]
    sources: tuple[str, ...] = ()  # post_synth_resources.json files fitted from
    created: str = dataclasses.field(default_factory=now)  # UTC, ISO 8601

    def factor(self, impl: str, resource: str) -> float | None:
        """The factor of `resource` for nodes of `impl`, or None when none was fitted."""
        return next((f.factor for f in self.factors if f.impl == impl and f.resource == resource), None)

    def correction_for(self, impl: str, before: Resources, finn: Resources) -> Resources:
        """The "calibration" term of a layer of `impl` whose cost so far is `before` (FINN's term `finn`).

        Basis "finnsplit": (factor - 1) * before, so the calibrated amount is factor * before.
        Basis "finn": factor * finn - before, so the calibrated amount is factor * FINN's estimate
        (the factor already covers what the corrections add; scaling them too would count it twice).
        """
        base = before if self.basis == "finnsplit" else finn
        amounts = {}
        for name in CALIBRATED:
            f = self.factor(impl, name)
            if f is not None:
                amounts[name] = f * getattr(base, name) - getattr(before, name)
        return Resources.from_mapping(amounts)


def fit(samples: Iterable[Sample]) -> tuple[Factor, ...]:
    """Factors per (impl, resource): ratio of sums over the samples predicting a non-zero amount."""
    pairs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for s in samples:
        for name, measured in s.measured.items():
            predicted = getattr(s.predicted, name)
            if predicted > 0:  # a zero prediction has no ratio; its measured amount would skew the others'
                pairs.setdefault((s.impl, name), []).append((predicted, float(measured)))
    order = {name: i for i, name in enumerate(CALIBRATED)}
    factors = []
    for impl, name in sorted(pairs, key=lambda k: (k[0], order[k[1]])):
        predicted = sum(p for p, _ in pairs[impl, name])
        measured = sum(m for _, m in pairs[impl, name])
        factors.append(Factor(impl, name, measured / predicted, len(pairs[impl, name]), predicted, measured))
    return tuple(factors)


def calibration_path(board_file: str | Path) -> Path:
    """Where the calibration of the board defined in `board_file` is stored: beside it."""
    path = Path(board_file)
    return path.with_name(path.stem + SUFFIX)


def to_json(cal: Calibration) -> dict[str, Any]:
    """The calibration file's content (format: docs/calibration.md#the-calibration-file)."""
    factors: dict[str, dict[str, Any]] = {}
    for f in cal.factors:
        factors.setdefault(f.impl, {})[f.resource] = {
            "factor": f.factor, "samples": f.samples, "predicted": f.predicted, "post_synth": f.post_synth}
    return {"format": FORMAT, "version": VERSION, "board": cal.board, "basis": cal.basis, "created": cal.created,
            "sources": list(cal.sources), "note": FIT_NOTE, "factors": factors}


def write_calibration(cal: Calibration, path: str | Path) -> Path:
    """Write `cal` as JSON to `path` (parent directories created); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(to_json(cal), indent=2) + "\n")
    return out


def read_calibration(path: str | Path) -> Calibration:
    """Read and validate a calibration file (CalibrationFileError names the field and what was found)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise CalibrationFileError(path, "(file)", "a readable file", exc.strerror or str(exc)) from None
    except json.JSONDecodeError as exc:
        raise CalibrationFileError(path, "(file)", "JSON", f"{exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, Mapping):
        raise CalibrationFileError(path, "(top level)", "a JSON object", type(data).__name__)
    check = _Checker(path)
    if data.get("format") != FORMAT:
        raise CalibrationFileError(path, "format", repr(FORMAT), data.get("format"))
    if data.get("version") != VERSION:
        raise CalibrationFileError(path, "version", f"{VERSION} (this finnsplit's format version)",
                                   data.get("version"))
    basis = check.text(data, "basis")
    if basis not in BASES:
        raise CalibrationFileError(path, "basis", " or ".join(map(repr, BASES)), basis)
    sources = check.get(data, "sources", list, "a list of paths")
    return Calibration(board=check.text(data, "board"), basis=basis, factors=_read_factors(check, data),
                       sources=tuple(str(s) for s in sources), created=check.text(data, "created"))


def _read_factors(check: _Checker, data: Mapping) -> tuple[Factor, ...]:
    factors = []
    for impl, per_resource in check.get(data, "factors", dict, "an object {impl: {resource: ...}}").items():
        if not isinstance(per_resource, Mapping):
            raise CalibrationFileError(check.path, f"factors.{impl}", "an object {resource: ...}", per_resource)
        for name, entry in per_resource.items():
            field = f"factors.{impl}.{name}"
            if name not in CALIBRATED:
                raise CalibrationFileError(check.path, field, f"a resource of {', '.join(CALIBRATED)}", name)
            if not isinstance(entry, Mapping):
                raise CalibrationFileError(check.path, field, "an object {factor, samples, ...}", entry)
            samples = entry.get("samples")
            if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
                raise CalibrationFileError(check.path, f"{field}.samples", "an integer >= 1", samples)
            factors.append(Factor(impl, name, check.number(entry, "factor", field), samples,
                                  check.number(entry, "predicted", field), check.number(entry, "post_synth", field)))
    return tuple(factors)


class _Checker:
    """Typed field access with errors naming the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, data: Mapping, key: str, kind: type, expected: str) -> Any:
        if key not in data:
            raise CalibrationFileError(self.path, key, expected, "no such field")
        if not isinstance(data[key], kind):
            raise CalibrationFileError(self.path, key, expected, data[key])
        return data[key]

    def text(self, data: Mapping, key: str) -> str:
        value = self.get(data, key, str, "a non-empty string")
        if not value.strip():
            raise CalibrationFileError(self.path, key, "a non-empty string", value)
        return value

    def number(self, data: Mapping, key: str, prefix: str) -> float:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise CalibrationFileError(self.path, f"{prefix}.{key}", "a finite number >= 0", value)
        return float(value)

"""FINN's post-synthesis reports, paired with what was predicted, for `finnsplit calibrate` (cli/calibrate.py).

Reads report/post_synth_resources.json (FINN's step_synthesize_bitfile) and pairs each layer node
with what was predicted for it: the bundle manifest's `predicted.layers` when the report lies in a
bundle, else FINN's report/estimate_layer_resources.json. Layout and FINN sources: docs/calibration.md.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.manifest import Partition, load_manifest
from splitter.boards import BoardError, known_boards, load_board
from splitter.cost.calibration import (
    Calibration,
    CalibrationError,
    Factor,
    Sample,
    fit,
    now,
)
from splitter.cost.resources import Resources

POST_SYNTH = "post_synth_resources.json"
ESTIMATES = "estimate_layer_resources.json"
CONFIG = "dataflow_build_config.json"  # splitter.finn.config.CONFIG_FILE
FINN_OUTPUT = "finn_output"  # splitter.finn.config.OUTPUT_DIR: the bitstream build's output_dir
# FINN's Zynq and Vitis flows rename each kernel's nodes with GiveUniqueNodeNames(sdp_node.name + "_").
SDP_PREFIX = re.compile(r"^StreamingDataflowPartition_\d+_")
# Nodes FINN inserts around the layers; the cost model charges them as FIFOs, DWCs and the shell.
INFRASTRUCTURE = ("StreamingFIFO", "StreamingDataWidthConverter", "IODMA", "TLastMarker")
TOP = "(top)"  # post_synth_res: the whole design, shell included
FINN_KEYS = {"lut": "LUT", "bram18": "BRAM_18K", "uram": "URAM", "dsp": "DSP"}  # estimate_layer_resources.json


class ReportError(CalibrationError):
    """A FINN report, manifest or report directory that is not what calibration expects."""

    def __init__(self, path: Path | str, expected: str, found: object, field: str | None = None) -> None:
        where = f"{path}" + (f": field {field!r}" if field else "")
        super().__init__(f"{where}: expected {expected}, found {found}")
        self.path, self.field, self.expected, self.found = str(path), field, expected, found


class UnknownNodeError(ReportError):
    """A post-synthesis node that is no layer of the plan (or FINN estimate) it is paired with."""

    def __init__(self, path: Path, node: str, against: Path, known: list[str]) -> None:
        names = ", ".join(known[:12]) + (f", ... ({len(known)} in all)" if len(known) > 12 else "")
        super().__init__(path, f"a layer node of {against} ({names or 'none'})", repr(node), node)
        self.node = node


class MixedBoardsError(CalibrationError):
    """Reports of different boards (or of an unknown board) and no --board to say which is meant."""


@dataclass(frozen=True)
class ReportSet:
    """One FINN report directory, its board, and the prediction per FINN node name it is fitted against."""

    report_dir: Path
    board: str | None  # None: no file says
    board_from: str  # where `board` was read
    basis: str  # "finnsplit" (bundle manifest) or "finn" (FINN's estimate report)
    against: Path  # the file the predictions come from
    planned: Mapping[str, tuple[str, Resources]]  # node -> (impl, predicted resources)

    @property
    def post_synth(self) -> Path:
        """FINN's per-node post-synthesis report in this directory."""
        return self.report_dir / POST_SYNTH


def collect(args: list[Path], board: str | None) -> tuple[Calibration, list[Sample], list[str]]:
    """The calibration fitted from the reports `args` stand for, its samples, and notes for the user."""
    dirs = [d for arg in args for d in locate_reports(arg)]
    sets = [report_set(d) for d in dirs if (d / POST_SYNTH).is_file()]
    if not sets:
        raise ReportError(", ".join(map(str, args)), f"report/{POST_SYNTH} (written by FINN's step_synthesize_"
                          "bitfile)", f"none in {', '.join(map(str, dirs))}")
    bases = {rs.basis for rs in sets}
    if len(bases) > 1:
        raise CalibrationError("some reports lie in a bundle (predicted: its manifest) and some do not (predicted: "
                               "FINN's estimates); factors of two bases cannot be pooled: calibrate them apart")
    name, notes = resolve_board(sets, board)
    pairs: list[Sample] = []
    for rs in sets:
        found, more = samples(rs)
        pairs += found
        notes += more
    notes += [f"{d}: no {POST_SYNTH}, skipped" for d in dirs if not (d / POST_SYNTH).is_file()]
    return Calibration(name, bases.pop(), fit(pairs), tuple(str(rs.post_synth) for rs in sets), now()), pairs, notes


def locate_reports(arg: Path) -> list[Path]:
    """The report/ directories an argument stands for (bundle, partition, FINN output or report dir)."""
    if not arg.is_dir():
        raise ReportError(arg, "a bundle, partition, FINN output or report directory", "no such directory")
    if (arg / "manifest.json").is_file():
        _, parts = _partitions(arg)
        return [arg / p.dir / FINN_OUTPUT / "report" for p in parts]
    if arg.name == "report" or (arg / POST_SYNTH).is_file() or (arg / ESTIMATES).is_file():
        return [arg]
    if (arg / "report").is_dir():
        return [arg / "report"]
    if (arg / FINN_OUTPUT).is_dir() or (arg / CONFIG).is_file():
        return [arg / FINN_OUTPUT / "report"]
    found = ", ".join(sorted(p.name for p in arg.iterdir())[:8]) or "an empty directory"
    raise ReportError(arg, f"manifest.json (bundle), {FINN_OUTPUT}/ (partition), report/ (FINN output dir) or "
                      f"{POST_SYNTH} (report dir)", found)


def report_set(report_dir: Path) -> ReportSet:
    """`report_dir` with board and predictions: from the bundle manifest, else config and FINN's estimates."""
    report_dir = report_dir.resolve()
    part_dir = report_dir.parent.parent  # report/ is in FINN's output_dir, which is in the partition dir
    if (part_dir.parent / "manifest.json").is_file():
        path, parts = _partitions(part_dir.parent)
        for k, part in enumerate(parts):
            if part.dir == part_dir.name:
                layers = part.predicted.get("layers")
                return ReportSet(report_dir, part.board, f"{path} partitions[{k}]", "finnsplit", path,
                                 _plan_entries(path, f"partitions[{k}].predicted.layers", layers))
    config = part_dir / CONFIG
    board = _board_of_config(config) if config.is_file() else None
    estimates = report_dir / ESTIMATES
    if not estimates.is_file():
        raise ReportError(estimates, f"FINN's estimate report (the predicted side when no bundle manifest lies "
                          f"above {report_dir})", "no such file")
    nodes = _read_json(estimates, "FINN's per-node resource estimates")
    planned = {n: (_impl(n), _resources(estimates, n, e, FINN_KEYS)) for n, e in nodes.items() if n != "total"}
    return ReportSet(report_dir, board, str(config) if board else "", "finn", estimates, planned)


def samples(rs: ReportSet) -> tuple[list[Sample], list[str]]:
    """The layer nodes of one post-synthesis report paired with their predictions; notes for the user."""
    out, seen = [], set()
    for raw, entry in _read_json(rs.post_synth, "FINN's per-node post-synthesis report").items():
        node = SDP_PREFIX.sub("", raw)
        if raw == TOP or node.startswith(INFRASTRUCTURE):
            continue
        if node not in rs.planned:
            raise UnknownNodeError(rs.post_synth, raw, rs.against, sorted(rs.planned))
        impl, predicted = rs.planned[node]
        out.append(Sample(impl, node, predicted, _measured(rs.post_synth, raw, entry), str(rs.post_synth)))
        seen.add(node)
    missing = sorted(set(rs.planned) - seen)
    return out, [f"{rs.post_synth}: no post-synthesis entry for {', '.join(missing)}"] if missing else []


def resolve_board(sets: list[ReportSet], board: str | None) -> tuple[str, list[str]]:
    """The board the calibration is for: --board, else the one board every report names."""
    if board is not None:
        name = load_board(board).name
        return name, [f"{rs.report_dir} is of board {rs.board} ({rs.board_from}); fitted for {name} as --board says"
                      for rs in sets if rs.board and rs.board != name]
    unknown = [str(rs.report_dir) for rs in sets if not rs.board]
    if unknown:
        raise MixedBoardsError(f"which board are the reports of? {', '.join(unknown)}: no bundle manifest and no "
                               f"{CONFIG} naming a known board; give --board NAME")
    names = {rs.board for rs in sets}
    if len(names) > 1:
        which = "; ".join(f"{rs.report_dir}: {rs.board} ({rs.board_from})" for rs in sets)
        raise MixedBoardsError(f"reports of {len(names)} boards ({', '.join(sorted(names))}) and no --board: "
                               f"{which}; a calibration is per board: give --board NAME or calibrate each apart")
    return names.pop(), []


def format_table(factors: tuple[Factor, ...]) -> str:
    """One line per impl and resource: samples, predicted sum, post-synthesis sum, factor."""
    width = max([len("impl"), *(len(f.impl) for f in factors)])
    lines = [f"{'impl':<{width}}  resource  samples   predicted  post-synth   factor"]
    lines += [f"{f.impl:<{width}}  {f.resource:<8}  {f.samples:>7}  {f.predicted:>10,.1f}  {f.post_synth:>10,.1f}  "
              f"{f.factor:>7.4f}" for f in factors]
    return "\n".join(lines)


def unfittable(pairs: list[Sample], factors: tuple[Factor, ...]) -> list[str]:
    """(impl, resource) that synthesis used but every node predicted 0 of: no factor can scale 0."""
    fitted = {(f.impl, f.resource) for f in factors}
    sums: dict[tuple[str, str], float] = {}
    for s in pairs:
        for name, amount in s.measured.items():
            if (s.impl, name) not in fitted and amount:
                sums[s.impl, name] = sums.get((s.impl, name), 0.0) + amount
    return [f"{impl} {name}: post-synthesis {amount:,.0f} where every node predicts 0: no factor"
            for (impl, name), amount in sorted(sums.items())]


def _partitions(bundle: Path) -> tuple[Path, tuple[Partition, ...]]:
    """The manifest's path and its partitions (checksums not verified: FINN's build adds files)."""
    return bundle / "manifest.json", load_manifest(bundle, verify=False).partitions


def _plan_entries(path: Path, field: str, layers: object) -> dict[str, tuple[str, Resources]]:
    """(impl, prediction) per FINN node name of one partition's manifest `predicted.layers`."""
    if not isinstance(layers, (list, tuple)):
        raise ReportError(path, "a list of predicted layers (a bundle of this finnsplit)", repr(layers), field)
    out = {}
    for k, entry in enumerate(layers):
        if not isinstance(entry, Mapping):
            raise ReportError(path, "an object {node, impl, finn, corrections}", repr(entry), f"{field}[{k}]")
        node = _text(path, f"{field}[{k}].node", entry.get("node"))
        out[node] = (_text(path, f"{field}[{k}].impl", entry.get("impl")), _planned(path, f"{field}[{k}]", entry))
    return out


def _planned(path: Path, field: str, entry: Mapping[str, Any]) -> Resources:
    """finnsplit's prediction of a manifest layer: FINN's term plus every correction but "calibration".

    A bundle planned on a calibrated board carries that calibration's term; leaving it out keeps the
    factors relative to the uncalibrated cost, which is what layer_cost scales.
    """
    total = _resources(path, f"{field}.finn", entry.get("finn", {}), FINN_KEYS)
    corrections = entry.get("corrections", {})
    if not isinstance(corrections, Mapping):
        raise ReportError(path, "an object {name: {resource: amount}}", repr(corrections), f"{field}.corrections")
    for name, amounts in corrections.items():
        if name != "calibration":
            keys = {r: r for r in amounts} if isinstance(amounts, Mapping) else {}
            total = total + _resources(path, f"{field}.corrections.{name}", amounts, keys, signed=True)
    return total


def _measured(path: Path, node: str, entry: object) -> dict[str, float]:
    """FINN's post_synth_res keys as resources; a RAMB36 counts as two BRAM18s, SRL is not used."""
    if not isinstance(entry, Mapping):
        raise ReportError(path, "an object of resource counts (LUT, FF, BRAM_18K, ...)", repr(entry), node)
    keys = {"lut": "LUT", "ff": "FF", "uram": "URAM", "dsp": "DSP"}
    out = {name: _number(path, f"{node}.{key}", entry[key]) for name, key in keys.items() if key in entry}
    if "BRAM_18K" in entry or "BRAM_36K" in entry:
        out["bram18"] = (_number(path, f"{node}.BRAM_18K", entry.get("BRAM_18K", 0))
                         + 2 * _number(path, f"{node}.BRAM_36K", entry.get("BRAM_36K", 0)))
    return out


def _resources(path: Path, field: str, entry: object, keys: Mapping[str, str], signed: bool = False) -> Resources:
    """Resources from `entry`, reading resource `name` from key `keys[name]` (missing keys are 0)."""
    if not isinstance(entry, Mapping):
        raise ReportError(path, f"an object with {', '.join(keys.values()) or 'resource amounts'}", repr(entry), field)
    try:
        return Resources.from_mapping({name: _number(path, f"{field}.{key}", entry.get(key, 0), signed)
                                       for name, key in keys.items()})
    except ValueError as exc:
        raise ReportError(path, "resource names", str(exc), field) from None


def _board_of_config(path: Path) -> str | None:
    """The known board a FINN build config is for: by FINN's board name, else by a unique part."""
    config = _read_json(path, "a FINN build config")
    boards = []
    for known in known_boards():
        try:
            boards.append(load_board(known))
        except (BoardError, CalibrationError):
            continue  # a broken board file elsewhere does not decide which board this is
    finn_name = str(config.get("board", "")).lower()
    matches = [b for b in boards if finn_name and finn_name in (b.name.lower(), (b.finn_board or "").lower())]
    if len(matches) != 1:
        matches = [b for b in boards if b.part == config.get("fpga_part")]
    return matches[0].name if len(matches) == 1 else None


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ReportError(path, what, exc.strerror or str(exc)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(path, f"{what} in JSON", f"invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ReportError(path, f"{what}: a JSON object keyed by name", type(data).__name__)
    return data


def _number(path: Path, field: str, value: object, signed: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or (value < 0 and not signed):
        raise ReportError(path, "a finite number" if signed else "a number >= 0", repr(value), field)
    return float(value)


def _text(path: Path, field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ReportError(path, "a non-empty string", repr(value), field)
    return value


def _impl(node: str) -> str:
    """FINN's op type from a name GiveUniqueNodeNames gave ("MVAU_hls_0" -> "MVAU_hls")."""
    return re.sub(r"_\d+$", "", node)

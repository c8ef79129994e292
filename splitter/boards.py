"""Board definitions: resources, usable fractions, clock, NIC, shell overhead and power of a board.

Boards are YAML files (format: docs/cost-model.md#board-files), one per board, found in the
built-in boards/ directory, in directories listed in $FINNSPLIT_BOARD_PATH, or given as a path.
A `<board-file-stem>.calibration.json` beside a board file is loaded with it (docs/calibration.md).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from core.config import Range, Text, load_yaml
from core.errors import ConfigError, FinnsplitError, Problem
from splitter.cost.calibration import Calibration, CalibrationFileError, calibration_path, read_calibration
from splitter.cost.resources import Resources

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "boards"
# Used when a board file has no `usable:` section: FINN's platforms.py DEFAULT_RES_LIMITS.
DEFAULT_USABLE = Resources(lut=0.7, ff=0.5, bram18=0.8, uram=0.8, dsp=0.8, lutram=0.7)


class BoardError(FinnsplitError):
    """A board name, board list or board file that cannot be used."""


class UnknownBoardError(BoardError):
    """A board name with no board file."""

    def __init__(self, name: str, known: list[str]) -> None:
        near = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
        super().__init__(
            f"unknown board {name!r}{f' (did you mean {near[0]!r}?)' if near else ''}; known boards: "
            f"{', '.join(known) or '(none)'} (or give the path of a board YAML file, format in docs/cost-model.md)"
        )
        self.name = name
        self.known = known


class BoardFileError(BoardError, ConfigError):
    """A board file that is missing, not YAML, or has missing, unknown or malformed fields (each a Problem)."""

    @property
    def path(self) -> str:
        """The board file."""
        return self.source


Count = Annotated[float, Range(ge=0)]
Positive = Annotated[float, Range(gt=0)]
Fraction = Annotated[float, Range(gt=0, le=1)]


@dataclass(frozen=True)
class ResourceCounts:
    """A board file's amounts of every resource (`resources:`, `shell:`)."""

    lut: Count
    ff: Count
    bram18: Count
    uram: Count
    dsp: Count
    lutram: Count

    def amounts(self) -> Resources:
        """As a Resources vector."""
        return Resources(self.lut, self.ff, self.bram18, self.uram, self.dsp, self.lutram)


@dataclass(frozen=True)
class UsableFractions:
    """`usable:`: the fraction of each resource a partition may fill; an absent one is FINN's default."""

    lut: Fraction = DEFAULT_USABLE.lut
    ff: Fraction = DEFAULT_USABLE.ff
    bram18: Fraction = DEFAULT_USABLE.bram18
    uram: Fraction = DEFAULT_USABLE.uram
    dsp: Fraction = DEFAULT_USABLE.dsp
    lutram: Fraction = DEFAULT_USABLE.lutram

    def amounts(self) -> Resources:
        """As a Resources vector."""
        return Resources(self.lut, self.ff, self.bram18, self.uram, self.dsp, self.lutram)


@dataclass(frozen=True)
class DynamicPower:
    """`power.dynamic_mw_at_100mhz:`: mW per used unit at 100 MHz (LUTRAM is already in LUT: not counted)."""

    lut: Count
    ff: Count
    bram18: Count
    uram: Count
    dsp: Count
    lutram: Count = 0.0

    def amounts(self) -> Resources:
        """As a Resources vector."""
        return Resources(self.lut, self.ff, self.bram18, self.uram, self.dsp, self.lutram)


@dataclass(frozen=True)
class PowerSection:
    """`power:`: PS and PL static watts and the PL's dynamic power per resource."""

    ps_w: Count
    pl_static_w: Count
    dynamic_mw_at_100mhz: DynamicPower


@dataclass(frozen=True)
class BoardFile:
    """The schema of a board file (docs/cost-model.md#board-files); load_board makes a Board of it."""

    name: Text
    part: Text
    family: Literal["zynq7000", "zynqmp"]
    dsp_block: Literal["DSP48E1", "DSP48E2"]
    resources: ResourceCounts
    clock_mhz: Positive
    nic_gbps: Positive
    link_efficiency: Fraction
    iodma_width: Annotated[int, Range(gt=0)]
    power: PowerSection
    usable: UsableFractions = field(default_factory=UsableFractions)
    shell: ResourceCounts | None = None  # absent: no shell resources
    # one IODMA beyond the shell's two, for each further tensor of a boundary (docs/cost-model.md#extra-iodmas);
    # absent: none charged
    iodma: ResourceCounts | None = None
    finn_board: Text | None = None  # FINN's pynq_part_map key; absent or null: FINN does not know the board


@dataclass(frozen=True)
class PowerModel:
    """Board power: PS and PL static power plus PL dynamic power per used resource unit."""

    ps_w: float
    pl_static_w: float
    dynamic_mw_at_100mhz: Resources  # mW per used unit at 100 MHz (lutram unused: already in lut)

    def watts(self, used: Resources, clock_mhz: float) -> float:
        """Predicted board power with `used` resources clocked at `clock_mhz`."""
        per_unit = self.dynamic_mw_at_100mhz.times(used).as_dict()
        per_unit.pop("lutram")
        return self.ps_w + self.pl_static_w + sum(per_unit.values()) * 1e-3 * clock_mhz / 100.0


@dataclass(frozen=True)
class Board:
    """One board type as a board file describes it."""

    name: str
    part: str
    family: str
    dsp_block: str
    resources: Resources
    usable_fraction: Resources
    clock_mhz: float
    nic_gbps: float
    link_efficiency: float
    iodma_width: int
    shell: Resources
    power: PowerModel
    finn_board: str | None = None  # FINN's name for the board (pynq_part_map key); None: not known to FINN
    path: str = ""
    calibration: Calibration | None = None  # fitted factors from <stem>.calibration.json beside `path`
    iodma: Resources = field(default_factory=Resources)  # one IODMA beyond the shell's two (several tensors)

    @property
    def usable(self) -> Resources:
        """Resources a partition may fill in total (shell included)."""
        return self.resources.times(self.usable_fraction)

    @property
    def available(self) -> Resources:
        """Resources left for dataflow layers once the shell is placed."""
        return self.usable - self.shell

    @property
    def link_bytes_per_s(self) -> float:
        """Payload bytes per second the board's NIC sustains in one direction."""
        return self.nic_gbps * self.link_efficiency * 1e9 / 8

    @property
    def clock_hz(self) -> float:
        """PL clock in Hz."""
        return self.clock_mhz * 1e6


def search_dirs() -> list[Path]:
    """Directories searched for board files: $FINNSPLIT_BOARD_PATH entries, then the built-in one."""
    extra = [Path(p) for p in os.environ.get("FINNSPLIT_BOARD_PATH", "").split(os.pathsep) if p]
    return [*extra, BUILTIN_DIR]


def known_boards() -> list[str]:
    """Names of every board file found in the search directories, sorted."""
    names = {p.stem for d in search_dirs() if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(names)


def load_board(name_or_path: str | Path) -> Board:
    """The board called `name_or_path` (case-insensitive) or defined by the YAML file at that path."""
    text = str(name_or_path)
    path = Path(text)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        if not path.is_file():
            raise BoardFileError(path, [Problem("", "a board file", "no such file")])
        return _parse(path, expected_name=None)
    for directory in search_dirs():
        candidate = directory / f"{text.lower()}.yaml"
        if candidate.is_file():
            return _parse(candidate, expected_name=text.lower())
    raise UnknownBoardError(text, known_boards())


def parse_board_list(spec: str | int, default_board: str = "zedboard") -> list[Board]:
    """Boards of a chain from "6" (six of `default_board`) or "zedboard:4,pynq-z2:2"."""
    text = str(spec).strip()
    if text.lstrip("+-").isdigit():  # a count, also a negative one (not a board named "-1")
        count = int(text)
        if count < 1:
            raise BoardError(f"--boards {text}: need at least one board (a count >= 1, or NAME[:COUNT],...)")
        return [load_board(default_board)] * count
    boards: list[Board] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, count_text = item.partition(":")
        count_text = count_text.strip() or "1"
        if not name.strip() or not count_text.isdigit() or int(count_text) < 1:
            raise BoardError(f"--boards {text!r}: malformed entry {item!r} (expected NAME[:COUNT], COUNT >= 1)")
        boards.extend([load_board(name.strip())] * int(count_text))
    if not boards:
        raise BoardError(f"--boards {text!r}: expected a count or NAME[:COUNT],... (e.g. zedboard:4,pynq-z2:2)")
    return boards


def _parse(path: Path, expected_name: str | None) -> Board:
    """Read and validate one board file (its schema: BoardFile)."""
    spec = load_yaml(BoardFile, path, error=BoardFileError, what="a board file")
    name = spec.name.strip()
    if expected_name is not None and name.lower() != expected_name:
        raise BoardFileError(path, [Problem("name", f"{expected_name!r} (the file is named {path.name})",
                                            repr(name))])
    return Board(
        name=name,
        part=spec.part.strip(),
        family=spec.family,
        dsp_block=spec.dsp_block,
        resources=spec.resources.amounts(),
        usable_fraction=spec.usable.amounts(),
        clock_mhz=spec.clock_mhz,
        nic_gbps=spec.nic_gbps,
        link_efficiency=spec.link_efficiency,
        iodma_width=spec.iodma_width,
        shell=spec.shell.amounts() if spec.shell is not None else Resources(),
        iodma=spec.iodma.amounts() if spec.iodma is not None else Resources(),
        power=PowerModel(ps_w=spec.power.ps_w, pl_static_w=spec.power.pl_static_w,
                         dynamic_mw_at_100mhz=spec.power.dynamic_mw_at_100mhz.amounts()),
        finn_board=spec.finn_board.strip() if spec.finn_board is not None else None,
        path=str(path),
        calibration=_calibration(path, name),
    )


def _calibration(board_file: Path, name: str) -> Calibration | None:
    """The calibration stored beside `board_file`, if any; it must be of the board called `name`."""
    path = calibration_path(board_file)
    if not path.is_file():
        return None
    calibration = read_calibration(path)
    if calibration.board != name:
        raise CalibrationFileError(path, "board", f"{name!r} (the board file {board_file.name} beside it)",
                                   calibration.board)
    return calibration

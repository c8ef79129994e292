"""Board definitions: resources, usable fractions, clock, NIC, shell overhead and power of a board.

Boards are YAML files (format: docs/cost-model.md#board-files), one per board, found in the
built-in boards/ directory, in directories listed in $FINNSPLIT_BOARD_PATH, or given as a path.
A `<board-file-stem>.calibration.json` beside a board file is loaded with it (docs/calibration.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from core.errors import FinnsplitError
from splitter.cost.calibration import Calibration, CalibrationFileError, calibration_path, read_calibration
from splitter.cost.resources import RESOURCE_NAMES, Resources

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "boards"
FAMILIES = ("zynq7000", "zynqmp")
DSP_BLOCKS = ("DSP48E1", "DSP48E2")
# Used when a board file has no `usable:` section: FINN's platforms.py DEFAULT_RES_LIMITS.
DEFAULT_USABLE = Resources(lut=0.7, ff=0.5, bram18=0.8, uram=0.8, dsp=0.8, lutram=0.7)


class BoardError(FinnsplitError):
    """A board name, board list or board file that cannot be used."""


class UnknownBoardError(BoardError):
    """A board name with no board file."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"unknown board {name!r}; known boards: {', '.join(known) or '(none)'} "
            f"(or give the path of a board YAML file, format in docs/cost-model.md)"
        )
        self.name = name
        self.known = known


class BoardFileError(BoardError):
    """A board file that is missing, not YAML, or has a missing or malformed field."""

    def __init__(self, path: Path | str, why: str) -> None:
        super().__init__(f"board file {path}: {why}")
        self.path = str(path)


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
            raise BoardFileError(path, "no such file")
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
    """Read and validate one board file."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BoardFileError(path, f"cannot read YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise BoardFileError(path, "expected a mapping of fields at the top level")
    fields = _Fields(path, data)
    name = fields.text("name")
    if expected_name is not None and name.lower() != expected_name:
        raise BoardFileError(path, f"field 'name' is {name!r} but the file is named {path.name}")
    power = fields.section("power")
    return Board(
        name=name,
        part=fields.text("part"),
        family=fields.choice("family", FAMILIES),
        dsp_block=fields.choice("dsp_block", DSP_BLOCKS),
        resources=fields.resources("resources", required=True),
        usable_fraction=fields.fractions("usable"),
        clock_mhz=fields.number("clock_mhz", positive=True),
        nic_gbps=fields.number("nic_gbps", positive=True),
        link_efficiency=fields.fraction("link_efficiency"),
        iodma_width=int(fields.number("iodma_width", positive=True)),
        shell=fields.resources("shell", required=False),
        power=PowerModel(
            ps_w=power.number("ps_w"),
            pl_static_w=power.number("pl_static_w"),
            dynamic_mw_at_100mhz=power.resources("dynamic_mw_at_100mhz", required=True, all_names=False),
        ),
        finn_board=fields.optional_text("finn_board"),
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


class _Fields:
    """Typed access to one mapping of a board file, with errors naming file and field."""

    def __init__(self, path: Path, data: Mapping, prefix: str = "") -> None:
        self.path, self.data, self.prefix = path, data, prefix

    def _get(self, key: str) -> object:
        if key not in self.data:
            raise BoardFileError(self.path, f"missing field '{self.prefix}{key}'")
        return self.data[key]

    def fail(self, key: str, why: str, value: object) -> BoardFileError:
        return BoardFileError(self.path, f"field '{self.prefix}{key}' {why}, got {value!r}")

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be a non-empty string", value)
        return value.strip()

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if key in self.data and self.data[key] is not None else None

    def choice(self, key: str, options: tuple[str, ...]) -> str:
        value = self.text(key)
        if value not in options:
            raise self.fail(key, f"must be one of {', '.join(options)}", value)
        return value

    def number(self, key: str, positive: bool = False) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (positive and value == 0):
            raise self.fail(key, "must be a positive number" if positive else "must be a number >= 0", value)
        return float(value)

    def fraction(self, key: str) -> float:
        value = self.number(key)
        if not 0 < value <= 1:
            raise self.fail(key, "must be a fraction in (0, 1]", value)
        return value

    def section(self, key: str) -> _Fields:
        value = self._get(key)
        if not isinstance(value, Mapping):
            raise self.fail(key, "must be a mapping", value)
        return _Fields(self.path, value, f"{self.prefix}{key}.")

    def resources(self, key: str, required: bool, all_names: bool = True) -> Resources:
        if key not in self.data and not required:
            return Resources()
        section = self.section(key)
        unknown = set(section.data) - set(RESOURCE_NAMES)
        if unknown:
            raise section.fail(sorted(unknown)[0], f"is not a resource ({', '.join(RESOURCE_NAMES)})", "")
        names = RESOURCE_NAMES if all_names else [n for n in RESOURCE_NAMES if n != "lutram"]
        values = {n: section.number(n) for n in names}
        return Resources.from_mapping(values)

    def fractions(self, key: str) -> Resources:
        if key not in self.data:
            return DEFAULT_USABLE
        section = self.section(key)
        defaults = DEFAULT_USABLE.as_dict()
        values = {n: section.fraction(n) if n in section.data else defaults[n] for n in RESOURCE_NAMES}
        return Resources.from_mapping(values)

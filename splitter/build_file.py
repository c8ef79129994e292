"""`finnsplit build --config build.yaml`: a build's options in a file (docs/config.md#build-config).

The file's keys are BuildConfig's fields, checked by core/config.py like every config file; options
given on the command line override the file's values, and the file overrides BuildConfig's defaults.
Relative paths (`model`, `output`) are relative to the build file's directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from core.config import NonEmpty, Range, Text, fields_from_data, read_yaml
from splitter.build import FINN_MODES, BuildConfig

PositiveNumber = Annotated[float, Range(gt=0)]


@dataclass(frozen=True)
class InputSpecSection:
    """`input_spec:` the declared quantization of a float model input, as --input-dtype/-scale, --mean, --std."""

    dtype: Text  # e.g. UINT8
    scale: Annotated[str, NonEmpty()] | PositiveNumber = 1.0  # e.g. 1/255 or 0.00392
    mean: tuple[float, ...] = ()  # per channel, subtracted after scaling
    std: PositiveNumber = 1.0  # one value, divided by after the mean


# The file's type of each BuildConfig field whose declared type is looser than what a file may say.
FILE_TYPES: dict[str, Any] = {
    "model": Text,
    "output": Text,
    "boards": Text | Annotated[int, Range(ge=1)],
    "board": Text,
    "strategy": Literal["balanced", "greedy"],
    "target_fps": PositiveNumber | None,
    "power_cap_w": PositiveNumber | None,
    "objective": Literal["fps", "fps-per-watt", "boards", "power"],
    "link_gbps": PositiveNumber | None,
    "thresholds": Literal["choose", "embedded", "standalone"],
    "input_spec": InputSpecSection | None,
    "finn": Literal[FINN_MODES],
    "finn_jobs": Annotated[int, Range(ge=1)],
}


def read_build_file(path: str | Path) -> dict[str, Any]:
    """The BuildConfig fields a build file sets, checked (ConfigError naming file and field otherwise)."""
    path = Path(path)
    values = fields_from_data(BuildConfig, read_yaml(path, what="a build file"), str(path), FILE_TYPES)
    if "boards" in values:
        values["boards"] = str(values["boards"])  # BuildConfig's type: a count is "6", as on the command line
    for key in ("model", "output"):
        if key in values:
            given = Path(values[key]).expanduser()
            values[key] = str(given if given.is_absolute() else path.parent / given)
    return values


def input_spec_options(section: InputSpecSection | None) -> tuple[str | None, str | None, str | None, str | None]:
    """The section as the CLI's --input-dtype, --input-scale, --mean and --std strings."""
    if section is None:
        return None, None, None, None
    mean = ",".join(str(m) for m in section.mean) or None
    return section.dtype, str(section.scale), mean, str(section.std)

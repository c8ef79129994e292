"""Whether FINN and the Xilinx tools a build calls are usable in this process (docs/finn.md#what-finn-needs).

FINN is an optional integration: it lives in FINN's docker with Vivado, never in finnsplit's venv.
The PyPI package `finn` is an empty placeholder, so the test imports FINN's builder, not `finn`.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
from dataclasses import dataclass
from importlib import metadata

BUILDER_MODULE = "finn.builder.build_dataflow"
# FINN resolves Xilinx tools as <override>/<tool> when this is set (finn.util.basic.resolve_xilinx_tool).
TOOL_DIR_OVERRIDE = "FINN_TOOL_DIR_OVERRIDE"
# Converts FINN's .bit to the .bit.bin fpga_manager loads (bitstream.py). FINN itself never calls it,
# so it is looked up on PATH only; Vivado's settings64.sh puts it there.
BOOTGEN = "bootgen"


@dataclass(frozen=True)
class FinnStatus:
    """What a FINN build here would find; `why` lists every missing piece ("" when available)."""

    available: bool
    why: str
    finn_root: str | None = None
    vivado: str | None = None
    vitis_hls: str | None = None
    bootgen: str | None = None
    finn_version: str | None = None
    vivado_version: str | None = None


def finn_status() -> FinnStatus:
    """Detect FINN's builder, FINN_ROOT, FINN_BUILD_DIR, XILINX_VIVADO, `vivado`, `vitis_hls`, `bootgen`."""
    missing: list[str] = []
    importable = _builder_import_error()
    if importable is not None:
        missing.append(f"python package {BUILDER_MODULE} not importable ({importable})")
    finn_root = os.environ.get("FINN_ROOT") or None
    if finn_root is None:
        missing.append("FINN_ROOT not set")
    elif not os.path.isdir(finn_root):
        missing.append(f"FINN_ROOT={finn_root} is not a directory")
    if not os.environ.get("FINN_BUILD_DIR"):
        missing.append("FINN_BUILD_DIR not set")
    if not os.environ.get("XILINX_VIVADO"):
        missing.append("XILINX_VIVADO not set (source Vivado's settings64.sh)")
    vivado, vitis_hls, bootgen = _tool("vivado"), _tool("vitis_hls"), shutil.which(BOOTGEN)
    tools = (("vivado", vivado), ("vitis_hls", vitis_hls), (BOOTGEN, bootgen))
    missing += [f"{name} not on PATH" for name, path in tools if path is None]
    return FinnStatus(
        available=not missing,
        why="; ".join(missing),
        finn_root=finn_root,
        vivado=vivado,
        vitis_hls=vitis_hls,
        bootgen=bootgen,
        finn_version=_finn_version() if importable is None else None,
        vivado_version=_vivado_version(os.environ.get("XILINX_VIVADO", "")),
    )


def _builder_import_error() -> str | None:
    """None if FINN's builder imports, else why not."""
    try:
        importlib.import_module(BUILDER_MODULE)
    # Importing FINN imports qonnx, onnx, clize, rich ...: any of them may fail in its own way.
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _tool(name: str) -> str | None:
    """Path of Xilinx tool `name` the way FINN resolves it, or None."""
    override = os.environ.get(TOOL_DIR_OVERRIDE)
    return shutil.which(os.path.join(override, name) if override else name)


def _finn_version() -> str | None:
    try:
        return metadata.version("finn")
    except metadata.PackageNotFoundError:
        return None


def _vivado_version(xilinx_vivado: str) -> str | None:
    """The Vivado version in an install path such as /tools/Xilinx/Vivado/2022.2, or None."""
    match = re.search(r"\b(20\d\d\.\d)\b", xilinx_vivado)
    return match.group(1) if match else None

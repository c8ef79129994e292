"""Make the imported FINN accept a board it does not know (the Zedboard) or has retired (Pynq-Z1/Z2).

FINN looks boards up in module-level dicts of finn.util.basic (pynq_part_map, pynq_native_port_width,
and on main part_map) and picks the processing-system setup in an if/elseif chain on $BOARD in
finn.transformation.fpgadataflow.templates.custom_zynq_shell_template. Neither can be extended from a
build config (finn#368, finn#1228), so before a build we add entries in place, in this process only.
Details and the TCL: docs/finn.md#boards-finn-does-not-know.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from types import ModuleType

from splitter.finn.errors import FinnConfigError

BASIC_MODULE = "finn.util.basic"
TEMPLATES_MODULE = "finn.transformation.fpgadataflow.templates"
# Vivado board-part patterns of registered boards; the Zedboard's board files come with FINN's
# docker (deps/board_files holds all of Avnet's bdf repository). Other boards build without one.
BOARD_PARTS = {"Zedboard": "*:zedboard:part0:*"}
# (part prefix, ZYNQ_TYPE of FINN's shell template, AXI HP port width in bits as pynq_native_port_width)
ZYNQ_KINDS = (("xc7z", "zynq_7000", 64), ("xczu", "zynq_us+", 128), ("xck26", "zynq_us+", 128))
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
# The last branch of the template's board chain; new branches go right before it.
_UNRECOGNIZED = re.compile(r'\}\s*else\s*\{\s*\n\s*puts\s+"Unrecognized board"')


def prepare_board(board: str, fpga_part: str, log: Callable[[str], None]) -> None:
    """Register `board` with the imported FINN if it lacks it, and re-enable it if FINN retired it."""
    basic = importlib.import_module(BASIC_MODULE)
    retired = getattr(basic, "retired_pynq_boards", None)
    if retired is not None and board in retired:
        # FINN main blocks Zynq-7000 boards at its config check since the move to Vivado 2024.2
        # (PR #1659) and names this set as the way back in; the flow itself is unchanged.
        retired.discard(board)
        log(f"FINN retired {board} (Zynq-7000, finn PR #1659); re-enabled for this process")
    if board in basic.pynq_part_map:
        return
    register_board(basic, importlib.import_module(TEMPLATES_MODULE), board, fpga_part)
    log(f"registered board {board} ({fpga_part}) with FINN for this process (FINN does not know it)")


def register_board(basic: ModuleType, templates: ModuleType, board: str, fpga_part: str) -> None:
    """Add `board` on `fpga_part` to FINN's part and port-width maps and its Zynq shell template."""
    if not _SAFE_NAME.fullmatch(board):
        raise FinnConfigError(f"board name {board!r} cannot be registered with FINN (letters, digits, _.+- only)")
    zynq_type, port_width = zynq_kind(fpga_part)
    basic.pynq_part_map[board] = fpga_part
    basic.pynq_native_port_width[board] = port_width
    if hasattr(basic, "part_map"):  # FINN main: a merged copy its config check and fpga-part lookup read
        basic.part_map[board] = fpga_part
    template = templates.custom_zynq_shell_template
    if f'$BOARD == "{board}"' in template:
        return
    anchor = _UNRECOGNIZED.search(template)
    if anchor is None:
        raise FinnConfigError(
            f"cannot register board {board}: this FINN's Zynq shell template has no 'Unrecognized board' branch"
        )
    branch = shell_branch(board, zynq_type, BOARD_PARTS.get(board))
    templates.custom_zynq_shell_template = template[: anchor.start()] + branch + template[anchor.start() :]


def zynq_kind(fpga_part: str) -> tuple[str, int]:
    """FINN's ZYNQ_TYPE and IODMA port width for a Zynq part, from the part name."""
    for prefix, zynq_type, port_width in ZYNQ_KINDS:
        if fpga_part.lower().startswith(prefix):
            return zynq_type, port_width
    raise FinnConfigError(f"part {fpga_part} is not a Zynq-7000 or Zynq UltraScale+ part FINN's Zynq shell can use")


def shell_branch(board: str, zynq_type: str, board_part: str | None) -> str:
    """The TCL `elseif` branch for `board` in FINN's Zynq shell template (ends where `} else {` begins)."""
    lines = [f'}} elseif {{$BOARD == "{board}"}} {{', f'    set ZYNQ_TYPE "{zynq_type}"']
    if board_part is not None:
        # Newest installed board-file version; without any, build like FINN's old Pynq-Z2 branch
        # (no board preset: the PS7 keeps Vivado's defaults, the PL design is the same).
        lines += [
            f"    set finnsplit_parts [lsort -dictionary [get_board_parts -quiet {{{board_part}}}]]",
            "    if {[llength $finnsplit_parts] > 0} {",
            "        set_property board_part [lindex $finnsplit_parts end] [current_project]",
            "    } else {",
            f'        puts "WARNING: no board files match {board_part}; building {board} without a board preset"',
            "    }",
        ]
    return "\n".join(lines) + "\n"

"""FINN's DataflowBuildConfig for one partition directory, as JSON content (no FINN needed).

Why each field has its value: docs/finn.md#the-build-config. The file names below make a partition
directory what FINN's `build_dataflow_directory(dir)` reads: model.onnx + dataflow_build_config.json,
with relative paths resolved inside the directory (FINN changes into it before building).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from splitter.finn.errors import FinnConfigError

if TYPE_CHECKING:
    from splitter.boards import Board

MODEL_FILE = "model.onnx"
CONFIG_FILE = "dataflow_build_config.json"
FOLDING_FILE = "folding_config.json"
OUTPUT_DIR = "finn_output"
BITFILE = "bitfile/finn-accel.bit"  # inside OUTPUT_DIR, where FINN's step_synthesize_bitfile copies it

# FINN names of built-in boards FINN does not know; the runner registers them (registry.py).
UNKNOWN_TO_FINN = {"zedboard": "Zedboard"}
SHELL_FLOWS = {"zynq7000": "vivado_zynq", "zynqmp": "vivado_zynq"}
OUTPUTS = ("estimate_reports", "stitched_ip", "bitfile", "pynq_driver", "deployment_package")
MVAU_WWIDTH_MAX = 36  # the value splitter.folding.finn_set_folding assumes (FINN main's default is 1024)


def finn_board_name(board: Board) -> str:
    """FINN's name for `board`: its board file's `finn_board`, else the name the runner registers."""
    return board.finn_board or UNKNOWN_TO_FINN.get(board.name, board.name)


def synth_clk_period_ns(clock_mhz: float) -> float:
    """1000 / clock_mhz rounded down to 1e-6 ns, so FINN's int(1 / (period * 1e-3)) gives back the clock."""
    # FINN derives the PS clock as int(1 / (period_ns * 0.001)), which truncates: the plain quotient
    # turns 60 MHz into 59 MHz (1000/60 = 16.666...67 ns). Rounding the period down avoids that.
    return math.floor(1000.0 / clock_mhz * 1e6) / 1e6


def dataflow_build_config(
    board: Board, target_fps: float | None = None, steps: Sequence[str] | None = None
) -> dict[str, object]:
    """JSON content of FINN's DataflowBuildConfig building one partition for `board` to a bitstream."""
    if board.family not in SHELL_FLOWS:
        raise FinnConfigError(f"board {board.name}: FINN has no shell flow for family {board.family!r}")
    config: dict[str, object] = {
        "output_dir": OUTPUT_DIR,
        "synth_clk_period_ns": synth_clk_period_ns(board.clock_mhz),
        "board": finn_board_name(board),
        "fpga_part": board.part,
        "shell_flow_type": SHELL_FLOWS[board.family],
        "generate_outputs": list(OUTPUTS),
        "folding_config_file": FOLDING_FILE,
        "standalone_thresholds": False,
        "minimize_bit_width": False,
        "mvau_wwidth_max": MVAU_WWIDTH_MAX,
        "auto_fifo_depths": True,
        "split_large_fifos": True,
        "save_intermediate_models": True,
        "enable_build_pdb_debug": False,
        "verbose": False,
    }
    if target_fps is not None:
        if not target_fps >= 1:
            raise FinnConfigError(f"target_fps must be at least 1 frame per second, got {target_fps}")
        config["target_fps"] = round(target_fps)  # FINN types it Optional[int]
    if steps is not None:
        if not steps or not all(isinstance(s, str) and s for s in steps):
            raise FinnConfigError(f"steps must be a non-empty list of FINN step names, got {steps!r}")
        config["steps"] = list(steps)
    return config


def write_build_config(
    partition_dir: Path, board: Board, target_fps: float | None = None, steps: Sequence[str] | None = None
) -> Path:
    """Write `partition_dir`/dataflow_build_config.json for `board`; return its path."""
    path = Path(partition_dir) / CONFIG_FILE
    path.write_text(json.dumps(dataflow_build_config(board, target_fps, steps), indent=2) + "\n")
    return path

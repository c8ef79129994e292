"""FINN integration: a build config per partition and, where FINN is installed, bitstreams.

FINN is optional and detected at run time (docs/finn.md). dataflow_build_config needs nothing of FINN;
run_build and run_builds need FINN's docker with Vivado. This package imports only the standard
library at run time, so `python -m splitter.finn` works inside FINN's docker from a plain checkout.
"""

from splitter.finn.config import (
    BITFILE,
    CONFIG_FILE,
    FOLDING_FILE,
    MODEL_FILE,
    OUTPUT_DIR,
    dataflow_build_config,
    finn_board_name,
    synth_clk_period_ns,
    write_build_config,
)
from splitter.finn.errors import (
    BundleLayoutError,
    FinnBuildError,
    FinnConfigError,
    FinnError,
    FinnUnavailableError,
)
from splitter.finn.registry import prepare_board, register_board
from splitter.finn.runner import RESULT_FILE, partition_dirs, run_build, run_builds
from splitter.finn.status import FinnStatus, finn_status

__all__ = [
    "BITFILE",
    "CONFIG_FILE",
    "FOLDING_FILE",
    "MODEL_FILE",
    "OUTPUT_DIR",
    "RESULT_FILE",
    "BundleLayoutError",
    "FinnBuildError",
    "FinnConfigError",
    "FinnError",
    "FinnStatus",
    "FinnUnavailableError",
    "dataflow_build_config",
    "finn_board_name",
    "finn_status",
    "partition_dirs",
    "prepare_board",
    "register_board",
    "run_build",
    "run_builds",
    "synth_clk_period_ns",
    "write_build_config",
]

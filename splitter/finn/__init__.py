"""FINN integration: a build config per partition and, where FINN is installed, bitstreams.

FINN is optional and detected at run time (docs/finn.md). dataflow_build_config needs nothing of FINN;
run_build and run_builds need FINN's docker with Vivado; after each build they add the .bit.bin
(bitstream.py) and the IODMA addresses from the .hwh (hwh.py), and run_builds records the partition in
the bundle's manifest (record.py). This package imports only the standard library at run time, so
`python -m splitter.finn` works inside FINN's docker from a plain checkout.
"""

from splitter.finn.bitstream import bootgen_arch, make_bitbin
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
    BootgenError,
    BundleLayoutError,
    FinnBuildError,
    FinnConfigError,
    FinnError,
    FinnUnavailableError,
    HwhError,
    MultiTensorBoundaryError,
)
from splitter.finn.hwh import dma_order, iodma_ranges
from splitter.finn.record import clear_finn_build, finn_entry, record_finn_build
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
    "BootgenError",
    "BundleLayoutError",
    "FinnBuildError",
    "FinnConfigError",
    "FinnError",
    "FinnStatus",
    "FinnUnavailableError",
    "HwhError",
    "MultiTensorBoundaryError",
    "bootgen_arch",
    "clear_finn_build",
    "dataflow_build_config",
    "dma_order",
    "finn_board_name",
    "finn_entry",
    "finn_status",
    "iodma_ranges",
    "make_bitbin",
    "partition_dirs",
    "prepare_board",
    "record_finn_build",
    "register_board",
    "run_build",
    "run_builds",
    "synth_clk_period_ns",
    "write_build_config",
]

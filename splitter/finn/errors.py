"""Errors of the FINN integration; each names the partition, file or tool a user has to fix."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import FinnsplitError

if TYPE_CHECKING:
    from splitter.finn.status import FinnStatus


class FinnError(FinnsplitError):
    """A FINN build that cannot be configured, cannot start, or did not finish."""


class FinnUnavailableError(FinnError):
    """FINN, its environment or its Xilinx tools are missing here."""

    def __init__(self, status: FinnStatus) -> None:
        super().__init__(
            f"FINN cannot build here: {status.why}. Run inside FINN's docker with Vivado "
            f"(docs/finn.md#building-bitstreams)"
        )
        self.status = status


class FinnConfigError(FinnError):
    """A board or build setting that FINN cannot be given."""


class BundleLayoutError(FinnError):
    """A bundle or partition directory that lacks what a FINN build reads."""

    def __init__(self, path: Path | str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = str(path)


class FinnBuildError(FinnError):
    """FINN ran on a partition and failed; the message points at FINN's log."""

    def __init__(self, partition_dir: Path, log_path: Path, why: str, log_tail: list[str] | None = None) -> None:
        tail = "".join(f"\n  | {line}" for line in log_tail or [])
        super().__init__(f"FINN build of {partition_dir} failed: {why}; FINN's log: {log_path}{tail}")
        self.partition_dir = str(partition_dir)
        self.log_path = str(log_path)


class BootgenError(FinnError):
    """bootgen is missing or could not turn FINN's .bit into the .bit.bin fpga_manager loads."""

    def __init__(self, bitfile: Path, why: str) -> None:
        super().__init__(
            f"cannot make the .bit.bin of {bitfile}: {why} (docs/finn.md#the-bitstream-a-board-loads-bitbin)"
        )
        self.bitfile = str(bitfile)


class HwhError(FinnError):
    """A hardware handoff (.hwh) that is missing, not XML, or lacks the IODMAs' AXI-lite addresses."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = str(path)

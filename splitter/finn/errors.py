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


class MultiTensorBoundaryError(FinnError):
    """A bitstream build of partitions whose boundary carries several tensors, which FINN v0.10.1 mis-wires."""

    def __init__(self, partitions: list[tuple[int, str, list[str], list[str]]]) -> None:
        named = "; ".join(f"partition {k} ({where}): inputs {', '.join(ins)}, outputs {', '.join(outs)}"
                          for k, where, ins, outs in partitions)
        super().__init__(
            f"refusing to build a bitstream of a partition cut inside a residual block: {named}. FINN v0.10.1's "
            "InsertIODMA (in step_synthesize_bitfile) wires every IODMA to port 0 of the node its tensor meets, so "
            "a tensor entering a join at its second input, or leaving a fork by its second output, would be "
            "mis-wired in the bitstream without an error, and finnsplit's own IODMA step, which wires each port, "
            "goes right before step_synthesize_bitfile, which the partition's build config's `steps` lack "
            "(docs/finn.md#multi-tensor-boundaries). Build with FINN's default steps, or use "
            "`finnsplit finn-build --estimates-only` (estimates and --verify are unaffected), or rebuild the "
            "bundle so that these boards are cut between residual blocks: `finnsplit build` has no option to "
            "forbid cuts inside blocks, so change --boards or --target-fps until every partition's input and "
            "output in manifest.json list one tensor")
        self.partitions = [k for k, *_ in partitions]


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

"""Build a bundle's partition directories to bitstreams with FINN, in this process (docs/finn.md).

Each partition directory is what FINN's build_dataflow_directory reads (config.py); the runner adds
only what FINN lacks: boards it does not know (registry.py), IODMAs wired to the port each tensor
uses for a partition with several boundary tensors (steps.py), a typed error on failure, undoing what
FINN's builder leaves behind in the process (working directory, sys.stdout, root log handlers), and
what a board needs besides the .bit: the .bit.bin (bitstream.py) and the IODMA addresses (hwh.py),
recorded in the bundle's manifest after each partition (record.py).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from core.manifest import sha256_file
from splitter.finn.bitstream import bootgen_arch, make_bitbin
from splitter.finn.boundary import is_multi_tensor, partition_entry, refuse_multi_tensor
from splitter.finn.config import BITFILE, CONFIG_FILE, MODEL_FILE
from splitter.finn.errors import BundleLayoutError, FinnBuildError, FinnUnavailableError
from splitter.finn.hwh import dma_order, iodma_ranges
from splitter.finn.record import MANIFEST, clear_finn_build, finn_entry, read_manifest, record_finn_build
from splitter.finn.registry import prepare_board
from splitter.finn.status import BUILDER_MODULE, FinnStatus, finn_status
from splitter.finn.steps import with_iodma_step

RESULT_FILE = "finn_result.json"  # written next to the bitfile
LOG_FILE = "build_dataflow.log"  # FINN's, inside output_dir
ESTIMATE_REPORT = "report/estimate_network_performance.json"  # FINN's, inside output_dir


def run_build(partition_dir: Path, log: Callable[[str], None] = print) -> Path:
    """Build one partition directory to a bitstream with FINN; return finn_output/bitfile/finn-accel.bit."""
    return _build(partition_dir, log)[0]


def _build(partition_dir: Path, log: Callable[[str], None]) -> tuple[Path, dict[str, object]]:
    """run_build, also returning what it wrote to finn_result.json."""
    partition_dir = Path(partition_dir).resolve()
    config = read_build_config(partition_dir)
    entry = partition_entry(partition_dir)
    multi = entry is not None and is_multi_tensor(entry)
    if multi:
        refuse_multi_tensor(partition_dir.parent, [entry.index])  # only if our IODMA step has no place
    status = finn_status()
    if not status.available:
        raise FinnUnavailableError(status)
    output_dir = partition_dir / str(config.get("output_dir", "."))
    log_path = output_dir / LOG_FILE
    board, part = str(config.get("board")), str(config.get("fpga_part"))
    bootgen_arch(part)  # a part bootgen cannot convert for fails now, not after the build
    prepare_board(board, part, log)
    builder = importlib.import_module(BUILDER_MODULE)
    log(f"{partition_dir.name}: FINN build for {board} ({part}); FINN's log: {log_path}")
    try:
        with _process_state_restored():
            code = _run_builder(builder, partition_dir) if multi else \
                builder.build_dataflow_directory(str(partition_dir))
    # FINN fails with anything from AssertionError to CalledProcessError; all mean "this build failed".
    except Exception as exc:
        raise FinnBuildError(partition_dir, log_path, f"{type(exc).__name__}: {exc}", _tail(log_path)) from exc
    bitfile = output_dir / BITFILE
    if code != 0:
        raise FinnBuildError(partition_dir, log_path, f"FINN's builder returned {code}", _tail(log_path))
    if not bitfile.is_file():
        raise FinnBuildError(partition_dir, log_path, f"no bitfile at {bitfile} (is 'bitfile' in generate_outputs?)")
    iodma = iodma_ranges(bitfile.with_suffix(".hwh"))
    bitbin = make_bitbin(bitfile, part)
    result = write_result(bitfile, bitbin, iodma, output_dir, config, status)
    if (output_dir / "driver" / "driver.py").is_file():  # which DMA moves which tensor (docs/finn.md)
        result["iodma_order"] = dma_order(output_dir / "driver" / "driver.py")
    windows = ", ".join(f"{name} at {w['base']}" for name, w in iodma.items())
    log(f"{partition_dir.name}: {bitbin} (sha256 {result['bitbin_sha256'][:16]}...); {windows}")
    return bitfile, result


def _run_builder(builder, partition_dir: Path) -> int:
    """build_dataflow_directory with step_finnsplit_insert_iodma before step_synthesize_bitfile (docs/finn.md)."""
    # What build_dataflow_directory does (FINN v0.10.1), with a step list FINN's JSON cannot name: a
    # callable. The working directory is restored by _process_state_restored.
    configs = importlib.import_module("finn.builder.build_dataflow_config")
    cfg = configs.DataflowBuildConfig.from_json((partition_dir / CONFIG_FILE).read_text())
    cfg.steps = with_iodma_step(cfg.steps or configs.default_build_dataflow_steps)
    os.chdir(partition_dir)
    return builder.build_dataflow_cfg(str(partition_dir / MODEL_FILE), cfg)


def run_builds(bundle_dir: Path, partitions: list[int] | None = None, log: Callable[[str], None] = print) -> list[Path]:
    """Build the given partitions (default: all, in manifest order) of a bundle; return their bitfiles.

    Each finished partition is recorded in the manifest at once (partitions[k].finn), so a build
    that fails at partition 3 keeps partitions 0-2; a partition being rebuilt loses its old record first.
    """
    dirs = partition_dirs(bundle_dir)
    chosen = list(dirs) if partitions is None else list(partitions)
    unknown = [k for k in chosen if k not in dirs]
    if unknown:
        raise BundleLayoutError(bundle_dir, f"no partition {unknown} (the manifest lists {sorted(dirs)})")
    refuse_multi_tensor(bundle_dir, chosen)  # before anything is written to the bundle
    status = finn_status()  # fail before the first build, not after hours of it
    if not status.available:
        raise FinnUnavailableError(status)
    bitfiles = []
    for k in chosen:
        clear_finn_build(bundle_dir, k)
        bitfile, result = _build(dirs[k], log)
        record_finn_build(bundle_dir, k, finn_entry(bundle_dir, bitfile, result))
        bitfiles.append(bitfile)
    return bitfiles


def partition_dirs(bundle_dir: Path) -> dict[int, Path]:
    """Partition index -> directory, from the "partitions" list of the bundle's manifest.json."""
    manifest = Path(bundle_dir) / MANIFEST
    entries = read_manifest(bundle_dir).partitions
    if not entries:
        raise BundleLayoutError(manifest, "expected a non-empty 'partitions' list")
    dirs: dict[int, Path] = {}
    for entry in entries:
        if entry.index in dirs:
            raise BundleLayoutError(manifest, f"partition {entry.index} is listed twice: an index must be unique")
        dirs[entry.index] = Path(bundle_dir) / entry.dir
    return dirs


def read_build_config(partition_dir: Path) -> dict[str, object]:
    """The partition's dataflow_build_config.json, after checking FINN's input files are there."""
    for name in (MODEL_FILE, CONFIG_FILE):
        if not (partition_dir / name).is_file():
            raise BundleLayoutError(partition_dir, f"no {name}: not a partition directory of a finnsplit bundle")
    try:
        config = json.loads((partition_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise BundleLayoutError(partition_dir / CONFIG_FILE, f"not readable JSON: {exc}") from None
    if not isinstance(config, dict) or not config.get("board") or not config.get("fpga_part"):
        raise BundleLayoutError(partition_dir / CONFIG_FILE, "expected a JSON object with 'board' and 'fpga_part'")
    return config


def write_result(
    bitfile: Path,
    bitbin: Path,
    iodma: dict[str, dict[str, object]],
    output_dir: Path,
    config: dict[str, object],
    status: FinnStatus,
) -> dict[str, object]:
    """Write finn_result.json next to `bitfile` (hashes, IODMA windows, board, FINN's estimates); return it."""
    result = {
        "bitfile": bitfile.name,
        "bitfile_sha256": sha256_file(bitfile),
        "bitfile_bytes": bitfile.stat().st_size,
        "bitbin": bitbin.name,
        "bitbin_sha256": sha256_file(bitbin),
        "bitbin_bytes": bitbin.stat().st_size,
        "bootgen_arch": bootgen_arch(str(config.get("fpga_part"))),
        "hwh": bitfile.with_suffix(".hwh").name,
        "iodma": iodma,
        "board": config.get("board"),
        "fpga_part": config.get("fpga_part"),
        "synth_clk_period_ns": config.get("synth_clk_period_ns"),
        "estimate_network_performance": _read_json(output_dir / ESTIMATE_REPORT),
        "finn_version": status.finn_version,
        "vivado_version": status.vivado_version,
    }
    (bitfile.parent / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result


@contextlib.contextmanager
def _process_state_restored() -> Iterator[None]:
    """Undo what FINN's builder leaves in the process: cwd (on failure), sys.stdout/err, root logging."""
    # build_dataflow_directory changes into the partition directory and changes back only when the
    # build returns; FINN main also replaces sys.stdout/err for good and reconfigures the root logger
    # (basicConfig), which otherwise sends a later partition's log into the first partition's file.
    cwd, stdout, stderr = os.getcwd(), sys.stdout, sys.stderr
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        for handler in [h for h in handlers if h not in root.handlers]:
            root.addHandler(handler)
        root.setLevel(level)
        os.chdir(cwd)


def _read_json(path: Path) -> object | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 8) -> list[str]:
    """The last non-empty lines of FINN's log, where its error usually is."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]

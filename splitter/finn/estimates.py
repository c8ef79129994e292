"""`finnsplit finn-build --estimates-only`: FINN's flow up to its estimate reports, for every partition.

Each partition runs splitter.finn.worker in FINN's interpreter (env.py) as a subprocess, `jobs` at
a time, with its own log. A partition whose inputs (its model, folding and build config, the worker
and FINN's version) hash as before is skipped. FINN's result is compared with the plan (compare.py)
and recorded in the manifest as partitions[k]["finn_estimates"] (docs/finn.md#estimates-without-vivado).
Standard library only, like the rest of splitter.finn (and splitter/progress.py, its bar on a terminal).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.manifest import Manifest, Partition
from core.manifest.schema import frozen
from splitter.finn.compare import compare_with_plan
from splitter.finn.env import FinnPython, find_finn_python
from splitter.finn.errors import BundleLayoutError, FinnBuildError
from splitter.finn.record import read_manifest, update_partition
from splitter.progress import ProgressBar

OUTPUT_DIR = "finn_estimates"
LOG_FILE = "worker.log"  # the worker's stdout/stderr; FINN's own log is build_dataflow.log beside it
HASH_FILE = "inputs.sha256"
WORKER_FILES = ("worker.py", "registry.py")  # their source is part of every partition's input hash
HASHED_INPUTS = ("model", "folding", "finn_build")  # manifest file keys of what FINN reads


@dataclass(frozen=True)
class EstimateResult:
    """One partition's FINN run: what happened, FINN's summary, and how it compares with the plan."""

    index: int
    status: str  # "ran", "skipped" (inputs unchanged) or "failed"
    seconds: float
    summary: dict[str, Any]
    comparison: dict[str, Any] = field(default_factory=dict)
    log: str = ""

    @property
    def matches_plan(self) -> bool:
        """True when FINN built exactly the layers, folding and per-layer figures the plan costed."""
        return self.status != "failed" and not self.comparison.get("mismatches")


def run_estimates(
    bundle_dir: Path, partitions: Sequence[int] | None = None, jobs: int = 1, codegen: bool = False,
    inputs: dict[int, Path] | None = None, log: Callable[[str], None] = print, python: FinnPython | None = None,
) -> list[EstimateResult]:
    """FINN's estimate flow on the given partitions (default all); raises FinnBuildError if any failed."""
    bundle_dir = Path(bundle_dir).resolve()
    manifest = read_manifest(bundle_dir)
    parts = _partitions(bundle_dir, manifest, partitions)
    python = python or find_finn_python()
    log(f"FINN {python.finn_version} from {python.source} ({python.python}); {len(parts)} partition(s), "
        f"{max(1, jobs)} at a time")
    inputs = inputs or {}
    total, done = len(parts), []
    bar = ProgressBar("FINN estimates", total, unit="partitions")  # on a terminal only
    bar.set(0)  # shown at once: a partition takes FINN tens of seconds

    def one(part: Partition) -> EstimateResult:
        result = _run_one(bundle_dir, part, python, codegen, inputs.get(part.index))
        done.append(result.index)
        log(f"partition {result.index} ({len(done)}/{total}): {describe(result)}")
        bar.advance()
        return result

    with bar, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, parts))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        first = failed[0]
        raise FinnBuildError(bundle_dir / f"partition-{first.index}", Path(first.log),
                             f"FINN failed on partition(s) {', '.join(str(r.index) for r in failed)}: "
                             f"{first.summary.get('error', 'see the log')}", _tail(Path(first.log)))
    return results


def describe(result: EstimateResult) -> str:
    """One progress line: FINN's max cycles and fps beside the plan's, and any mismatch."""
    if result.status == "failed":
        return f"FINN failed after {result.seconds:.1f} s: {result.summary.get('error')} (log {result.log})"
    perf = result.summary["reports"]["estimate_network_performance"]
    cmp = result.comparison
    verb = "unchanged, skipped" if result.status == "skipped" else f"{result.seconds:.1f} s"
    mism = cmp.get("mismatches", [])
    agreement = "matches the plan" if not mism else f"{len(mism)} mismatch(es) with the plan: {mism[0]}"
    return (f"{verb}; FINN max cycles {perf['max_cycles']:,} ({perf['max_cycles_node_name']}, "
            f"{perf['estimated_throughput_fps']:.1f} fps), plan {cmp.get('plan_max_cycles', 0):,}; {agreement}")


def _partitions(bundle_dir: Path, manifest: Manifest, chosen: Sequence[int] | None) -> list[Partition]:
    if not manifest.partitions:
        raise BundleLayoutError(bundle_dir / "manifest.json", "expected a non-empty 'partitions' list")
    by_index = {p.index: p for p in manifest.partitions}
    if chosen is None:
        return [by_index[k] for k in sorted(by_index)]
    unknown = [k for k in chosen if k not in by_index]
    if unknown:
        raise BundleLayoutError(bundle_dir, f"no partition {unknown} (the manifest lists {sorted(by_index)})")
    return [by_index[k] for k in dict.fromkeys(chosen)]


def _run_one(
    bundle_dir: Path, part: Partition, python: FinnPython, codegen: bool, inputs: Path | None
) -> EstimateResult:
    part_dir = bundle_dir / part.dir
    out = part_dir / OUTPUT_DIR
    log_path = out / LOG_FILE
    digest = inputs_hash(bundle_dir, part, python, codegen, inputs)
    summary = _read_json(out / "summary.json")
    if summary and summary.get("ok") and _read_text(out / HASH_FILE) == digest:
        comparison = compare_with_plan(part.predicted, summary, _folding(part_dir, part))
        return EstimateResult(part.index, "skipped", 0.0, summary, comparison, str(log_path))
    out.mkdir(parents=True, exist_ok=True)
    (out / HASH_FILE).unlink(missing_ok=True)
    command = [python.python, "-m", "splitter.finn.worker", str(part_dir), "--output-dir", OUTPUT_DIR]
    command += ["--codegen"] if codegen else []
    command += ["--inputs", str(Path(inputs).resolve())] if inputs is not None else []
    started = time.time()
    with open(log_path, "w") as logf:
        done = subprocess.run(command, stdout=logf, stderr=subprocess.STDOUT, cwd=part_dir,
                              env=python.environment(out / "build_dir"))
    seconds = time.time() - started
    summary = _read_json(out / "summary.json") or {}
    if done.returncode != 0 or not summary.get("ok"):
        summary.setdefault("error", f"the FINN worker exited with {done.returncode}")
        _record(bundle_dir, part.index, {"ok": False, "error": summary["error"], "log": _rel(bundle_dir, log_path)})
        return EstimateResult(part.index, "failed", seconds, summary, {}, str(log_path))
    comparison = compare_with_plan(part.predicted, summary, _folding(part_dir, part))
    _record(bundle_dir, part.index, _entry(bundle_dir, out, summary, comparison, digest))
    (out / HASH_FILE).write_text(digest)
    return EstimateResult(part.index, "ran", seconds, summary, comparison, str(log_path))


def inputs_hash(bundle_dir: Path, part: Partition, python: FinnPython, codegen: bool, inputs: Path | None) -> str:
    """SHA-256 over everything a partition's FINN run depends on."""
    digest = hashlib.sha256()
    files = part.files
    for key in HASHED_INPUTS:
        path = bundle_dir / files[key].path if key in files else None
        if path is None or not path.is_file():
            listed = files[key].path if key in files else "none"
            raise BundleLayoutError(bundle_dir / part.dir, f"no {key!r} file for FINN (the manifest lists {listed})")
        digest.update(f"{key}={hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    here = Path(__file__).parent
    for name in WORKER_FILES:
        digest.update(hashlib.sha256((here / name).read_bytes()).hexdigest().encode())
    digest.update(f"finn={python.finn_version} codegen={codegen}\n".encode())
    if inputs is not None:
        digest.update(hashlib.sha256(Path(inputs).read_bytes()).hexdigest().encode())
    return digest.hexdigest()


def _entry(bundle_dir: Path, out: Path, summary: dict[str, Any], comparison: dict[str, Any], digest: str) -> dict:
    reports = summary["reports"]
    perf = reports["estimate_network_performance"]
    total = reports["estimate_layer_resources"].get("total", {})
    return {
        "ok": True,
        "finn_version": summary.get("finn_version"),
        "steps": summary.get("steps"),
        "max_cycles": perf["max_cycles"],
        "max_cycles_node": perf["max_cycles_node_name"],
        "estimated_fps": round(perf["estimated_throughput_fps"], 3),
        "critical_path_cycles": perf["critical_path_cycles"],
        "resources": {k: total.get(k, 0) for k in ("LUT", "BRAM_18K", "URAM", "DSP")},
        "plan": {"max_cycles": comparison.get("plan_max_cycles"), "finn_terms": comparison.get("plan_finn_terms")},
        "mismatches": comparison.get("mismatches", []),
        "reports": _rel(bundle_dir, out / "report"),
        "log": _rel(bundle_dir, out / "build_dataflow.log"),
        "inputs_sha256": digest,
    }


def _record(bundle_dir: Path, index: int, entry: dict[str, Any]) -> None:
    update_partition(bundle_dir, index, lambda part: dataclasses.replace(part, finn_estimates=frozen(entry)))


def _folding(part_dir: Path, part: Partition) -> dict[str, Any]:
    return _read_json(part_dir.parent / part.files["folding"].path) or {}


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _tail(path: Path, lines: int = 6) -> list[str]:
    text = _read_text(path) or ""
    return [line for line in text.splitlines() if line.strip()][-lines:]

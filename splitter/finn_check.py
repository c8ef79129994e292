"""FINN's execution of each partition against finnsplit's executor, at every partition boundary.

The inputs of partition k are the executor's outputs of partition k-1 on seeded frames, so each
partition is checked on the values it really receives. FINN runs them in splitter.finn.worker
(`--inputs`); this module writes the inputs and compares what FINN wrote back. It needs numpy and
the program reader, so it lives outside splitter.finn (standard library only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.manifest import load_manifest
from splitter import program
from splitter.executor import execute, execute_boundary
from splitter.finn.estimates import OUTPUT_DIR, EstimateResult
from splitter.graph import DataflowGraph

INPUTS_FILE = "verify_inputs.npz"
OUTPUTS_FILE = "outputs.npz"


@dataclass(frozen=True)
class BoundaryFrames:
    """Per partition: where its input frames are, and the executor's output for each."""

    inputs: dict[int, Path]
    expected: dict[int, dict[str, np.ndarray]]


def boundary_frames(bundle_dir: str | Path, count: int, seed: int = 0) -> BoundaryFrames:
    """Write each partition's input frames (seeded for partition 0, chained after) beside its FINN output.

    A boundary carrying several tensors (a cut inside a residual block) stores tensor k of frame F
    under `F#k`, in boundary order (`frame_keys`).
    """
    root = Path(bundle_dir)
    manifest = load_manifest(root)
    parts = sorted(manifest.partitions, key=lambda p: p.index)
    graphs = [program.read(root / p.files["program"].path) for p in parts]
    dtype = graphs[0].input.dtype
    rng = np.random.default_rng(seed)
    frames = {f"frame{i}": [rng.integers(dtype.min, dtype.max + 1, size=graphs[0].input.shape, dtype=np.int64)]
              for i in range(count)}
    inputs, expected = {}, {}
    for part, graph in zip(parts, graphs, strict=True):
        out_dir = root / part.dir / OUTPUT_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / INPUTS_FILE
        np.savez(path, **frame_keys(frames))
        inputs[part.index] = path
        frames = {key: _run(graph, xs) for key, xs in frames.items()}
        expected[part.index] = frame_keys(frames)
    return BoundaryFrames(inputs, expected)


def frame_keys(frames: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """Frames of one boundary as npz entries: `F` for one tensor, `F#0`, `F#1`, ... for several."""
    return {(key if len(xs) == 1 else f"{key}#{k}"): x for key, xs in frames.items() for k, x in enumerate(xs)}


def _run(graph: DataflowGraph, xs: list[np.ndarray]) -> list[np.ndarray]:
    if len(graph.inputs) == 1 and len(graph.outputs) == 1:
        return [execute(graph, xs[0])]
    return execute_boundary(graph, xs)


def check_finn_outputs(bundle_dir: str | Path, results: list[EstimateResult], frames: BoundaryFrames) -> list[str]:
    """Every difference between FINN's execution and the executor; empty when all are bit-exact."""
    root = Path(bundle_dir)
    manifest = load_manifest(root, verify=False)
    dirs = {p.index: root / p.dir for p in manifest.partitions}
    problems = []
    for result in results:
        k = result.index
        executed = result.summary.get("executed") or {}
        problems += [f"partition {k}: {e}" for e in executed.get("range_errors", [])]
        problems += [f"partition {k}: FINN's specialized {name} differs from its generic node"
                     for name, ok in executed.get("specialized_nodes_run", {}).items() if not ok]
        with np.load(dirs[k] / OUTPUT_DIR / OUTPUTS_FILE) as finn:
            for key, want in frames.expected[k].items():
                got = finn[key] if key in finn.files else None
                if got is None or got.shape != want.shape or not np.array_equal(got, want):
                    diff = "missing" if got is None else f"{int(np.sum(got != want))} of {want.size} values differ"
                    problems.append(f"partition {k} {key}: FINN's output differs from the executor's ({diff})")
    return problems


def finn_estimates(bundle: Path, partitions: list[int] | None, jobs: int, codegen: bool, verify: int,
                   progress: Callable[[str], None]) -> tuple[list, list[str]]:
    """FINN's estimate flow on a bundle (and with `verify`, FINN's execution); results and every disagreement."""
    from splitter.finn.estimates import run_estimates

    frames = None
    if verify:
        progress(f"executor: {verify} seeded frame(s) through every partition (FINN's inputs and expected outputs)")
        frames = boundary_frames(bundle, verify)
    results = run_estimates(bundle, partitions, jobs, codegen, frames.inputs if frames else None, progress)
    problems = [f"partition {r.index}: {m}" for r in results for m in r.comparison.get("mismatches", [])]
    if frames is not None:
        problems += check_finn_outputs(bundle, results, frames)
    return results, problems

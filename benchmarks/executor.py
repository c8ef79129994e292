"""The executor's exact fast path vs its int64 reference kernels, measured in this run.

On MobileNetV1-w4a4 (seeded random weights) the same seeded frames go through
`execute(graph, x, fast=False)` (the reference, one frame per call, as the checks ran it before)
and through one `FastExecutor` (the fast path, weights and threshold tables made once). Rounds
alternate between the two so both see the same machine load; the figure is the ratio of the
median seconds per frame. Then all frames in one call (one thread per frame). Every fast output
is compared with the reference's.

Usage: .venv/bin/python benchmarks/executor.py [--model mobilenet-v1-w4a4] [--rounds 3] [--frames 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from splitter.executor import execute  # noqa: E402
from splitter.fast_executor import FastExecutor, precision_plan  # noqa: E402
from splitter.graph import DataflowGraph  # noqa: E402
from splitter.load import load_and_lower  # noqa: E402
from splitter.zoo import export  # noqa: E402


def frames_of(graph: DataflowGraph, count: int) -> np.ndarray:
    """Seeded random frames of the graph's input datatype."""
    dt = graph.input.dtype
    rng = np.random.default_rng(0)
    return rng.integers(dt.min, dt.max, size=(count, *graph.input.shape[1:]), endpoint=True)


def main() -> None:
    """Print seconds per frame of both paths and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet-v1-w4a4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=4, help="Frames per round and path.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        graph = load_and_lower(str(export(args.model, Path(work) / "m.onnx", seed=0)), None, "m")[1]
    plan = precision_plan(graph)
    print(f"{args.model}: {len(graph.layers)} layers; products by the datatypes' bound: "
          + ", ".join(f"{sum(v == k for v in plan.values())} {k}" for k in ("float32", "float64", "int64")))
    x = frames_of(graph, args.frames)
    fast = FastExecutor(graph)
    start = time.perf_counter()
    fast(x[:1])
    print(f"fast path set-up (float weights, threshold tables) and first frame: {time.perf_counter() - start:.2f} s")
    slow_s, fast_s = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        reference = np.concatenate([execute(graph, frame[None], fast=False) for frame in x])
        slow_s.append((time.perf_counter() - start) / len(x))
        start = time.perf_counter()
        ours = np.concatenate([fast(frame[None]) for frame in x])
        fast_s.append((time.perf_counter() - start) / len(x))
        if not np.array_equal(ours, reference):
            raise SystemExit("the fast path differs from the reference: a bug")
    start = time.perf_counter()
    batched = fast(x)  # frames on one thread each
    batch_s = (time.perf_counter() - start) / len(x)
    if not np.array_equal(batched, reference):
        raise SystemExit("the fast path's batch differs from the reference: a bug")
    slow, quick = statistics.median(slow_s), statistics.median(fast_s)
    print(f"reference {slow * 1000:.0f} ms/frame ({1 / slow:.2f} fps), fast path {quick * 1000:.0f} ms/frame "
          f"({1 / quick:.1f} fps), every output identical -> ratio {slow / quick:.1f}x (goal >= 10)")
    print(f"fast path, {len(x)} frames in one call ({fast.workers} threads): {batch_s * 1000:.0f} ms/frame "
          f"-> ratio {slow / batch_s:.1f}x")


if __name__ == "__main__":
    main()

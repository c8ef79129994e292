"""`--check MODEL`: every output against the Python executor, the first three against qonnx.

The references need only the inputs, so `finnsplit run` computes them in a background thread
while the fleet comes up (seconds of waiting on SSH and the agents) and waits for them before it
streams: on a small machine the emulated boards need its cores, and a busy client misses its
resend deadlines. `report` then only compares.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import click
import numpy as np

from core.errors import FinnsplitError
from core.manifest import Manifest
from splitter.progress import ProgressBar, Watcher

if TYPE_CHECKING:
    import onnx

    from splitter.graph import DataflowGraph

QONNX_FRAMES = 3
CHUNK = 8  # frames per executor call: about as fast as one call with all of them, and counted


class ReferenceCheck:
    """Expected outputs of `raws` by the Python executor (all) and qonnx (the first three)."""

    def __init__(self, model_path: str, manifest: Manifest, bundle: str, raws: list) -> None:
        """Start computing at once, in a daemon thread."""
        self.model_path, self.manifest, self.bundle, self.raws = model_path, manifest, bundle, raws
        self.executor: list[np.ndarray] = []
        self.qonnx: list[np.ndarray] = []
        self.why: dict[int, str] = {}  # frame -> why the executor differs from qonnx there (splitter.verify.explain)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._compute, name="reference-check", daemon=True)
        self._thread.start()

    def _compute(self) -> None:
        try:
            self._references()
        except BaseException as exc:  # re-raised by report() in the calling thread
            self.error = exc

    def _references(self) -> None:
        from orchestrator.dataplane.bundle_io import prepare_input
        from splitter.fast_executor import FastExecutor
        from splitter.load import input_spec_of_bundle, load_and_lower

        # the bundle's own input quantization; the imported model has every shape qonnx's executor needs
        model, graph = load_and_lower(self.model_path, input_spec_of_bundle(self.manifest))
        tensors = [prepare_input(self.manifest, self.bundle, raw) for raw in self.raws]
        run = FastExecutor(graph)
        for start in range(0, len(tensors), CHUNK):  # in chunks: a progress bar follows self.executor
            self.executor.extend(run(np.concatenate(tensors[start:start + CHUNK])))
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx

        from splitter.model_io import model_float_input

        wrapper = ModelWrapper(model)
        name, out = wrapper.graph.input[0].name, wrapper.graph.output[0].name
        iq = graph.input_quant
        for i, raw in enumerate(self.raws[:QONNX_FRAMES]):
            x = model_float_input(iq, raw) if iq is not None and iq.kind == "declared" else raw
            context = execute_onnx(wrapper, {name: x}, return_full_exec_context=True)
            self.qonnx.append(np.asarray(context[out]).reshape(1, -1))
            self.why[i] = self._explain(graph, model, raw, context, self.qonnx[-1], self.executor[i])

    def _explain(self, graph: DataflowGraph, model: onnx.ModelProto, raw: np.ndarray, context: dict,
                 reference: np.ndarray, integers: np.ndarray) -> str:
        """Why the executor's output differs from qonnx's for this frame ('' when they agree up to the affine's
        float32 rounding): every layer checked on the reference's own input (splitter.verify)."""
        from orchestrator.dataplane.bundle_io import finish_output
        from splitter.verify import check_layers_in, explain

        ours = finish_output(self.manifest, integers[None], self.bundle).reshape(1, -1)
        if ours.shape == reference.shape and np.allclose(ours, reference, rtol=1e-5, atol=1e-4):
            return ""
        try:
            checks = check_layers_in(graph, model, raw, context)
        except (AssertionError, KeyError, ValueError) as exc:  # a reference tensor off its integer grid: say so
            return f"the layer-by-layer check could not run ({exc})"
        return explain(checks, {layer.output: layer.name for layer in graph.layers})

    def wait(self, progress: Callable[[str], None]) -> None:
        """Until the references are computed, with a bar for each reference on a terminal (re-raises what
        computing them raised)."""
        if self._thread.is_alive():
            progress("computing the reference outputs (Python executor, qonnx)")
            steps = (("checking: executor", len(self.raws), lambda: len(self.executor)),
                     ("checking: qonnx", min(QONNX_FRAMES, len(self.raws)), lambda: len(self.qonnx)))
            for label, total, count in steps:  # a step done already shows as done
                watcher = Watcher(ProgressBar(label, total), count)
                while count() < total and self._thread.is_alive():
                    self._thread.join(0.05)
                watcher.stop()
            self._thread.join()
        if self.error is not None:
            raise self.error

    def report(self, outputs: list, results: list, progress: Callable[[str], None]) -> None:
        """Print how the boards' outputs compare; raise FinnsplitError if any differs from the executor."""
        self.wait(progress)
        exact = sum(np.array_equal(e[None], y) for e, y in zip(self.executor, outputs, strict=True))
        click.echo(f"bit-exact vs the Python executor: {exact}/{len(outputs)} frames")
        count = len(self.qonnx)
        same = sum(int(np.array_equal(ref, r)) for ref, r in zip(self.qonnx, results, strict=False))
        top1 = sum(int(np.argmax(ref) == np.argmax(r)) for ref, r in zip(self.qonnx, results, strict=False))
        worst = max((float(np.max(np.abs(ref - r))) for ref, r in zip(self.qonnx, results, strict=False)),
                    default=0.0)
        click.echo(f"vs the original QONNX model: identical outputs {same}/{count}, same top-1 {top1}/{count}, "
                   f"largest difference {worst:.3g} (why they can differ: docs/lowering.md, float32 near-ties)")
        for frame, why in sorted(self.why.items()):
            if why:
                click.echo(f"  frame {frame} differs from qonnx: {why}")
        if exact != len(outputs):
            raise FinnsplitError("virtual boards disagree with the Python executor")

"""Bit-exact numpy executor of dataflow graphs (semantics: docs/program-format.md).

The exact fast path is splitter/fast_executor.py; the int64 reference kernels, layer by layer, are
splitter/kernels.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from splitter.fast_executor import FastExecutor
from splitter.graph import DataflowGraph
from splitter.kernels import check_input, run_layer


def execute(graph: DataflowGraph, x: np.ndarray, fast: bool = True) -> np.ndarray:
    """Integer output of the graph for integer NHWC input `x` (batch axis first).

    `fast`: the exact fast path (splitter.fast_executor; one FastExecutor per graph is faster
    for many calls); False: the int64 reference kernels (splitter/kernels.py), layer by layer.
    """
    if fast:
        return FastExecutor(graph)(x)
    check_input(graph, x)
    out = np.asarray(x, dtype=np.int64)
    if not any(layer.extra_inputs or layer.extra_outputs for layer in graph.layers):
        for layer in graph.layers:
            out = run_layer(layer, out)
        return out
    return _execute_dag(graph, out)


def _execute_dag(graph: DataflowGraph, x: np.ndarray) -> np.ndarray:
    """A branching graph: every tensor by name, dropped after the last layer reading it."""
    last_read = {name: i for i, layer in enumerate(graph.layers) for name in layer.inputs}
    values = {graph.input.name: x}
    for i, layer in enumerate(graph.layers):
        result = run_layer(layer, *(values[name] for name in layer.inputs))
        for name in layer.inputs:
            if last_read[name] == i:
                values.pop(name, None)
        values.update(dict.fromkeys(layer.outputs, result))
    return values[graph.layers[-1].output]


def execute_boundary(graph: DataflowGraph, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The integer outputs of a partition with several inputs or outputs (`graph.inputs` / `graph.outputs`,
    in boundary order, docs/bundle.md#multi-tensor-boundaries); the int64 reference kernels."""
    specs = graph.inputs
    if len(inputs) != len(specs):
        raise ValueError(f"{graph.name}: {len(inputs)} inputs given, it reads {len(specs)} ({[s.name for s in specs]})")
    for spec, x in zip(specs, inputs, strict=True):
        check_input(dataclasses.replace(graph, input=spec), np.asarray(x))
    last_read = {name: i for i, layer in enumerate(graph.layers) for name in layer.inputs}
    values = {spec.name: np.asarray(x, dtype=np.int64) for spec, x in zip(specs, inputs, strict=True)}
    keep = {spec.name for spec in graph.outputs}
    for i, layer in enumerate(graph.layers):
        result = run_layer(layer, *(values[name] for name in layer.inputs))
        for name in layer.inputs:
            if last_read[name] == i and name not in keep:
                values.pop(name, None)
        values.update(dict.fromkeys(layer.outputs, result))
    return [values[spec.name] for spec in graph.outputs]

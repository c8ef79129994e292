"""Why an output differs from qonnx's (splitter.verify.explain, printed by `--check`): float32 near-ties are
told apart from lowering errors by the layer-by-layer check (docs/lowering.md, float32 near-ties)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from qonnx_builder import GraphBuilder

from core.datatypes import datatype
from splitter.lowering import InputSpec, lower_model
from splitter.verify import TensorCheck, check_layers, explain


def _model():
    b = GraphBuilder((1, 3, 8, 8), seed=4)
    x = b.node("Conv", ["x", b.qweight((6, 3, 3, 3), 8)], kernel_shape=[3, 3])
    x = b.quant(b.node("Relu", [b.batchnorm(x, 6)]), 0.25, 4, signed=False)
    x = b.node("Conv", [x, b.qweight((4, 6, 6, 6), 4)], kernel_shape=[6, 6])
    return b.model(x)


def test_a_wrong_threshold_is_a_lowering_error() -> None:
    model, graph = lower_model(_model(), "m", InputSpec(datatype("UINT8"), 1 / 255))
    raw = np.random.default_rng(0).integers(0, 256, (1, 3, 8, 8))
    checks, _ = check_layers(graph, model, raw)
    producers = {layer.output: layer.name for layer in graph.layers}
    assert all(c.mismatches == 0 for c in checks)
    assert explain(checks, producers).startswith("every layer equals the reference")
    at = next(i for i, layer in enumerate(graph.layers) if layer.op_type == "MVAU")
    first = graph.layers[at]
    thresholds = first.params["thresholds"].copy()
    thresholds[:, 1:] -= 40  # every level but the first reached much too early
    layers = list(graph.layers)
    layers[at] = replace(first, params={**first.params, "thresholds": thresholds})
    broken = replace(graph, layers=layers)
    checks, _ = check_layers(broken, model, raw)
    why = explain(checks, producers)
    assert "not float32 near-ties (first in MVAU_0): a lowering error" in why, why


def test_near_ties_alone_are_the_references_rounding() -> None:
    checks = [TensorCheck("MVAU_0_out", "q0", 1, 1000, 1, near_ties=1), TensorCheck("MVAU_1_out", "q1", 0, 500, 0)]
    why = explain(checks, {"MVAU_0_out": "MVAU_0", "MVAU_1_out": "MVAU_1"})
    assert why.startswith("1 float32 near-tie(s) (MVAU_0: 1) and no other difference in 1,500 values")
    assert "not a lowering error" in why
    checks.append(TensorCheck("MVAU_2_out", "q2", 3, 10, 2, near_ties=1))
    why = explain(checks, {"MVAU_2_out": "MVAU_2"})
    assert "2 values differ that are not float32 near-ties (first in MVAU_2)" in why

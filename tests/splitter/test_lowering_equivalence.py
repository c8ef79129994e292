"""Every zoo model, lowered, equals qonnx's execute_onnx on the original model (docs/lowering.md)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ZOO

from splitter.executor import execute
from splitter.model_io import dataflow_input, final_output
from splitter.verify import check_layers, reference_integer

INPUTS = 20


def _raw(graph, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    if graph.input_quant is not None and graph.input_quant.kind == "declared":
        dtype = graph.input_quant.dtype
        return rng.integers(dtype.min, dtype.max + 1, size=shape)
    return rng.random(shape, dtype=np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_every_layer_and_output_match_reference(name: str, zoo_lowered: dict) -> None:
    model, graph = zoo_lowered[name]
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    shape = tuple(d.dim_value for d in inputs[0].type.tensor_type.shape.dim)
    rng = np.random.default_rng(2024)
    total = ties = 0
    for _ in range(INPUTS):
        raw = _raw(graph, rng, shape)
        checks, context = check_layers(graph, model, raw)
        assert checks, "no referenced tensors were compared"
        for check in checks:
            assert check.unexplained == 0, f"{name}: {check}"
            total += check.total
            ties += check.near_ties
        if not any(c.mismatches for c in checks):
            # No float32 near-tie anywhere: the whole chain run end to end must match exactly.
            ours = execute(graph, dataflow_input(graph, raw))
            last = graph.layers[-1].output
            if last in graph.reference:
                assert np.array_equal(ours, reference_integer(graph, context, last))
            reference = context[graph.onnx_output]
            np.testing.assert_allclose(final_output(graph, ours), reference, rtol=1e-5, atol=1e-5)
    assert ties <= total * 1e-5, f"{name}: {ties} near-ties in {total} values is more than float32 noise"


def test_mobilenet_has_finn_layer_counts(zoo_lowered: dict) -> None:
    _, graph = zoo_lowered["mobilenet-v1-w4a4"]
    ops = [layer.op_type for layer in graph.layers]
    assert ops.count("MVAU") == 15
    assert ops.count("VVAU") == 13
    assert ops.count("FMPadding") == 13
    assert ops.count("ConvolutionInputGenerator") == 15  # 1 first conv + 13 depthwise + 1 average pool


def test_dataflow_tensors_carry_integer_datatypes(zoo_lowered: dict) -> None:
    for name in ZOO:
        _, graph = zoo_lowered[name]
        for spec in graph.tensors.values():
            assert spec.dtype.name.startswith(("UINT", "INT")) or spec.dtype.name == "BINARY", (name, spec)
    binary = {s.dtype.name for s in zoo_lowered["cnv-w1a1"][1].tensors.values()}
    assert "BINARY" in binary and "INT8" in binary  # bipolar codes after the 8-bit input layer

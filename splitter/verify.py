"""Equivalence of a dataflow graph with the QONNX model it was lowered from (qonnx execute_onnx)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from splitter.graph import DataflowGraph
from splitter.kernels import run_layer
from splitter.model_io import dataflow_input, model_float_input, nchw_to_nhwc


@dataclass(frozen=True)
class TensorCheck:
    """Comparison of one integer tensor against the reference."""

    tensor: str
    onnx_name: str
    mismatches: int
    total: int
    max_abs_diff: int
    near_ties: int = 0  # mismatches where the float32 reference sat on a rounding boundary

    @property
    def unexplained(self) -> int:
        """Mismatches that are not float32 near-ties: each one is a lowering bug."""
        return self.mismatches - self.near_ties


def reference_context(model: onnx.ModelProto, float_input: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of the reference execution (qonnx execute_onnx, node by node)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    from splitter.lowering.onnx_view import graph_input, with_shapes

    wrapper = ModelWrapper(with_shapes(model))
    return execute_onnx(wrapper, {graph_input(model).name: float_input}, return_full_exec_context=True)


def reference_integer(graph: DataflowGraph, context: dict[str, np.ndarray], tensor: str) -> np.ndarray:
    """The reference's value of dataflow tensor `tensor` as NHWC integers (ONNX value / scale)."""
    ref = graph.reference[tensor]
    values = context[ref.onnx_name].astype(np.float64)
    values = (values if ref.offset is None else values - ref.offset) / ref.scale
    ints = np.rint(values)
    if not np.allclose(values, ints, atol=1e-3):
        raise AssertionError(f"reference tensor {ref.onnx_name} is not an integer multiple of its scale")
    return nchw_to_nhwc(ints.astype(np.int64))


def check_layers(graph: DataflowGraph, model: onnx.ModelProto, raw: np.ndarray) -> tuple[list[TensorCheck], dict]:
    """Run each layer on the reference's own input and compare every referenced output exactly.

    Feeding each layer the reference input isolates layers, so one mismatch cannot hide or
    cascade into others. Returns the checks and the reference context.
    """
    context = reference_context(model, model_float_input(graph.input_quant, raw))
    return check_layers_in(graph, model, raw, context), context


def check_layers_in(graph: DataflowGraph, model: onnx.ModelProto, raw: np.ndarray,
                    context: dict[str, np.ndarray]) -> list[TensorCheck]:
    """`check_layers` against a reference execution already made (`context`, every tensor of it)."""
    checks = []
    values = {graph.input.name: dataflow_input(graph, raw)}
    last_read = {name: i for i, layer in enumerate(graph.layers) for name in layer.inputs}
    for i, layer in enumerate(graph.layers):
        args = [reference_integer(graph, context, name) if name in graph.reference and name != graph.input.name
                else values[name] for name in layer.inputs]
        x = run_layer(layer, *args)
        for name in layer.inputs:
            if last_read[name] == i:
                values.pop(name, None)
        values.update(dict.fromkeys(layer.outputs, x))
        if layer.output in graph.reference:
            want = reference_integer(graph, context, layer.output)
            diff = np.abs(want - x)
            onnx_name = graph.reference[layer.output].onnx_name
            ties = _near_ties(model, context, onnx_name, diff) if diff.any() else 0
            checks.append(TensorCheck(layer.output, onnx_name, int(np.count_nonzero(diff)), diff.size,
                                      int(diff.max(initial=0)), ties))
    return checks


def explain(checks: list[TensorCheck], producers: dict[str, str]) -> str:
    """Why an output differs from the reference, from its layer-by-layer checks (`producers`: tensor -> layer).

    Only float32 near-ties: the reference's own rounding, amplified by the layers after it. Anything
    else is a lowering error.
    """
    ties = [c for c in checks if c.near_ties]
    wrong = [c for c in checks if c.unexplained]
    where = ", ".join(f"{producers.get(c.tensor, c.tensor)}: {c.near_ties}" for c in ties[:4])
    if wrong:
        first = producers.get(wrong[0].tensor, wrong[0].tensor)
        return (f"{sum(c.unexplained for c in wrong)} values differ that are not float32 near-ties (first in "
                f"{first}): a lowering error, please report it")
    if not ties:
        return "every layer equals the reference on its own input: the difference is the output's float32 rounding"
    return (f"{sum(c.near_ties for c in ties)} float32 near-tie(s) ({where}) and no other difference in "
            f"{sum(c.total for c in checks):,} values: the reference's float32 rounding at a rounding boundary, "
            "amplified by the layers after it; not a lowering error")


# Distance from a rounding boundary (x.5), in quantization steps, below which the float32
# reference's own summation order decides the result (see docs/lowering.md, "Float32 near-ties").
NEAR_TIE = 2e-5


def _near_ties(model: onnx.ModelProto, context: dict[str, np.ndarray], onnx_name: str, diff: np.ndarray) -> int:
    """How many mismatches are off by one where the reference's Quant input was within NEAR_TIE of x.5."""
    producer = next((n for n in model.graph.node if onnx_name in n.output), None)
    if producer is None or producer.op_type != "Quant":
        return 0
    scale = context.get(producer.input[1])
    if scale is None:
        scale = next(onnx.numpy_helper.to_array(i) for i in model.graph.initializer if i.name == producer.input[1])
    steps = nchw_to_nhwc(context[producer.input[0]].astype(np.float64) / np.asarray(scale, dtype=np.float64))
    distance = np.abs(steps - np.floor(steps) - 0.5)
    return int(np.count_nonzero((diff == 1) & (distance <= NEAR_TIE)))

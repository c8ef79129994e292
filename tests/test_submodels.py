"""QONNX sub-models cut at partition boundaries reproduce the whole model exactly when chained."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from splitter.bundle.submodel import SubModelError, sub_models
from splitter.folding import cut_allowed
from splitter.graph import DataflowGraph
from splitter.host import dataflow_input, model_float_input
from tests.conftest import ZOO


def run_onnx(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """Execute a (Q)ONNX model on its single input with qonnx's executor."""
    wrapper = ModelWrapper(model)
    return execute_onnx(wrapper, {wrapper.graph.input[0].name: x})[wrapper.graph.output[0].name]


def onnx_shape(info: onnx.ValueInfoProto) -> list[int]:
    """Static shape of a graph input or output."""
    return [d.dim_value for d in info.type.tensor_type.shape.dim]


def raw_inputs(model: onnx.ModelProto, graph: DataflowGraph, count: int, seed: int) -> list[np.ndarray]:
    """User inputs: integer pixels for a declared input, floats in [-1, 1] for a self-quantizing model."""
    rng = np.random.default_rng(seed)
    shape = onnx_shape(model.graph.input[0])
    if graph.input_quant.kind == "declared":
        return [rng.integers(0, 256, size=shape).astype(np.float32) for _ in range(count)]
    return [rng.uniform(-1, 1, size=shape).astype(np.float32) for _ in range(count)]


def first_sub_model_input(graph: DataflowGraph, first: onnx.ModelProto, raw: np.ndarray) -> np.ndarray:
    """What the laptop sends the first board, in the first sub-model's ONNX layout."""
    if graph.input_quant.kind == "declared":
        return raw
    nhwc = dataflow_input(graph, raw)
    shape = onnx_shape(first.graph.input[0])
    values = nhwc.transpose(0, 3, 1, 2) if len(shape) == 4 else nhwc.reshape(shape)
    return values.astype(np.float32)


def whole_model_output(model: onnx.ModelProto, graph: DataflowGraph, raw: np.ndarray) -> np.ndarray:
    """The original model's output for user input `raw`."""
    iq = graph.input_quant
    return run_onnx(model, model_float_input(iq, raw) if iq.kind == "declared" else raw)


def chain_output(subs: list[onnx.ModelProto], graph: DataflowGraph, raw: np.ndarray) -> list[np.ndarray]:
    """Every sub-model's output, each fed with the previous one's."""
    outputs = []
    values = first_sub_model_input(graph, subs[0], raw)
    for sub in subs:
        values = run_onnx(sub, values)
        outputs.append(values)
    return outputs


def spread_cuts(graph: DataflowGraph, count: int) -> list[int]:
    """Up to `count` allowed cut indices spread over the chain."""
    allowed = [i for i in range(1, len(graph.layers)) if cut_allowed(graph.layers, i)]
    step = max(1, len(allowed) // count)
    return allowed[step // 2 :: step][:count]


@pytest.mark.filterwarnings("error:The values of tensor")  # qonnx: a boundary value was not an integer
@pytest.mark.parametrize("name", ZOO)
def test_chained_sub_models_equal_the_whole_model(zoo_lowered: dict, name: str) -> None:
    model, graph = zoo_lowered[name]
    cuts = spread_cuts(graph, 5)
    subs = sub_models(model, graph, cuts)
    assert len(subs) == len(cuts) + 1
    for raw in raw_inputs(model, graph, 1 if name.startswith("mobilenet") else 3, seed=7):
        outputs = chain_output(subs, graph, raw)
        whole = whole_model_output(model, graph, raw)
        np.testing.assert_array_equal(outputs[-1], whole)
        for values in outputs[:-1]:
            assert np.array_equal(values, np.rint(values)), "a board boundary must carry integers"


@pytest.mark.parametrize("name", ZOO)
def test_every_allowed_cut_has_a_qonnx_boundary(zoo_lowered: dict, name: str) -> None:
    model, graph = zoo_lowered[name]
    allowed = [i for i in range(1, len(graph.layers)) if cut_allowed(graph.layers, i)]
    subs = sub_models(model, graph, allowed)
    assert len(subs) == len(allowed) + 1


def test_boundaries_carry_finn_datatype_annotations(zoo_lowered: dict) -> None:
    model, graph = zoo_lowered["mobilenet-v1-w4a4"]
    cut = spread_cuts(graph, 1)[0]
    first, second = sub_models(model, graph, [cut])
    boundary = graph.layers[cut - 1].output
    assert ModelWrapper(first).get_tensor_datatype("global_in").name == "UINT8"
    assert ModelWrapper(first).get_tensor_datatype(boundary).name == graph.tensors[boundary].dtype.name
    assert ModelWrapper(second).get_tensor_datatype(boundary).name == graph.tensors[boundary].dtype.name
    assert first.graph.output[0].name == second.graph.input[0].name == boundary


def test_cut_without_a_qonnx_tensor_is_refused(zoo_lowered: dict) -> None:
    model, graph = zoo_lowered["mobilenet-v1-w4a4"]
    fc = next(i for i, x in enumerate(graph.layers) if x.op_type == "MVAU" and int(x.attrs["noActivation"]))
    assert not cut_allowed(graph.layers, fc + 1)
    with pytest.raises(SubModelError, match="no tensor holding its values"):
        sub_models(model, graph, [fc + 1])


def test_cut_points_out_of_order_are_refused(zoo_lowered: dict) -> None:
    model, graph = zoo_lowered["cnv-w2a2"]
    a, b = spread_cuts(graph, 2)
    with pytest.raises(SubModelError, match="out of order"):
        sub_models(model, graph, [b, a])

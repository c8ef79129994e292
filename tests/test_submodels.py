"""QONNX sub-models cut at partition boundaries reproduce the whole model exactly when chained."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ZOO
from onnx_chain import chain_output, raw_inputs, whole_model_output
from qonnx.core.modelwrapper import ModelWrapper

from splitter.bundle.submodel import SubModelError, sub_models
from splitter.folding import cut_allowed
from splitter.graph import DataflowGraph


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

"""QONNX sub-models cut at partition boundaries reproduce the whole model exactly when chained."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ZOO
from onnx_chain import chain_output, raw_inputs, whole_model_output
from qonnx.core.modelwrapper import ModelWrapper

from splitter.bundle.submodel import SubModelError, sub_models
from splitter.folding import carried, cut_allowed, last_reader
from splitter.graph import DataflowGraph


def spread_cuts(graph: DataflowGraph, count: int) -> list[int]:
    """Up to `count` allowed cut indices spread over the chain (each partition reads what it receives)."""
    allowed = [i for i in range(1, len(graph.layers)) if cut_allowed(graph.layers, i)]
    step = max(1, len(allowed) // count)
    return valid_sequence(graph, allowed[step // 2 :: step][:count])


def valid_sequence(graph: DataflowGraph, cuts: list[int]) -> list[int]:
    """The cuts of `cuts` kept in order while every partition reads every tensor it receives."""
    kept = []
    for cut in cuts:
        if cut > last_reader(graph.layers, kept[-1] if kept else 0):
            kept.append(cut)
    return kept


def cut_sets(graph: DataflowGraph) -> list[list[int]]:
    """Valid cut sets covering every allowed cut (inside residual blocks some cuts exclude others)."""
    left = [i for i in range(1, len(graph.layers)) if cut_allowed(graph.layers, i)]
    sets = []
    while left:
        sets.append(valid_sequence(graph, left))
        left = [i for i in left if i not in sets[-1]]
    return sets


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
    for cuts in cut_sets(graph):
        subs = sub_models(model, graph, cuts)
        assert len(subs) == len(cuts) + 1


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


@pytest.mark.filterwarnings("error:The values of tensor")
def test_cuts_inside_residual_blocks_chain_exactly(zoo_lowered: dict) -> None:
    """Sub-models cut inside blocks (two tensors crossing) take and give one ONNX tensor per crossing tensor,
    in boundary order, and chained under qonnx's execute_onnx equal the whole model and the executor."""
    from splitter.executor import execute_boundary
    from splitter.model_io import dataflow_input

    model, graph = zoo_lowered["resnet8-w4a4"]
    inside = [i for i in range(1, len(graph.layers)) if cut_allowed(graph.layers, i)
              and len(carried(graph.layers, i)) > 1]
    assert len(inside) >= 6
    for cuts in cut_sets(graph):
        if not set(cuts) & set(inside):
            continue
        subs = sub_models(model, graph, cuts)
        for sub, stop in zip(subs, [*cuts, None], strict=True):
            if stop is not None:
                assert [o.name for o in sub.graph.output] == graph.live_tensors(stop)
        pieces = [graph.slice(a, b, f"p{k}") for k, (a, b) in enumerate(
            zip([0, *cuts], [*cuts, len(graph.layers)], strict=True))]
        for raw in raw_inputs(model, graph, 2, seed=3):
            outputs = chain_output(subs, graph, raw, every=True)
            np.testing.assert_array_equal(outputs[-1][0], whole_model_output(model, graph, raw))
            values = [dataflow_input(graph, raw)]
            for piece, onnx_values in zip(pieces[:-1], outputs[:-1], strict=True):
                values = execute_boundary(piece, values)
                for ours, theirs in zip(values, onnx_values, strict=True):  # NHWC vs the ONNX model's NCHW
                    np.testing.assert_array_equal(ours, np.rint(theirs).astype(np.int64).transpose(0, 2, 3, 1))

"""MobileNetV1 (w4a4) split in three, run by three emulate servers on loopback, equals the Python executor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cpp_fixtures import (
    ServerFleet,
    fleet,  # noqa: F401 - fixture
    random_input,
    server_bin,  # noqa: F401 - fixture
)
from test_cpp_pipeline import start_emulate_chain

from orchestrator.dataplane.client import ChainClient
from splitter.executor import execute
from splitter.graph import DataflowGraph


def layer_macs(graph: DataflowGraph) -> list[int]:
    """Multiply-accumulates per layer (MVAU and VVAU; other layers count as 0)."""
    macs = []
    for layer in graph.layers:
        pixels = int(np.prod(graph.tensors[layer.output].shape[:-1]))
        weights = layer.params.get("weights")
        macs.append(pixels * int(weights.size) if layer.op_type in ("MVAU", "VVAU") and weights is not None else 0)
    return macs


def balanced_cuts(graph: DataflowGraph, parts: int) -> list[int]:
    """Layer indices that split the chain into `parts` of about equal MACs."""
    cumulative = np.cumsum(layer_macs(graph))
    return [int(np.searchsorted(cumulative, cumulative[-1] * k / parts)) + 1 for k in range(1, parts)]


@pytest.mark.slow
def test_mobilenet_v1_split_in_three_equals_python_executor(zoo_lowered: dict, fleet: ServerFleet,  # noqa: F811
                                                           tmp_path: Path) -> None:
    _, graph = zoo_lowered["mobilenet-v1-w4a4"]
    cuts = balanced_cuts(graph, 3)
    assert 0 < cuts[0] < cuts[1] < len(graph.layers)
    rng = np.random.default_rng(2024)
    frames = [random_input(graph, rng) for _ in range(3)]
    with ChainClient(graph.input, graph.output) as client:
        chain = start_emulate_chain(fleet, graph, cuts, client, tmp_path)
        client.connect(chain[0].address)
        results = client.infer_many(frames)
        for frame, got in zip(frames, results, strict=True):
            np.testing.assert_array_equal(got, execute(graph, frame))
        for server in chain:
            assert server.terminate() == 0

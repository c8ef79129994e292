"""The cost model's FINN term against FINN v0.10.1's own per-layer estimates (tests/data/finn_golden/).

The baselines were produced by FINN's estimate flow (tests/finn_golden.py); the first test needs
no FINN, the second runs FINN today on the same partitions and foldings and must reproduce them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from finn_golden import CASES, METRICS, TOLERANCE, folding_of, golden_path, within
from test_finn_flow import finn_python  # noqa: F401 - fixture

from splitter.boards import load_board
from splitter.bundle.finn_graph import finn_hw_model
from splitter.cost import layer_cost
from splitter.finn.config import write_build_config
from splitter.finn.env import FinnPython
from splitter.folding import apply_folding, node_entries


def _golden(model: str, boards: str) -> dict:
    return json.loads(golden_path(model, boards).read_text())


@pytest.mark.parametrize(("model", "boards"), CASES)
def test_cost_model_reproduces_finns_estimates(model: str, boards: str, zoo_lowered: dict) -> None:
    golden = _golden(model, boards)
    assert golden["tolerance"] == TOLERANCE
    _, graph = zoo_lowered[model]
    compared = 0
    for part in golden["partitions"]:
        board = load_board(part["board"])
        for layer, entry in zip(graph.layers[part["start"]:part["stop"]], part["layers"], strict=True):
            assert layer.name == entry["layer"]
            cost = layer_cost(layer, folding_of(entry["folding"]), board, graph.tensors)
            for node_cost, node in zip(cost.nodes, entry["nodes"], strict=True):
                assert node["node"].startswith(node_cost.impl + "_")
                got = {"cycles": node_cost.cycles, "LUT": node_cost.finn.lut, "BRAM_18K": node_cost.finn.bram18,
                       "URAM": node_cost.finn.uram, "DSP": node_cost.finn.dsp}
                bad = {m: (got[m], node[m]) for m in METRICS if not within(m, got[m], node[m])}
                assert not bad, f"{node['node']} ({layer.name}, {entry['folding']}): cost model vs FINN {bad}"
                compared += 1
    assert compared == sum(len(x["nodes"]) for p in golden["partitions"] for x in p["layers"])


@pytest.mark.parametrize(("model", "boards"), [("cnv-w2a2", "kv260:1"), ("tfc-w2a2", "pynq-z2:1")])
def test_finn_today_reproduces_the_baselines(model: str, boards: str, zoo_lowered: dict,
                                             finn_python: FinnPython, tmp_path: Path) -> None:  # noqa: F811
    golden = _golden(model, boards)
    _, graph = zoo_lowered[model]
    for part in golden["partitions"]:
        board = load_board(part["board"])
        folds = [folding_of(x["folding"]) for x in part["layers"]]
        piece = graph.slice(part["start"], part["stop"], f"golden_p{part['index']}")
        costs = [layer_cost(x, f, board, graph.tensors) for x, f in zip(piece.layers, folds, strict=True)]
        piece.layers = [apply_folding(x, f) for x, f in zip(piece.layers, folds, strict=True)]
        directory = tmp_path / f"p{part['index']}"
        directory.mkdir()
        (directory / "model.onnx").write_bytes(finn_hw_model(piece, folds, costs).SerializeToString())
        folding = {"Defaults": {}}
        for layer, f, entry in zip(piece.layers, folds, part["layers"], strict=True):
            folding.update({n["node"]: e for n, e in zip(entry["nodes"], node_entries(layer, f), strict=True)})
        (directory / "folding_config.json").write_text(json.dumps(folding))
        write_build_config(directory, board)
        done = subprocess.run([finn_python.python, "-m", "splitter.finn.worker", str(directory)],
                              capture_output=True, text=True, env=finn_python.environment(tmp_path / "build"))
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads((directory / "finn_estimates" / "summary.json").read_text())
        cycles = summary["reports"]["estimate_layer_cycles"]
        resources = summary["reports"]["estimate_layer_resources"]
        for node in (n for x in part["layers"] for n in x["nodes"]):
            got = {"cycles": cycles[node["node"]], **{m: resources[node["node"]][m] for m in METRICS[1:]}}
            bad = {m: (got[m], node[m]) for m in METRICS if not within(m, got[m], node[m])}
            assert not bad, f"{node['node']}: FINN today vs baseline {bad}"

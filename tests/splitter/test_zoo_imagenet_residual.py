"""The zoo's ImageNet-size residual network, proxylessnas-w4a4 (brevitas_examples' ProxylessNAS-Mobile14,
224x224, 1000 classes, 13 inverted residual units), from either brevitas exporter:

- both lower to the same dataflow layers, DuplicateStreams / AddStreams at every shortcut;
- every layer equals qonnx's execute_onnx on its own input, but for float32 near-ties;
- `finnsplit build M --boards 9` on Zedboards and `finnsplit virtual B --check M` end bit-exact;
- FINN's flow takes every partition (estimates equal to the plan, its execution equal to the executor).

Its own module (not conftest.ZOO): a 224x224 network is slow in the per-layer checks the small models get
20 inputs of. Kept to a few frames.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from cpp_fixtures import server_bin  # noqa: F401  (fixture: builds cpp_server)
from test_exporters import differences

from splitter.finn.env import find_finn_python
from splitter.load import load_and_lower
from splitter.verify import check_layers

NAME = "proxylessnas-w4a4"
EXPORTERS = ("brevitas-0.13", "brevitas-0.10")
FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The model exported by brevitas 0.13 (seed 0) and by brevitas 0.10 from the same state_dict (its checkpoint)."""
    from splitter.zoo import export, export_legacy

    directory = tmp_path_factory.mktemp("proxyless")
    new, state, old = directory / "new.onnx", directory / "weights.pth", directory / "old.onnx"
    export(NAME, new, seed=0, save_state=state)
    export_legacy([(NAME, old)], seed=0, checkpoints={NAME: state})
    return {"brevitas-0.13": new, "brevitas-0.10": old}


@pytest.fixture(scope="module")
def lowered(exports: dict[str, Path]) -> dict:
    """(imported model, dataflow graph) per exporter, with the zoo's declared input (mean 128/255)."""
    return {exporter: load_and_lower(str(path), None, "proxylessnas") for exporter, path in exports.items()}


@pytest.mark.slow
def test_lowers_to_finn_layers_alike_from_both_exporters(lowered: dict) -> None:
    _, new = lowered["brevitas-0.13"]
    _, old = lowered["brevitas-0.10"]
    ops = Counter(layer.op_type for layer in new.layers)
    # 13 shortcut units: one fork and one join each, the join's shared quantizer a Thresholding on a + b
    assert (ops["DuplicateStreams"], ops["AddStreams"], ops["Thresholding"]) == (13, 13, 13)
    assert (ops["MVAU"], ops["VVAU"], ops["FMPadding"]) == (42, 20, 21)
    assert new.input_quant.shift == (128, 128, 128) and new.input_quant.factor == 1  # the padded first conv
    # as MobileNetV1's (tests/splitter/test_exporters.py): brevitas 0.10's TruncAvgPool2d keeps its input's scale, so
    # only the last bias' integers (in steps of pool scale x weight scale) differ
    found = differences(new, old)
    bias = new.layers[-1]
    assert (bias.op_type, bias.attrs["Func"]) == ("ChannelwiseOp", "add")
    assert found and all(f.startswith(f"{bias.name}.") for f in found), found


@pytest.mark.slow
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_every_layer_matches_qonnx(exporter: str, lowered: dict) -> None:
    model, graph = lowered[exporter]
    rng = np.random.default_rng(7)
    total = ties = 0
    for _ in range(2):
        checks, _ = check_layers(graph, model, rng.integers(0, 256, (1, 3, 224, 224)))
        assert len(checks) > 100
        for check in checks:
            assert check.unexplained == 0, check
            total += check.total
            ties += check.near_ties
    assert ties <= total * 1e-5, f"{ties} near-ties in {total} values"


def finnsplit(*args: str) -> subprocess.CompletedProcess:
    """Run the finnsplit command line; returns the completed process."""
    return subprocess.run([*FINNSPLIT, *args], capture_output=True, text=True, timeout=1800)


@pytest.mark.slow
@pytest.mark.usefixtures("server_bin")
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_build_on_zedboards_and_virtual_check(exporter: str, exports: dict[str, Path], tmp_path: Path) -> None:
    model = str(exports[exporter])
    built = finnsplit("build", model, "--boards", "9", "--finn", "no", "--no-replicate", "-o", str(tmp_path / "b"))
    assert built.returncode == 0, built.stderr[-3000:]
    assert "sent as x * 1 - [128, 128, 128] (INT8)" in built.stdout
    assert re.search(r"^\s+8 zedboard ", built.stdout, re.MULTILINE), built.stdout
    done = finnsplit("virtual", str(tmp_path / "b"), "--images", "2", "--check", model)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "bit-exact vs the Python executor: 2/2 frames" in done.stdout
    assert "vs the original QONNX model: identical outputs" in done.stdout
    # a frame that differs from qonnx is explained, and only by float32 near-ties (docs/lowering.md)
    explained = [line for line in done.stdout.splitlines() if "differs from qonnx:" in line]
    assert all(line.endswith("; not a lowering error") for line in explained), done.stdout
    if exporter == "brevitas-0.13":  # FINN's own flow takes every partition: estimates = plan, execution = executor
        find_finn_python()  # this tier is part of CI: a missing FINN fails
        finn = finnsplit("finn-build", str(tmp_path / "b"), "--estimates-only", "--verify", "1")
        assert finn.returncode == 0, finn.stderr[-3000:]
        manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
        for part in manifest["partitions"]:
            entry = part["finn_estimates"]
            assert entry["ok"] and entry["mismatches"] == [], entry
            assert entry["max_cycles"] == part["predicted"]["cycles"]
        assert "FINN's execution checked on 1 frame(s) per partition" in finn.stdout, finn.stdout
        assert "mismatch" not in finn.stdout

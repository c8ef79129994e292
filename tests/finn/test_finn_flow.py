"""FINN in the loop: every partition through FINN v0.10.1's own flow, in FINN's own interpreter.

The real FINN (../shared/vendor, built into .venv-finn by scripts/setup-finn.sh) runs its default
steps up to step_generate_estimate_reports on each partition's HW-layer graph. Checked: FINN accepts
it, builds the layers, names and folding the plan costed, estimates the plan's cycles and FINN
terms exactly, and FINN's execution equals finnsplit's executor and the C++ emulate backend on
seeded frames at every partition boundary. Only Vivado and Vitis HLS are missing here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cpp_fixtures import run_program, server_bin  # noqa: F401 - fixture

from core.manifest import file_entry, load_manifest, write_manifest
from core.packing import pack_frame, unpack_frame
from splitter import program
from splitter.build import BuildConfig, build
from splitter.finn.env import FinnNotFoundError, FinnPython, find_finn_python
from splitter.finn.estimates import run_estimates
from splitter.finn_check import boundary_frames, finn_estimates
from splitter.graph import DataflowGraph

FINNSPLIT = [str(Path(sys.executable).with_name("finnsplit"))]


@pytest.fixture(scope="session")
def finn_python() -> FinnPython:
    """FINN's interpreter; this tier is part of CI, so a missing FINN fails instead of skipping."""
    try:
        return find_finn_python()
    except FinnNotFoundError as exc:
        pytest.fail(f"{exc}")


def _bundle(model: Path, boards: str, out: Path, replicate: bool = True) -> Path:
    build(BuildConfig(model=str(model), output=str(out), boards=boards, finn="no", replicate=replicate))
    return out


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _finnsplit(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*FINNSPLIT, *args], capture_output=True, text=True, timeout=1800,
                          env={**os.environ, **(env or {})})


def _emulate(binary: Path, graph: DataflowGraph, frames: dict[str, np.ndarray], work: Path) -> dict:
    """The emulate backend's outputs, keyed as boundary_frames keys them (F, or F#k for several tensors)."""
    work.mkdir(parents=True, exist_ok=True)
    if len(graph.inputs) == 1 and len(graph.outputs) == 1:
        keys = sorted(frames)
        outputs = run_program(binary, graph, [frames[k] for k in keys], work)
        return dict(zip(keys, outputs, strict=True))
    names = sorted({k.split("#")[0] for k in frames})
    parts = [[frames[n] if len(graph.inputs) == 1 else frames[f"{n}#{i}"] for i in range(len(graph.inputs))]
             for n in names]
    program.write(graph, work / "p.fsprog")
    (work / "in.bin").write_bytes(b"".join(pack_frame(xs, graph.inputs) for xs in parts))
    done = subprocess.run([str(binary), "run", "--program", str(work / "p.fsprog"), "--input", str(work / "in.bin"),
                           "--output", str(work / "out.bin")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    data = (work / "out.bin").read_bytes()
    size = len(data) // len(names)
    out = {}
    for k, name in enumerate(names):
        values = unpack_frame(data[k * size:(k + 1) * size], graph.outputs)
        out.update({name: values[0]} if len(values) == 1 else {f"{name}#{i}": v for i, v in enumerate(values)})
    return out


def test_mobilenet_on_six_zedboards_through_finn(zoo_dir: Path, finn_python: FinnPython, server_bin: Path,  # noqa: F811
                                                 tmp_path: Path) -> None:
    """The issue's "done when": build for 6 Zedboards, FINN's estimates for all 6, 8 frames bit-exact."""
    model = zoo_dir / "mobilenet-v1-w4a4.onnx"
    done = _finnsplit("build", str(model), "--boards", "6", "-o", str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
    done = _finnsplit("finn-build", str(tmp_path / "b"), "--estimates-only", "--jobs", "2", "--verify", "8")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    bundle = tmp_path / "b"
    manifest = _manifest(bundle)
    assert len(manifest["partitions"]) == 6
    frames = boundary_frames(bundle, 8)  # the same seeded frames the command used
    for part in manifest["partitions"]:
        entry, out = part["finn_estimates"], bundle / part["dir"] / "finn_estimates"
        assert entry["ok"] and entry["mismatches"] == []
        assert entry["max_cycles"] == part["predicted"]["cycles"]
        for name in ("estimate_layer_cycles", "estimate_layer_resources", "estimate_network_performance"):
            assert (out / "report" / f"{name}.json").is_file()
        cycles = json.loads((out / "report" / "estimate_layer_cycles.json").read_text())
        assert cycles == {layer["node"]: layer["cycles"] for layer in part["predicted"]["layers"]}
        summary = json.loads((out / "summary.json").read_text())
        assert summary["executed"]["range_errors"] == []
        ran = summary["executed"]["specialized_nodes_run"]
        assert ran and all(ran.values())
        # the emulate backend on the same boundary frames equals FINN's execution
        graph = program.read(bundle / part["files"]["program"]["path"])
        inputs = dict(np.load(out / "verify_inputs.npz"))
        emulated = _emulate(server_bin, graph, inputs, tmp_path / f"emulate{part['index']}")
        with np.load(out / "outputs.npz") as finn:
            for key, want in frames.expected[part["index"]].items():
                np.testing.assert_array_equal(finn[key], want)
                np.testing.assert_array_equal(emulated[key], want)
    assert "exact" in done.stdout and "mismatch" not in done.stdout


@pytest.mark.parametrize(("model", "boards", "frames"), [
    # every board kind once at least (pynq-z2: tfc, lfc; zcu104, kv260: mobilenet), each layer kind once
    ("cnv-w2a2", "zedboard:2", 8),
    ("tfc-w2a2", "pynq-z2:1", 8),
    ("mobilenet-v1-w4a4", "zcu104:2", 2),
    ("mobilenet-v1-w4a4", "kv260:3", 2),
    ("cnv-w1a1", "zedboard:2", 4),  # XNOR-popcount MVAUs (binaryXnorMode), a first layer of 8-bit x bipolar
    ("lfc-w1a1", "pynq-z2:1", 4),  # a bipolar graph input (BINARY from the host) and an XNOR layer without activation
    ("resnet8-w4a4", "zedboard:3", 4),  # residual blocks, cut between blocks: DuplicateStreams, AddStreams
    ("resnet8-w4a4", "zedboard:6", 2),  # cut inside a block: a partition with two outputs, one with two inputs
])
def test_zynq7000_and_ultrascale_partitions_go_through_finn(
    model: str, boards: str, frames: int, zoo_dir: Path, finn_python: FinnPython, server_bin: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    bundle = _bundle(zoo_dir / f"{model}.onnx", boards, tmp_path / "b", replicate=not model.startswith("resnet"))
    if boards == "zedboard:6":  # the plan cuts inside a block: two tensors cross, as FINN's graph inputs/outputs
        crossing = [len(p["output"]["tensors"]) for p in _manifest(bundle)["partitions"]]
        assert 2 in crossing
    results, problems = finn_estimates(bundle, None, 2, False, frames, lambda _: None)
    assert problems == []  # FINN's execution equals the executor on every frame at every boundary
    expected = boundary_frames(bundle, frames).expected
    for part in _manifest(bundle)["partitions"]:
        graph = program.read(bundle / part["files"]["program"]["path"])
        inputs = dict(np.load(bundle / part["dir"] / "finn_estimates" / "verify_inputs.npz"))
        emulated = _emulate(server_bin, graph, inputs, tmp_path / f"emulate{part['index']}")
        for key, want in expected[part["index"]].items():
            np.testing.assert_array_equal(emulated[key], want)
    assert {r.status for r in results} == {"ran"}
    parts = {p["index"]: p for p in _manifest(bundle)["partitions"]}
    for r in results:
        layers = r.comparison["layers"]
        assert [x["node"] for x in layers] == [x["node"] for x in parts[r.index]["predicted"]["layers"]]
        assert all(x["finn_cycles"] == x["plan_cycles"] for x in layers)
        assert all(x["finn"] == x["plan"] for x in layers)  # FINN's term of the cost model is FINN's estimate


def test_hw_codegen_runs_without_xilinx_tools(zoo_dir: Path, finn_python: FinnPython, tmp_path: Path) -> None:
    """step_hw_codegen (HLS sources, filled RTL templates) needs no Xilinx tool; it runs on every node."""
    bundle = _bundle(zoo_dir / "cnv-w2a2.onnx", "zedboard:2", tmp_path / "b")
    results = run_estimates(bundle, [0], codegen=True, log=lambda _: None, python=finn_python)
    assert results[0].summary["steps"][-1] == "step_hw_codegen"
    gen = Path(os.environ.get("FINN_BUILD_DIR", bundle / "partition-0" / "finn_estimates" / "build_dir"))
    assert any(gen.rglob("*.v")) or any(gen.rglob("*.cpp"))


def test_unchanged_partitions_are_skipped_and_changed_ones_rerun(zoo_dir: Path, finn_python: FinnPython,
                                                                 tmp_path: Path) -> None:
    bundle = _bundle(zoo_dir / "cnv-w2a2.onnx", "zedboard:2", tmp_path / "b")
    run_estimates(bundle, jobs=2, log=lambda _: None, python=finn_python)
    lines: list[str] = []
    again = run_estimates(bundle, jobs=2, log=lines.append, python=finn_python)
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert sum("unchanged, skipped" in line for line in lines) == 2
    config = bundle / "partition-1" / "dataflow_build_config.json"
    config.write_text(json.dumps(json.loads(config.read_text()), indent=1))  # same settings, new bytes
    third = run_estimates(bundle, jobs=2, log=lambda _: None, python=finn_python)
    assert [r.status for r in third] == ["skipped", "ran"]
    assert (bundle / "partition-1" / "finn_estimates" / "worker.log").is_file()


def test_a_folding_entry_finn_ignores_and_a_node_the_plan_did_not_cost_fail(
    zoo_dir: Path, finn_python: FinnPython, tmp_path: Path,
) -> None:
    bundle = _bundle(zoo_dir / "tfc-w2a2.onnx", "pynq-z2:1", tmp_path / "b")
    folding_path = bundle / "partition-0" / "folding_config.json"
    folding = json.loads(folding_path.read_text())
    folding["MVAU_hls_9"] = {"PE": 2}
    first = next(k for k in folding if k != "Defaults")
    folding[first]["PE"] = 1 if folding[first]["PE"] != 1 else 2  # FINN applies it; the plan costed another
    folding_path.write_text(json.dumps(folding))
    manifest = _manifest(bundle)
    manifest["partitions"][0]["predicted"]["layers"].pop()  # the plan "forgot" the last node
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    _, problems = finn_estimates(bundle, None, 1, False, 0, lambda _: None)
    text = "\n".join(problems)
    assert "folding entry MVAU_hls_9 names no node of FINN's graph" in text
    assert "which the plan did not cost" in text
    assert f"{first}: FINN estimates" in text and "cycles, the plan" in text
    done = _finnsplit("finn-build", str(bundle), "--estimates-only")
    assert done.returncode == 2 and "FINN and the plan disagree" in done.stderr and "Traceback" not in done.stderr


def test_missing_finn_and_a_partition_finn_rejects_are_clear_errors(zoo_dir: Path, finn_python: FinnPython,
                                                                     tmp_path: Path) -> None:
    bundle = _bundle(zoo_dir / "tfc-w2a2.onnx", "pynq-z2:1", tmp_path / "b")
    done = _finnsplit("finn-build", str(bundle), "--estimates-only", env={"FINNSPLIT_FINN_PYTHON": "/no/python"})
    assert done.returncode == 2 and "FINN was not found" in done.stderr and "setup-finn.sh" in done.stderr
    assert "Traceback" not in done.stderr
    model = bundle / "partition-0" / "model.onnx"
    model.write_bytes(model.read_bytes()[:200])  # truncated: not an ONNX model any more
    done = _finnsplit("finn-build", str(bundle), "--estimates-only")
    assert done.returncode == 2 and "partition-0" in done.stderr and "worker.log" in done.stderr
    assert done.stderr.count("Traceback") <= 1  # FINN's own, quoted from its log, not finnsplit's
    assert not done.stderr.startswith("Traceback")
    manifest = _manifest(bundle)
    assert manifest["partitions"][0]["finn_estimates"]["ok"] is False


def test_finn_python_from_the_environment_variable(finn_python: FinnPython, tmp_path: Path) -> None:
    link = tmp_path / "python-with-finn"
    link.write_text(f'#!/bin/sh\nexec "{finn_python.python}" "$@"\n')
    link.chmod(0o755)
    old = os.environ.get("FINNSPLIT_FINN_PYTHON")
    os.environ["FINNSPLIT_FINN_PYTHON"] = str(link)
    try:
        found = find_finn_python()
    finally:
        os.environ.pop("FINNSPLIT_FINN_PYTHON")
        if old is not None:
            os.environ["FINNSPLIT_FINN_PYTHON"] = old
    assert found.python == str(link) and found.source == "FINNSPLIT_FINN_PYTHON"
    assert found.finn_version == finn_python.finn_version
    assert shutil.which(found.python)


def test_a_partition_that_computes_differently_in_finn_is_caught(zoo_dir: Path, finn_python: FinnPython,
                                                                 tmp_path: Path) -> None:
    """The bit-exact check can fail: one weight changed in FINN's graph, not in finnsplit's program."""
    import onnx
    from onnx import numpy_helper

    bundle = _bundle(zoo_dir / "tfc-w2a2.onnx", "pynq-z2:1", tmp_path / "b")
    path = bundle / "partition-0" / "model.onnx"
    model = onnx.load(str(path))
    init = next(i for i in model.graph.initializer if i.name.endswith("_weights"))
    weights = numpy_helper.to_array(init).copy()
    weights[:, 0] = -weights[:, 0]
    init.CopyFrom(numpy_helper.from_array(weights, init.name))
    onnx.save(model, str(path))
    manifest = load_manifest(bundle, verify=False)
    files = {**manifest.partitions[0].files, "model": file_entry(bundle, path)}  # a consistent, wrong bundle
    write_manifest(bundle, manifest.replace_partition(manifest.partitions[0].index, files=files))
    _, problems = finn_estimates(bundle, None, 1, False, 4, lambda _: None)
    assert any("FINN's output differs from the executor's" in p for p in problems), problems


@pytest.mark.parametrize(("model", "board_name", "fps"), [("mobilenet-v1-w4a4", "zedboard", 118),
                                                           ("cnv-w2a2", "pynq-z2", 3000)])
def test_the_greedy_baseline_folds_as_finns_own_setfolding(model: str, board_name: str, fps: int,
                                                            zoo_lowered: dict, finn_python: FinnPython,
                                                            tmp_path: Path) -> None:
    """splitter.folding.finn_set_folding (the paper's greedy baseline) equals FINN v0.10.1's SetFolding."""
    from splitter.boards import load_board
    from splitter.bundle.finn_graph import finn_hw_model
    from splitter.cost import Folding, folding_from_attrs, layer_cost
    from splitter.finn.config import write_build_config
    from splitter.folding import apply_folding, finn_set_folding

    _, graph = zoo_lowered[model]
    board = load_board(board_name)
    # the folding FINN's own HW conversion leaves: PE = SIMD = 1, FMPadding at SIMD = channels (InferConvInpGen)
    folds = [Folding(simd=int(x.attrs["NumChannels"])) if x.op_type == "FMPadding" else folding_from_attrs(x)
             for x in graph.layers]
    costs = [layer_cost(x, f, board, graph.tensors) for x, f in zip(graph.layers, folds, strict=True)]
    graph = dataclasses.replace(graph, layers=[apply_folding(x, f) for x, f in zip(graph.layers, folds, strict=True)])
    directory = tmp_path / "whole"
    directory.mkdir()
    (directory / "model.onnx").write_bytes(finn_hw_model(graph, folds, costs).SerializeToString())
    write_build_config(directory, board)
    done = subprocess.run([finn_python.python, "-m", "splitter.finn.worker", str(directory), "--target-fps",
                           str(fps)], capture_output=True, text=True, env=finn_python.environment(tmp_path / "build"))
    assert done.returncode == 0, done.stderr[-3000:]
    nodes = json.loads((directory / "finn_estimates" / "summary.json").read_text())["nodes"]
    ours = finn_set_folding(graph.layers, board, graph.tensors, int(board.clock_hz / fps))
    assert len(nodes) == len(ours)
    for node, f, layer in zip(nodes, ours, graph.layers, strict=True):
        attrs = node["attrs"]
        got = (attrs.get("PE", 1), attrs.get("SIMD", 1), attrs.get("parallel_window", 0))
        want = (f.pe if "PE" in attrs else 1, f.simd if "SIMD" in attrs else 1,
                f.parallel_window if "parallel_window" in attrs else 0)
        assert got == want, f"{node['name']} ({layer.name}): FINN's SetFolding {got}, finn_set_folding {want}"

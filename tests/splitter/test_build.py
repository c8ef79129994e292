"""`finnsplit build`: the bundle on disk, run as a user runs it, checked against the whole model."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from cpp_fixtures import server_bin  # noqa: F401  (fixture: builds cpp_server)
from onnx_chain import chain_output, raw_inputs, whole_model_output

from core.manifest import BundleError, Manifest, load_manifest
from splitter import program
from splitter.boards import load_board
from splitter.bundle.export import write_bundle
from splitter.executor import execute
from splitter.model_io import dataflow_input, final_output
from splitter.partition import plan

FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]


def finnsplit(*args: str) -> subprocess.CompletedProcess:
    """Run the finnsplit command line; returns the completed process."""
    return subprocess.run([*FINNSPLIT, *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def mobilenet_bundle(zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`finnsplit build mobilenet-v1-w4a4.onnx --boards 6 -o DIR`: (DIR, stdout)."""
    out = tmp_path_factory.mktemp("bundle") / "build"
    result = finnsplit("build", str(zoo_dir / "mobilenet-v1-w4a4.onnx"), "--boards", "6", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return out, result.stdout


def sub_model_files(root: Path, manifest: Manifest) -> list[onnx.ModelProto]:
    """The bundle's QONNX sub-models in pipeline order."""
    return [onnx.load(str(root / p.files["qonnx"].path)) for p in manifest.partitions]


def test_mobilenet_on_six_zedboards_prints_the_plan(mobilenet_bundle: tuple[Path, str]) -> None:
    _, stdout = mobilenet_bundle
    rows = [line for line in stdout.splitlines() if line.strip().split(" ")[0].isdigit()]
    assert len(rows) == 6 and all("zedboard" in row for row in rows)
    assert "fps predicted" in stdout and "6 boards" in stdout
    for header in ("LUT%", "BRAM%", "DSP%", "cycles", "fps", "bytes out", "W"):
        assert header in stdout


def test_mobilenet_bundle_fits_every_board(mobilenet_bundle: tuple[Path, str]) -> None:
    root, _ = mobilenet_bundle
    manifest = load_manifest(root)
    assert len(manifest.partitions) == 6
    zedboard = load_board("zedboard")
    for part in manifest.partitions:
        predicted = part.predicted
        assert predicted["within_usable"]
        for resource, fraction in zedboard.usable.as_dict().items():
            assert predicted["resources"][resource] <= fraction * zedboard.resources.as_dict()[resource]
    assert manifest.plan.fps == pytest.approx(min(p.predicted["fps"] for p in manifest.partitions))


def test_mobilenet_bundle_links_chain_up(mobilenet_bundle: tuple[Path, str]) -> None:
    manifest = load_manifest(mobilenet_bundle[0])
    parts = manifest.partitions
    assert parts[0].input.wire == manifest.input.wire
    assert parts[-1].output.wire == manifest.output.wire
    for before, after in itertools.pairwise(parts):
        assert before.output.wire == after.input.wire
        assert before.output.packed_bytes == after.input.packed_bytes == before.predicted["bytes_out"]
    assert [x for p in parts for x in p.layers][:2] == ["ConvolutionInputGenerator_0", "MVAU_0"]


def test_mobilenet_bundle_sub_models_reproduce_the_whole_model(mobilenet_bundle: tuple[Path, str],
                                                               zoo_lowered: dict) -> None:
    root, _ = mobilenet_bundle
    model, graph = zoo_lowered["mobilenet-v1-w4a4"]
    subs = sub_model_files(root, load_manifest(root))
    for raw in raw_inputs(model, graph, 1, seed=11):
        np.testing.assert_array_equal(chain_output(subs, graph, raw)[-1], whole_model_output(model, graph, raw))


def test_mobilenet_bundle_programs_reproduce_the_whole_graph(mobilenet_bundle: tuple[Path, str],
                                                             zoo_lowered: dict) -> None:
    root, _ = mobilenet_bundle
    manifest = load_manifest(root)
    model, graph = zoo_lowered["mobilenet-v1-w4a4"]
    raw = raw_inputs(model, graph, 1, seed=12)[0]
    x = dataflow_input(graph, raw)
    values = x
    for part in manifest.partitions:
        piece = program.read(root / part.files["program"].path)
        assert [layer.name for layer in piece.layers] == list(part.layers)
        assert values.shape == part.input.tensors[0].shape
        values = execute(piece, values)
    np.testing.assert_array_equal(values, execute(graph, x))
    host = manifest.host.output
    logits = values.astype(np.float32) * np.float32(host.scale) + np.float32(host.bias)
    np.testing.assert_array_equal(logits.reshape(1, -1), final_output(graph, values))


def test_mobilenet_bundle_finn_configs(mobilenet_bundle: tuple[Path, str]) -> None:
    root, _ = mobilenet_bundle
    manifest = load_manifest(root)
    for part in manifest.partitions:
        folding = json.loads((root / part.files["folding"].path).read_text())
        names = [k for k in folding if k != "Defaults"]
        # one entry per FINN node: a layer with standalone thresholds is two (an MVAU/VVAU and a Thresholding_rtl)
        assert names == [x["node"] for x in part.predicted["layers"]]
        assert {x["layer"] for x in part.predicted["layers"]} == set(part.layers)
        assert all(n.rsplit("_", 2)[1] in ("hls", "rtl") for n in names), names
        config = json.loads((root / part.files["finn_build"].path).read_text())
        assert config["fpga_part"] == "xc7z020clg484-1"
        assert config["folding_config_file"] == "folding_config.json"
        sub = onnx.load(str(root / part.files["qonnx"].path))
        annotated = {a.tensor_name for a in sub.graph.quantization_annotation}
        assert part.input.tensors[0].tensor in annotated


def test_corrupted_bundle_file_is_detected(mobilenet_bundle: tuple[Path, str], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(mobilenet_bundle[0], copy)
    target = copy / "partition-2" / "program.fsprog"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x40
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"partition-2/program\.fsprog is corrupted"):
        load_manifest(copy)
    target.unlink()
    with pytest.raises(BundleError, match="missing"):
        load_manifest(copy)


def test_heterogeneous_boards_with_replicas(zoo_dir: Path, tmp_path: Path, zoo_lowered: dict) -> None:
    out = tmp_path / "cnv"
    result = finnsplit("build", str(zoo_dir / "cnv-w2a2.onnx"), "--boards", "pynq-z2:2,zedboard:1", "--finn", "no",
                       "-o", str(out))
    assert result.returncode == 0, result.stderr
    manifest = load_manifest(out)
    assert sum(p.replicas for p in manifest.partitions) <= 3
    assert {p.board for p in manifest.partitions} <= {"pynq-z2", "zedboard"}
    model, graph = zoo_lowered["cnv-w2a2"]
    subs = sub_model_files(out, manifest)
    assert manifest.host.input.kind == "onnx"
    assert (out / manifest.host.files["input_quant"].path).is_file()
    for raw in raw_inputs(model, graph, 2, seed=3):
        np.testing.assert_array_equal(chain_output(subs, graph, raw)[-1], whole_model_output(model, graph, raw))


def test_too_few_boards_names_the_minimum(zoo_dir: Path, tmp_path: Path) -> None:
    result = finnsplit("build", str(zoo_dir / "mobilenet-v1-w4a4.onnx"), "--boards", "2", "-o", str(tmp_path / "b"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "zedboard" in result.stderr and "at least" in result.stderr.lower(), result.stderr
    assert not (tmp_path / "b").exists()


def test_unknown_board_lists_the_known_ones(zoo_dir: Path, tmp_path: Path) -> None:
    result = finnsplit("build", str(zoo_dir / "tfc-w2a2.onnx"), "--boards", "3", "--board", "zedbaord",
                       "-o", str(tmp_path / "b"))
    assert result.returncode == 2
    assert "unknown board 'zedbaord'" in result.stderr and "pynq-z2" in result.stderr


def test_refuses_to_write_into_a_directory_that_is_not_a_bundle(zoo_dir: Path, tmp_path: Path) -> None:
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    result = finnsplit("build", str(zoo_dir / "tfc-w2a2.onnx"), "--boards", "1", "--finn", "no", "-o", str(precious))
    assert result.returncode == 2 and "not a finnsplit bundle" in result.stderr
    assert (precious / "notes.txt").read_text() == "keep me"


def test_interrupted_rebuild_keeps_the_previous_bundle(zoo_lowered: dict, tmp_path: Path) -> None:
    model, graph = zoo_lowered["cnv-w2a2"]
    boards = [load_board("zedboard")] * 3
    split = plan(graph.layers, graph.tensors, boards, replicate=False)
    out = tmp_path / "bundle"
    write_bundle(model, graph, split, out)
    before = (out / "manifest.json").read_text()

    def crash(message: str) -> None:
        if "partition 1" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_bundle(model, graph, split, out, progress=crash)
    assert (out / "manifest.json").read_text() == before
    load_manifest(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_greedy_strategy_with_finn_set_folding(zoo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "greedy"
    result = finnsplit("build", str(zoo_dir / "cnv-w2a2.onnx"), "--boards", "2", "--strategy", "greedy",
                       "--target-fps", "2000", "--finn", "no", "-o", str(out))
    assert result.returncode == 0, result.stderr
    manifest = load_manifest(out)
    assert manifest.plan.strategy == "greedy"
    assert manifest.plan.fps >= 2000 * 0.5


@pytest.mark.usefixtures("server_bin")
def test_mobilenet_bundle_on_virtual_boards(mobilenet_bundle: tuple[Path, str], zoo_dir: Path, tmp_path: Path) -> None:
    root, _ = mobilenet_bundle
    result = finnsplit("virtual", str(root), "--images", "4", "--check", str(zoo_dir / "mobilenet-v1-w4a4.onnx"),
                       "--logs", str(tmp_path / "logs"))
    assert result.returncode == 0, result.stderr
    assert "4 frames through 6 virtual boards" in result.stdout
    assert "bit-exact vs the Python executor: 4/4 frames" in result.stdout
    assert "same top-1 3/3" in result.stdout
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [f"vboard{i}.log" for i in range(6)]


@pytest.mark.usefixtures("server_bin")
def test_self_quantizing_model_on_virtual_boards(zoo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cnv"
    built = finnsplit("build", str(zoo_dir / "cnv-w2a2.onnx"), "--boards", "3", "--no-replicate", "--finn", "no",
                      "-o", str(out))
    assert built.returncode == 0, built.stderr
    result = finnsplit("virtual", str(out), "--images", "8", "--check", str(zoo_dir / "cnv-w2a2.onnx"))
    assert result.returncode == 0, result.stderr
    assert "bit-exact vs the Python executor: 8/8 frames" in result.stdout
    assert "same top-1 3/3" in result.stdout
    largest = float(re.search(r"largest difference (\S+) ", result.stdout).group(1))
    assert largest < 1e-5  # the host's folded float affine vs the model's Mul/Add chain: last-ulp rounding


def test_mobilenet_bundle_records_finn_iodma_word_sizes(mobilenet_bundle: tuple[Path, str]) -> None:
    root, _ = mobilenet_bundle
    for part in load_manifest(root).partitions:
        folding = json.loads((root / part.files["folding"].path).read_text())
        nodes = [v for k, v in folding.items() if k != "Defaults"]
        first, last = nodes[0], nodes[-1]
        if "SIMD" in first and "PE" not in first:  # FMPadding / sliding window: SIMD channels per word
            assert part.finn_io.in_word_elems == first["SIMD"]
        if "PE" in last:
            assert part.finn_io.out_word_elems == last["PE"]


def test_layer_that_fits_no_board_names_the_resource(zoo_dir: Path, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny-z7.yaml"
    text = (Path(__file__).resolve().parents[2] / "boards" / "zedboard.yaml").read_text()
    tiny.write_text(text.replace("name: zedboard", "name: tiny-z7").replace("bram18: 280 ", "bram18: 40  "))
    result = finnsplit("build", str(zoo_dir / "mobilenet-v1-w4a4.onnx"), "--boards", f"{tiny}:8", "--finn", "no",
                       "-o", str(tmp_path / "b"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "fits no board" in result.stderr and "on tiny-z7" in result.stderr, result.stderr
    assert re.search(r"(LUT|BRAM18|LUTRAM|DSP) needed [\d,]+ > available [\d,]+", result.stderr), result.stderr


@pytest.mark.usefixtures("server_bin")
def test_virtual_boards_take_inputs_from_a_npy_file(zoo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tfc"
    assert finnsplit("build", str(zoo_dir / "tfc-w2a2.onnx"), "--boards", "1", "--finn", "no",
                     "-o", str(out)).returncode == 0
    images = np.random.default_rng(5).uniform(-1, 1, size=(6, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    result = finnsplit("virtual", str(out), "--inputs", str(tmp_path / "images.npy"), "--check",
                       str(zoo_dir / "tfc-w2a2.onnx"))
    assert result.returncode == 0, result.stderr
    assert "6 frames through 1 virtual boards" in result.stdout
    assert "bit-exact vs the Python executor: 6/6 frames" in result.stdout


@pytest.mark.usefixtures("server_bin")
@pytest.mark.skipif(os.geteuid() != 0, reason="a virtual fleet needs root (network namespaces, sshd)")
def test_bench_mobilenet_on_a_virtual_fleet(mobilenet_bundle: tuple[Path, str], tmp_path: Path) -> None:
    """`finnsplit bench` on a virtual fleet of the MobileNetV1 bundle (deployed over SSH, run over MQTT,
    delay backends at the predicted compute times) writes the table, bench.json, bench.png and bench.html."""
    from bench_checks import check_report

    root, _ = mobilenet_bundle
    done = finnsplit("bench", str(root), "--virtual-fleet", "0", "--backend", "delay", "--frames", "200",
                     "--latency-frames", "10", "--report", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr[-3000:]
    data = check_report(done.stdout, tmp_path / "report", root, 200, [f"vb{i}" for i in range(6)])
    assert "6 boards of a virtual fleet (delay backend)" in data["setup"]
    for board, predicted in zip(data["boards"], data["predictions"], strict=True):
        assert board["compute_us"] >= round(predicted["compute_us"])


@pytest.mark.usefixtures("server_bin")
def test_a_version_1_bundle_still_loads_and_runs(zoo_dir: Path, tmp_path: Path) -> None:
    """A bundle written before boundaries listed their tensors (manifest version 1: one tensor entry per
    boundary, no `tensors`) loads, its boundaries read as one tensor each, and runs bit-exact."""
    import json

    from core.manifest import write_manifest

    out = tmp_path / "tfc"
    built = finnsplit("build", str(zoo_dir / "tfc-w2a2.onnx"), "--boards", "2", "--no-replicate", "--finn", "no",
                      "-o", str(out))
    assert built.returncode == 0, built.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == 2
    manifest["version"] = 1
    for part in manifest["partitions"]:
        for side in ("input", "output"):
            assert part[side]["tensors"] == [{k: v for k, v in part[side].items() if k != "tensors"}]
            del part[side]["tensors"]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    loaded = load_manifest(out)
    assert loaded.version == 1
    assert [[t.tensor for t in p.output.tensors] for p in loaded.partitions] == \
        [[p["output"]["tensor"]] for p in manifest["partitions"]]
    rewritten = tmp_path / "rewritten"
    rewritten.mkdir()
    write_manifest(rewritten, loaded)  # the writer writes version 2: each boundary lists its tensor
    again = json.loads((rewritten / "manifest.json").read_text())
    assert again["version"] == 2 and [p["output"]["tensors"] for p in again["partitions"]] == \
        [[p["output"]] for p in manifest["partitions"]]
    result = finnsplit("virtual", str(out), "--random", "4", "--check", str(zoo_dir / "tfc-w2a2.onnx"))
    assert result.returncode == 0, result.stderr
    assert "bit-exact vs the Python executor: 4/4 frames" in result.stdout
    manifest["version"] = 3
    (out / "manifest.json").write_text(json.dumps(manifest))
    refused = finnsplit("virtual", str(out), "--random", "1")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "bundle format version 3 is not supported (this finnsplit reads 1 and 2)" in refused.stderr

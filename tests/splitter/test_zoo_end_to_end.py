"""Every zoo model, from either brevitas exporter, as the docs tell a user to run it:

    finnsplit build M --boards N -o B
    finnsplit virtual B --check M

ends bit-exact against the Python executor and reports the comparison with qonnx's execute_onnx.
(brevitas 0.13's MobileNetV1 on six boards is tests/splitter/test_build.py's bundle.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cpp_fixtures import server_bin  # noqa: F401  (fixture: builds cpp_server)

FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]
CASES = [
    ("tfc-w2a2", "brevitas-0.13", "1"), ("tfc-w2a2", "brevitas-0.10", "1"),
    ("cnv-w2a2", "brevitas-0.13", "2"), ("cnv-w2a2", "brevitas-0.10", "2"),
    ("lfc-w1a1", "brevitas-0.13", "1"), ("lfc-w1a1", "brevitas-0.10", "1"),
    ("cnv-w1a1", "brevitas-0.13", "2"), ("cnv-w1a1", "brevitas-0.10", "2"),
    ("mobilenet-v1-w4a4", "brevitas-0.10", "6"),
    # residual: three partitions, cut between blocks (cuts inside blocks: test_cut_inside_a_residual_block...)
    ("resnet8-w4a4", "brevitas-0.13", "3"), ("resnet8-w4a4", "brevitas-0.10", "3"),
]


def finnsplit(*args: str) -> subprocess.CompletedProcess:
    """Run the finnsplit command line; returns the completed process."""
    return subprocess.run([*FINNSPLIT, *args], capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
@pytest.mark.usefixtures("server_bin")
@pytest.mark.parametrize(("name", "exporter", "boards"), CASES)
def test_build_and_virtual_check(name: str, exporter: str, boards: str, zoo_dir: Path, zoo_legacy_dir: Path,
                                 tmp_path: Path) -> None:
    model = str((zoo_legacy_dir if exporter == "brevitas-0.10" else zoo_dir) / f"{name}.onnx")
    built = finnsplit("build", model, "--boards", boards, "--finn", "no", "--no-replicate", "-o", str(tmp_path / "b"))
    assert built.returncode == 0, built.stderr[-3000:]
    assert "host output:" in built.stdout
    images = "2" if name.startswith("mobilenet") else "4"
    done = finnsplit("virtual", str(tmp_path / "b"), "--images", images, "--check", model)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert f"bit-exact vs the Python executor: {images}/{images} frames" in done.stdout
    compared = re.search(r"vs the original QONNX model: identical outputs \d+/(\d+), same top-1 (\d+)/\d+, "
                         r"largest difference (\S+) ", done.stdout)
    assert compared, done.stdout
    differing = re.findall(r"frame \d+ differs from qonnx: (.*)", done.stdout)
    assert all("near-tie" in why and "not a lowering error" in why for why in differing), done.stdout
    if not name.startswith("mobilenet") and not differing:  # MobileNetV1 meets float32 near-ties (docs/lowering.md)
        assert float(compared.group(3)) < 1e-4  # float32 rounding of the host's affine
        assert compared.group(2) == compared.group(1)


@pytest.mark.slow
@pytest.mark.usefixtures("server_bin")
@pytest.mark.parametrize(("name", "boards", "exporter"), [
    ("resnet8-w4a4", "zedboard:6 --no-replicate", "brevitas-0.13"),
    # resnet18-w4a4 cannot go on Zedboards: a 3x3 convolution of 512 channels holds 9.4 Mbit of weights,
    # 514 BRAM18 at least (docs/cost-model.md#known-gaps); on ZCU104s its plan cuts inside a block
    ("resnet18-w4a4", "zcu104:4", "brevitas-0.13"),
    ("resnet18-w4a4", "zcu104:4", "brevitas-0.10"),
])
def test_cut_inside_a_residual_block_runs_bit_exact(name: str, boards: str, exporter: str, zoo_dir: Path,
                                                    tmp_path: Path) -> None:
    """`build` cuts inside a residual block (a boundary of two tensors, one frame on the wire), and
    `virtual --check` through the C++ servers ends bit-exact, compared with qonnx's execute_onnx."""
    import json

    model = zoo_dir / f"{name}.onnx"
    if not model.exists() or exporter != "brevitas-0.13":  # resnet18 is not in the session's zoo: exported, seed 0
        legacy = ["--exporter", exporter] if exporter == "brevitas-0.10" else []
        made = finnsplit("zoo", name, *legacy, "-o", str(tmp_path / f"{name}.onnx"))
        assert made.returncode == 0, made.stderr[-3000:]
        model = tmp_path / f"{name}.onnx"
    built = finnsplit("build", str(model), "--boards", *boards.split(), "--finn", "no", "-o", str(tmp_path / "b"))
    assert built.returncode == 0, built.stderr[-3000:]
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["version"] == 2
    two = [p for p in manifest["partitions"] if len(p["output"]["tensors"]) == 2]
    assert two, "the plan should cut inside a block"
    wire = two[0]["output"]
    assert wire["wire"] == "+".join(t["wire"] for t in wire["tensors"])
    assert wire["packed_bytes"] == sum(t["packed_bytes"] for t in wire["tensors"])
    # FINN's IODMAs: one word width per tensor of a two-tensor boundary, each dividing its channels; a number
    # for a boundary of one tensor (docs/bundle.md#manifest)
    for part in manifest["partitions"]:
        for side, key in (("input", "in_word_elems"), ("output", "out_word_elems")):
            tensors, elems = part[side]["tensors"], part["finn_io"][key]
            if len(tensors) == 1:
                assert isinstance(elems, int)
            else:
                assert len(elems) == len(tensors)
                assert all(t["shape"][-1] % e == 0 for t, e in zip(tensors, elems, strict=True))
    done = finnsplit("virtual", str(tmp_path / "b"), "--random", "4", "--check", str(model))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "bit-exact vs the Python executor: 4/4 frames" in done.stdout
    compared = re.search(r"vs the original QONNX model: identical outputs \d+/(\d+), same top-1 (\d+)/\d+, "
                         r"largest difference (\S+) ", done.stdout)
    assert compared, done.stdout
    # qonnx's float32 can meet a near-tie on these weights (where depends on the BLAS's summation order):
    # every frame that differs beyond the affine's rounding is explained as one, never as a lowering error
    differing = re.findall(r"frame \d+ differs from qonnx: (.*)", done.stdout)
    assert all("near-tie" in why and "not a lowering error" in why for why in differing), done.stdout
    if not differing:
        assert float(compared.group(3)) < 1e-4 and compared.group(2) == compared.group(1)


@pytest.mark.usefixtures("server_bin")
@pytest.mark.parametrize(("mean", "std", "sent"), [
    ("0.485,0.456,0.406", "0.226", "sent as x * 200 - [24735, 23256, 20706] (INT16)"),
    # a mean of whole pixels (ProxylessNAS' 128/255): factor 1, but the shift must still reach the manifest
    ("128/255", "128/255", "sent as x * 1 - [128, 128, 128] (INT8)"),
])
def test_check_uses_the_bundles_declared_input(mean: str, std: str, sent: str, tmp_path: Path) -> None:
    """A model without finnsplit's metadata, built with --input-dtype ... --mean ...: `virtual --check` needs no
    options (the manifest has them), here with the padded first convolution's shifted input (x * D - K)."""
    import onnx
    from qonnx_builder import GraphBuilder

    b = GraphBuilder((1, 3, 8, 8), seed=2)
    x = b.node("Conv", ["x", b.qweight((6, 3, 3, 3), 8)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    x = b.quant(b.node("Relu", [b.batchnorm(x, 6)]), 0.25, 4, signed=False)
    x = b.node("Conv", [x, b.qweight((4, 6, 8, 8), 4)], kernel_shape=[8, 8])
    path = tmp_path / "padded.onnx"
    onnx.save(b.model(x), str(path))
    built = finnsplit("build", str(path), "--boards", "1", "--finn", "no", "-o", str(tmp_path / "b"),
                      "--input-dtype", "UINT8", "--input-scale", "1/255", "--mean", mean, "--std", std)
    assert built.returncode == 0, built.stderr[-3000:]
    assert sent in built.stdout
    done = finnsplit("virtual", str(tmp_path / "b"), "--images", "4", "--check", str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "bit-exact vs the Python executor: 4/4 frames" in done.stdout
    assert "same top-1 3/3" in done.stdout

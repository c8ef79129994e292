"""The finnsplit command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]


def run(*args: str) -> subprocess.CompletedProcess:
    """Run finnsplit with `args`; returns the completed process."""
    return subprocess.run([*FINNSPLIT, *args], capture_output=True, text=True, timeout=600)


def test_inspect_mobilenet_shows_finn_layer_counts(zoo_dir: Path) -> None:
    result = run("inspect", str(zoo_dir / "mobilenet-v1-w4a4.onnx"))
    assert result.returncode == 0, result.stderr
    assert "15 MVAU" in result.stdout and "13 VVAU" in result.stdout
    assert "568,026,752 MACs" in result.stdout
    assert "MVAU_0" in result.stdout and "UINT4" in result.stdout


def test_zoo_lists_models() -> None:
    result = run("zoo")
    assert result.returncode == 0
    for name in ("mobilenet-v1-w4a4", "cnv-w2a2", "tfc-w2a2"):
        assert name in result.stdout


def test_float_input_without_declaration_is_a_clear_error(zoo_dir: Path, tmp_path: Path) -> None:
    import onnx

    model = onnx.load(str(zoo_dir / "mobilenet-v1-w4a4.onnx"))
    del model.metadata_props[:]  # forget the zoo's declared input quantization
    path = tmp_path / "plain.onnx"
    onnx.save(model, str(path))
    result = run("inspect", str(path))
    assert result.returncode == 2
    assert "--input-dtype UINT8 --input-scale 1/255" in result.stderr
    assert "Traceback" not in result.stderr
    declared = run(
        "inspect",
        str(path),
        "--input-dtype",
        "UINT8",
        "--input-scale",
        "1/255",
        "--mean",
        "0.485,0.456,0.406",
        "--std",
        "0.226",
    )
    assert declared.returncode == 0, declared.stderr


def test_missing_and_malformed_model_files(tmp_path: Path) -> None:
    assert "does not exist" in run("inspect", str(tmp_path / "nope.onnx")).stderr
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not protobuf")
    result = run("inspect", str(bad))
    assert result.returncode == 2 and "not a readable ONNX model" in result.stderr

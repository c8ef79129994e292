"""Shared fixtures: zoo models exported once per test session."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

ZOO = ("tfc-w2a2", "cnv-w2a2", "mobilenet-v1-w4a4", "cnv-w1a1", "lfc-w1a1", "resnet8-w4a4")


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding every zoo model, exported with seed 0 by brevitas 0.13, and its weights (NAME.pth)."""
    from splitter.zoo import export

    directory = tmp_path_factory.mktemp("zoo")
    for name in ZOO:
        export(name, directory / f"{name}.onnx", seed=0, save_state=directory / f"{name}.pth")
    return directory


@pytest.fixture(scope="session")
def zoo_legacy_dir(zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every zoo model exported by brevitas 0.10 (FINN's venv, TorchScript) from zoo_dir's weights."""
    from splitter.zoo import export_legacy

    directory = tmp_path_factory.mktemp("zoo_brevitas010")
    export_legacy([(name, directory / f"{name}.onnx") for name in ZOO], seed=0,
                  checkpoints={name: zoo_dir / f"{name}.pth" for name in ZOO})
    return directory


@pytest.fixture(scope="session")
def zoo_lowered(zoo_dir: Path) -> dict:
    """(model, lowered graph) per zoo model, lowered with the zoo's declared input quantization."""
    from splitter.load import load_and_lower

    return {name: load_and_lower(str(zoo_dir / f"{name}.onnx"), None, name.replace("-", "_")) for name in ZOO}


def onnx_model(path: Path) -> onnx.ModelProto:
    """Load an ONNX file."""
    return onnx.load(str(path))

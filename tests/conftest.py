"""Shared fixtures: zoo models exported once per test session."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

ZOO = ("tfc-w2a2", "cnv-w2a2", "mobilenet-v1-w4a4", "cnv-w1a1", "lfc-w1a1")


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding every zoo model, exported with seed 0."""
    from splitter.zoo import export

    directory = tmp_path_factory.mktemp("zoo")
    for name in ZOO:
        export(name, directory / f"{name}.onnx", seed=0)
    return directory


@pytest.fixture(scope="session")
def zoo_lowered(zoo_dir: Path) -> dict:
    """(model, lowered graph) per zoo model, lowered with the zoo's declared input quantization."""
    from splitter.cli import load_and_lower

    return {name: load_and_lower(str(zoo_dir / f"{name}.onnx"), None, name.replace("-", "_")) for name in ZOO}


def onnx_model(path: Path) -> onnx.ModelProto:
    """Load an ONNX file."""
    return onnx.load(str(path))

"""`finnsplit zoo NAME --checkpoint W.pth`: the real loading path (a state_dict, strict), and the errors a
wrong file gets: one line naming the file and the cause, never a traceback (e.g. brevitas' published
ProxylessNAS-Mobile14 weights, 1792-channel final block, for the zoo's 1024-channel proxylessnas-w4a4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper

from core.errors import FinnsplitError
from splitter.zoo import export

FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]


def _weights(path: Path) -> dict:
    return {i.name: numpy_helper.to_array(i).tobytes() for i in onnx.load(str(path)).graph.initializer}


def test_a_checkpoint_exports_the_weights_it_holds(tmp_path: Path) -> None:
    export("tfc-w2a2", tmp_path / "a.onnx", seed=3, save_state=tmp_path / "w.pth")
    export("tfc-w2a2", tmp_path / "b.onnx", seed=9, checkpoint=tmp_path / "w.pth")  # the seed no longer matters
    export("tfc-w2a2", tmp_path / "c.onnx", seed=9)
    assert _weights(tmp_path / "a.onnx") == _weights(tmp_path / "b.onnx") != _weights(tmp_path / "c.onnx")


def test_a_checkpoint_of_another_shape_is_named(tmp_path: Path) -> None:
    export("tfc-w2a2", tmp_path / "t.onnx", save_state=tmp_path / "tfc.pth")
    with pytest.raises(FinnsplitError, match=r"does not fit zoo model 'cnv-w2a2': \d+ tensors"):
        export("cnv-w2a2", tmp_path / "c.onnx", checkpoint=tmp_path / "tfc.pth")


@pytest.mark.parametrize(("content", "why"), [(b"not a checkpoint\n", "is not a PyTorch file of tensors"),
                                             (b"", "cannot be read as a state_dict")])
def test_a_file_that_is_no_checkpoint_is_one_line(content: bytes, why: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(content)
    done = subprocess.run([*FINNSPLIT, "zoo", "tfc-w2a2", "--checkpoint", str(bad), "-o", str(tmp_path / "m.onnx")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert f"checkpoint '{bad}' {why}" in done.stderr, done.stderr

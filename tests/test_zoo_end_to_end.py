"""Every zoo model, from either brevitas exporter, as the docs tell a user to run it:

    finnsplit build M --boards N -o B
    finnsplit virtual B --check M

ends bit-exact against the Python executor and reports the comparison with qonnx's execute_onnx.
(brevitas 0.13's MobileNetV1 on six boards is tests/test_build.py's bundle.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cpp_fixtures import server_bin  # noqa: F401  (fixture: builds cpp_server)

FINNSPLIT = [sys.executable, "-c", "from splitter.cli import main; main()"]
CASES = [
    ("tfc-w2a2", "brevitas-0.13", "1"), ("tfc-w2a2", "brevitas-0.10", "1"),
    ("cnv-w2a2", "brevitas-0.13", "2"), ("cnv-w2a2", "brevitas-0.10", "2"),
    ("lfc-w1a1", "brevitas-0.13", "1"), ("lfc-w1a1", "brevitas-0.10", "1"),
    ("cnv-w1a1", "brevitas-0.13", "2"), ("cnv-w1a1", "brevitas-0.10", "2"),
    ("mobilenet-v1-w4a4", "brevitas-0.10", "6"),
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
    if not name.startswith("mobilenet"):  # MobileNetV1 has float32 near-ties (docs/lowering.md); these none
        assert float(compared.group(3)) < 1e-4  # float32 rounding of the host's affine
        assert compared.group(2) == compared.group(1)

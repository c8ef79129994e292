"""`finnsplit bench`: run as a user runs it, on real servers, writing the table, bench.json, bench.png, bench.html.

Throughput figures are not asserted (speed lives in benchmarks/e2e.py); what is asserted is that
every board's own statistics cover exactly the measured frames, the delay backend never finishes
a frame before its predicted compute time, and the files say what the table says.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bench_checks import check_report
from cpp_fixtures import server_bin  # noqa: F401  (fixture: builds cpp_server)

from orchestrator.rigs.netns import netns_available

FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]


def finnsplit(*args: str) -> subprocess.CompletedProcess:
    """Run the finnsplit command line; returns the completed process."""
    return subprocess.run([*FINNSPLIT, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def cnv_bundle(zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CNV split over 3 Zedboards, one stage each."""
    out = tmp_path_factory.mktemp("bench") / "cnv"
    done = finnsplit("build", str(zoo_dir / "cnv-w2a2.onnx"), "--boards", "3", "--no-replicate", "--finn", "no",
                     "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.usefixtures("server_bin")
def test_bench_on_virtual_boards_writes_table_json_png_html(cnv_bundle: Path, tmp_path: Path) -> None:
    done = finnsplit("bench", str(cnv_bundle), "--virtual", "--frames", "40", "--latency-frames", "5",
                     "--report", str(tmp_path / "report"), "--logs", str(tmp_path / "logs"))
    assert done.returncode == 0, done.stderr[-3000:]
    data = check_report(done.stdout, tmp_path / "report", cnv_bundle, 40, ["vboard0", "vboard1", "vboard2"])
    assert "emulate backend" in data["setup"]


@pytest.mark.usefixtures("server_bin")
@pytest.mark.skipif(netns_available() is not None, reason=str(netns_available()))
def test_bench_delay_backend_in_namespaces_takes_the_predicted_compute_time(cnv_bundle: Path, tmp_path: Path) -> None:
    done = finnsplit("bench", str(cnv_bundle), "--virtual", "--netns", "--link-mbit", "1000", "--backend", "delay",
                     "--frames", "60", "--latency-frames", "5", "--report", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr[-3000:]
    data = check_report(done.stdout, tmp_path / "r", cnv_bundle, 60, ["vboard0", "vboard1", "vboard2"])
    assert "links 1000 Mbit/s" in data["setup"]
    for board, predicted in zip(data["boards"], data["predictions"], strict=True):
        assert board["compute_us"] >= round(predicted["compute_us"])  # never before its deadline


def test_bench_refuses_unclear_requests(tmp_path: Path) -> None:
    """Each is refused before any bundle is read or board started."""
    for args, why in ((["--frames", "5"], "give exactly one of --fleet"),
                      (["--virtual", "--virtual-fleet", "0"], "give exactly one of --fleet"),
                      (["--virtual-fleet", "0", "--netns"], "--netns is for --virtual"),
                      (["--virtual", "--link-mbit", "100"], "--link-mbit shapes namespace links"),
                      (["--virtual", "--backend", "finn-zynq"], "needs real boards"),
                      (["--virtual", "--frames", "1"], "--frames must be at least 2"),
                      (["--virtual", "--window", "0"], "--window must be at least 1")):
        done = finnsplit("bench", str(tmp_path), *args)
        assert done.returncode != 0 and why in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    done = finnsplit("bench", str(tmp_path), "--virtual")
    assert done.returncode != 0 and "is not a finnsplit bundle" in done.stderr
    assert "Traceback" not in done.stderr

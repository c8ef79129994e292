"""Virtual boards in network namespaces: set-up and tear-down, and a bundle running across them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cpp_fixtures import server_bin  # noqa: F401  (fixture)

from orchestrator.rigs.netns import NetworkConfig, VirtualNetwork, netns_available

pytestmark = pytest.mark.skipif(netns_available() is not None, reason=str(netns_available()))
FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]


def ip_output(*args: str) -> str:
    """Output of an `ip` command."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def test_namespaces_come_and_go_with_their_links() -> None:
    config = NetworkConfig(3, prefix="fst", subnet="10.251.7", rate_mbit=1000)
    with VirtualNetwork(config) as net:
        assert {"fstb0", "fstb1", "fstb2"} <= {line.split(" ")[0] for line in ip_output("netns", "list").splitlines()}
        assert "10.251.7.12/24" in ip_output("-n", "fstb2", "addr")
        shaping = subprocess.run(["tc", "-n", "fstb1", "qdisc"], capture_output=True, text=True, check=True).stdout
        assert "tbf" in shaping and "rate 1Gbit" in shaping
        assert net.command(1, ["true"]) == ["ip", "netns", "exec", "fstb1", "true"]
        reached = subprocess.run(net.command(0, [sys.executable, "-c", (
            "import socket; s = socket.create_connection(('10.251.7.1', 9), timeout=2)")]),
            capture_output=True, text=True, check=False)
        assert "Connection refused" in reached.stderr  # the laptop's address answers (no service on port 9)
    assert not any(line.startswith("fstb") for line in ip_output("netns", "list").splitlines())
    assert "fstbr" not in ip_output("-o", "link", "show")


def test_a_crashed_run_is_cleaned_up_by_the_next() -> None:
    config = NetworkConfig(2, prefix="fsc", subnet="10.251.8")
    VirtualNetwork(config)  # never closed, as after a crash
    with VirtualNetwork(config):
        assert "fscb1" in ip_output("netns", "list")
    assert "fscb" not in ip_output("netns", "list")


@pytest.mark.usefixtures("server_bin")
def test_bundle_runs_bit_exact_across_shaped_namespaces(zoo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cnv"
    built = subprocess.run([*FINNSPLIT, "build", str(zoo_dir / "cnv-w2a2.onnx"), "--boards", "3", "--no-replicate",
                            "--finn", "no", "-o", str(out)], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    result = subprocess.run([*FINNSPLIT, "virtual", str(out), "--images", "6", "--netns", "--link-mbit", "1000",
                             "--check", str(zoo_dir / "cnv-w2a2.onnx")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "links shaped to 1000 Mbit/s" in result.stderr
    assert "6 frames through 3 virtual boards" in result.stdout
    assert "bit-exact vs the Python executor: 6/6 frames" in result.stdout

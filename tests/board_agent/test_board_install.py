"""`finnsplit board install` onto a fresh namespace board (real sshd), then a bundle runs on what it installed.

The board gets only core + board_agent in a venv of the system's python3 (no PYTHONPATH to this
checkout): the installed agent imports nothing from splitter/ or orchestrator/ and no numpy, onnx,
qonnx or torch.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from agent_fixtures import build_bundle
from cpp_fixtures import QEMU, armhf_bin, server_bin  # noqa: F401  (fixtures: build cpp_server, native and armhf)

from orchestrator.deployment.board_install import FORBIDDEN, agent_wheel, exec_start, unit_text
from orchestrator.rigs.netns import netns_available
from orchestrator.rigs.vfleet import VirtualFleet

FINNSPLIT = [str(Path(sys.executable).with_name("finnsplit"))]


def finnsplit(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*FINNSPLIT, *args], capture_output=True, text=True, timeout=timeout, check=False)


def test_the_agent_wheel_holds_core_and_board_agent_only(tmp_path: Path) -> None:
    wheel = agent_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"core", "board_agent"}
    assert "board_agent/systemd/finnsplit-agent.service" in names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = sorted(line.split(": ")[1].split("==")[0].lower() for line in metadata.splitlines()
                      if line.startswith("Requires-Dist"))
    assert requires == ["aiomqtt", "pyyaml"]


def test_the_unit_runs_the_installed_venv_with_the_installed_config() -> None:
    unit = unit_text("/srv/fs", "/srv/etc")
    assert exec_start(unit) == ("/srv/fs/venv/bin/python", "-m", "board_agent", "--config", "/srv/etc/agent.yaml")
    assert "ReadWritePaths=/srv/fs /lib/firmware" in unit


@pytest.mark.skipif(netns_available() is not None, reason=str(netns_available()))
@pytest.mark.usefixtures("server_bin")
def test_install_onto_a_fresh_namespace_board_then_run_a_bundle_on_it(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path)
    with VirtualFleet(tmp_path / "fleet", [("nb0", "zedboard")], heartbeat_s=0.5, agents=False) as vfleet:
        assert vfleet.secrets is not None
        board_dir = tmp_path / "fleet" / "boards" / "nb0"
        etc, units = board_dir / "etc", board_dir / "systemd"
        args = ["board", "install", "--fleet", str(vfleet.fleet_path), "--secrets", str(vfleet.secrets.directory),
                "--etc-dir", str(etc), "--systemd-dir", str(units), "--no-enable"]
        done = finnsplit(*args)
        assert done.returncode == 0, done.stderr + done.stdout
        root = vfleet.remote_root("nb0")
        assert (root / "bin" / "finnsplit-server").stat().st_mode & 0o111
        site = next(iter((root / "venv").glob("lib/python3*/site-packages")))
        installed = {p.name for p in site.iterdir()}
        assert {"core", "board_agent"} <= installed and not installed & {*FORBIDDEN, "splitter", "orchestrator"}
        assert (etc / "broker.password").stat().st_mode & 0o777 == 0o600
        assert yaml.safe_load((etc / "agent.yaml").read_text())["server_binary"] == str(root / "bin/finnsplit-server")
        # the installed python cannot even see this checkout
        probe = subprocess.run(vfleet.network.command(0, [str(root / "venv/bin/python"), "-c", "import splitter"]),
                               capture_output=True, text=True, env={"PATH": "/usr/bin:/bin:/usr/sbin"}, cwd="/",
                               check=False)
        assert probe.returncode != 0 and "No module named 'splitter'" in probe.stderr

        again = finnsplit(*args)  # an upgrade: the same install once more
        assert again.returncode == 0, again.stderr + again.stdout

        argv = list(exec_start((units / "finnsplit-agent.service").read_text()))
        vfleet.run_in("nb0", argv, board_dir / "installed-agent.log")
        ran = finnsplit("run", str(bundle), "--fleet", str(vfleet.fleet_path), "--random", "4",
                        "--check", str(tmp_path / "tfc.onnx"))
        log = (board_dir / "installed-agent.log").read_text()
        assert ran.returncode == 0, ran.stderr + ran.stdout + log
        assert "bit-exact vs the Python executor: 4/4 frames" in ran.stdout


@pytest.mark.skipif(netns_available() is not None, reason=str(netns_available()))
@pytest.mark.usefixtures("server_bin")
def test_an_armhf_board_under_qemu_in_a_chain_with_a_native_one(armhf_bin: Path, tmp_path: Path) -> None:  # noqa: F811
    """The cross-built Zedboard server, installed as a board would get it, runs partition 0 under
    qemu-arm in a namespace board; partition 1 runs natively: outputs bit-exact (so equal to the
    native build's)."""
    from splitter.zoo import export

    export("cnv-w2a2", tmp_path / "cnv.onnx", seed=0)
    built = finnsplit("build", str(tmp_path / "cnv.onnx"), "--boards", "2", "--no-replicate", "--finn", "no",
                      "-o", str(tmp_path / "build"))
    assert built.returncode == 0, built.stderr
    assert len(yaml.safe_load((tmp_path / "build" / "manifest.json").read_text())["partitions"]) == 2
    with VirtualFleet(tmp_path / "fleet", [("arm0", "zedboard"), ("x1", "zedboard")], heartbeat_s=0.5,
                      agents=False) as vfleet:
        assert vfleet.secrets is not None
        for name, extra in (("arm0", ["--arch", "armv7l", "--launcher", " ".join(QEMU)]), ("x1", [])):
            board_dir = tmp_path / "fleet" / "boards" / name
            done = finnsplit("board", "install", name, "--fleet", str(vfleet.fleet_path),
                             "--secrets", str(vfleet.secrets.directory), "--etc-dir", str(board_dir / "etc"),
                             "--systemd-dir", str(board_dir / "systemd"), "--no-enable", *extra)
            assert done.returncode == 0, done.stderr + done.stdout
            vfleet.run_in(name, list(exec_start((board_dir / "systemd/finnsplit-agent.service").read_text())),
                          board_dir / "installed-agent.log")
        assert (vfleet.remote_root("arm0") / "bin/finnsplit-server").read_bytes()[18] == 40  # EM_ARM
        ran = finnsplit("run", str(tmp_path / "build"), "--fleet", str(vfleet.fleet_path), "--random", "4",
                        "--check", str(tmp_path / "cnv.onnx"))
        assert ran.returncode == 0, ran.stderr + ran.stdout
        # an ARM binary cannot run here without qemu (no binfmt_misc): partition 0 did run under it
        assert "bit-exact vs the Python executor: 4/4 frames" in ran.stdout


def test_install_names_an_unknown_board(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    key = tmp_path / "key"
    key.write_text("x")
    fleet.write_text(yaml.safe_dump({"chain": "c", "broker": {"host": "127.0.0.1", "insecure": True},
                                     "client": {"host": "127.0.0.1"},
                                     "boards": [{"name": "b0", "type": "zedboard", "address": "127.0.0.1",
                                                 "ssh": {"key": str(key), "known_hosts": str(key)}}]}))
    done = finnsplit("board", "install", "--fleet", str(fleet), "nope")
    assert done.returncode != 0 and "no board 'nope' in the fleet; boards: b0" in done.stderr
    assert "Traceback" not in done.stderr

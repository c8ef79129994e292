"""Least privilege on the board (docs/security.md): the server gives up root once its devices are
mapped, keeps serving, cannot get root back; the agent's systemd unit is hardened (systemd's own
verifier and exposure score)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cpp_fixtures import ServerFleet, fleet, server_bin  # noqa: F401 - fixtures

from orchestrator.dataplane.client import ChainClient
from orchestrator.dataplane.link_auth import new_key
from orchestrator.dataplane.protocol import WireSpec

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "board_agent" / "systemd" / "finnsplit-agent.service"
SPEC = WireSpec.parse("UINT8:1,8,8,3")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")


def proc_status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as a mapping."""
    return dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)


def test_the_server_drops_root_after_binding_and_still_serves(fleet: ServerFleet) -> None:  # noqa: F811
    key = new_key()
    with ChainClient(SPEC, SPEC, key=key, last_stage="s0") as client:
        server = fleet.start("s0", client.result_address, "--backend", "delay", "--delay-us", "0", "--spec-in",
                             SPEC.flag(), "--spec-out", SPEC.flag(), "--user", "nobody", key=key)
        status = proc_status(server.proc.pid)
        assert status["Uid"].split() == ["65534"] * 4 and status["Gid"].split() == ["65534"] * 4
        assert status["Groups"].strip() == "" and int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
        assert status["NoNewPrivs"].strip() == "1"
        client.connect(server.address)
        frames = [np.full(SPEC.shape, i) for i in range(10)]
        for got, sent in zip(client.infer_many(frames), frames, strict=True):
            np.testing.assert_array_equal(got, sent)
        assert "running as user nobody" in server.log()


def test_an_unknown_user_stops_the_server_before_it_serves(server_bin: Path) -> None:  # noqa: F811
    done = subprocess.run([str(server_bin), "serve", "--listen", "127.0.0.1:0", "--next", "127.0.0.1:9",
                           "--backend", "delay", "--spec-in", SPEC.flag(), "--spec-out", SPEC.flag(),
                           "--user", "no-such-finnsplit-user"], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1 and "no user 'no-such-finnsplit-user'" in done.stderr
    assert '"event":"listening"' not in done.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_agent_unit_is_valid_and_hardened(tmp_path: Path) -> None:
    text = UNIT.read_text()
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.M)
    assert caps and sorted(caps.group(1).split()) == ["CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SYS_RAWIO"]
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/opt/finnsplit /lib/firmware"):
        assert line in text.splitlines()
    unit = tmp_path / "finnsplit-agent.service"  # ExecStart pointed at a program that exists here
    unit.write_text(text.replace("/opt/finnsplit/venv/bin/python -m board_agent --config /etc/finnsplit/agent.yaml",
                                 "/bin/sleep 1"))
    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stderr
    scored = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True,
                            text=True, check=False)
    exposure = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", scored.stdout).group(1))
    assert exposure <= 4.0, scored.stdout[-2000:]  # systemd's scale: 10 is an unhardened service

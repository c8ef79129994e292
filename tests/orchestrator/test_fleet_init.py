"""`finnsplit fleet init`: the fleet's CA, broker certificate, passwords, password file, ACLs and
mosquitto.conf; checked with the real mosquitto, mosquitto_passwd's hash and Python's TLS client."""

from __future__ import annotations

import base64
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.control.broker import acl_text, hash_password
from orchestrator.control.fleet import load_fleet
from orchestrator.control.pki import certificate_hosts

FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]
FLEET = """\
chain: lab
broker: {host: 192.168.1.2}
client: {host: 192.168.1.2}
boards:
  - {name: zed0, type: zedboard, address: 192.168.1.10}
  - {name: zed1, type: zedboard, address: 192.168.1.11}
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_fleet_init_makes_private_keys_passwords_and_a_broker_config(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET)
    done = subprocess.run([*FINNSPLIT, "fleet", "init", "--fleet", str(fleet), "--broker-host", "192.168.1.2",
                           "--broker-host", "broker.lab"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    secrets = tmp_path / "fleet-secrets"
    private = [secrets / "ca.key", secrets / "broker" / "broker.key", secrets / "broker" / "passwd",
               secrets / "orchestrator.password", *(secrets / "boards" / f"zed{i}.password" for i in (0, 1)),
               secrets / "ingress.token"]  # the daemon's ingress (docs/ingress.md)
    assert {p.name: _mode(p) for p in private} == {p.name: 0o600 for p in private}
    assert len((secrets / "ingress.token").read_text().strip()) >= 43 and "ingress.token" in done.stdout
    assert certificate_hosts(secrets / "broker" / "broker.crt") == ["192.168.1.2", "broker.lab"]
    assert "username: lab-orchestrator" in done.stdout and "username: lab-board-zed1" in done.stdout
    conf = (secrets / "broker" / "mosquitto.conf").read_text()
    for line in ("allow_anonymous false", "listener 8883 192.168.1.2", "message_size_limit 131072",
                 "tls_version tlsv1.2", f"acl_file {secrets / 'broker' / 'acl'}"):
        assert line in conf
    users = dict(line.split(":", 1) for line in (secrets / "broker" / "passwd").read_text().splitlines())
    assert sorted(users) == ["lab-board-zed0", "lab-board-zed1", "lab-orchestrator"]

    before = {p.name: p.read_bytes() for p in private if p.name != "passwd"}
    fleet.write_text(FLEET + "  - {name: zed2, type: zedboard, address: 192.168.1.12}\n")
    again = subprocess.run([*FINNSPLIT, "fleet", "init", "--fleet", str(fleet)], capture_output=True, text=True,
                           timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert {p.name: p.read_bytes() for p in private if p.name != "passwd"} == before  # nothing rotated
    assert _mode(secrets / "boards" / "zed2.password") == 0o600
    assert "user lab-board-zed2" in (secrets / "broker" / "acl").read_text()


def test_the_password_hash_is_the_one_mosquitto_passwd_writes(tmp_path: Path) -> None:
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(tmp_path / "pw"), "alice", "s3cret"], check=True)
    _, theirs = (tmp_path / "pw").read_text().strip().split(":", 1)
    salt = base64.b64decode(theirs.split("$")[3])
    assert hash_password("s3cret", salt) == theirs
    assert hash_password("s3cret") != hash_password("s3cret")  # a fresh salt each time


def test_acls_give_each_board_only_its_own_topics() -> None:
    acl = acl_text("lab", ["zed0"])
    assert "user lab-orchestrator\ntopic readwrite finnsplit/lab/#" in acl
    board = acl.split("user lab-board-zed0\n")[1].split("\n\n")[0].splitlines()
    assert board == ["topic read finnsplit/lab/board/zed0/cmd",
                     *(f"topic write finnsplit/lab/board/zed0/{leaf}" for leaf in
                       ("status", "reply", "stats", "event", "heartbeat"))]


def test_a_fleet_without_broker_credentials_is_refused_before_connecting(tmp_path: Path) -> None:
    from core.mqtt_login import BrokerAuthError

    (tmp_path / "fleet.yaml").write_text(FLEET)
    fleet = load_fleet(tmp_path / "fleet.yaml")
    with pytest.raises(BrokerAuthError, match=r"broker\.username, broker\.password_file, broker\.ca_file not set"):
        fleet.broker.client_options()
    (tmp_path / "fleet.yaml").write_text(FLEET.replace("{host: 192.168.1.2}", "{host: 192.168.1.2, insecure: true}", 1))
    insecure = load_fleet(tmp_path / "fleet.yaml").broker
    assert insecure.port == 1883 and insecure.client_options() == {"hostname": "192.168.1.2", "port": 1883}

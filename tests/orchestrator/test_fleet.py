"""orchestrator/control/fleet.py: fleet.yaml validation and placing a bundle's partitions on the fleet's boards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from manifest_fixtures import manifest_json, partition_json

from core.errors import ConfigError
from core.manifest import Manifest
from orchestrator.control.fleet import AssignmentError, FleetError, assign, load_fleet

FLEET = """\
chain: lab
broker: {host: 192.168.1.2, port: 1883}
client: {host: 192.168.1.2}
remote_root: /opt/finnsplit
boards:
  - name: zed0
    type: zedboard
    address: 192.168.1.10
    ssh: {user: root, port: 22, key: ~/.ssh/id_ed25519, known_hosts: ~/.ssh/known_hosts}
    data_port: 7000
  - name: pynq0
    type: PYNQ-Z2
    address: 192.168.1.11
    remote_root: /srv/finnsplit/
  - name: zed1
    type: zedboard
    address: 192.168.1.12
  - name: pynq1
    type: pynq-z2
    address: 192.168.1.13
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return path


def test_the_contract_example_loads_with_defaults_and_home_expanded(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/alice")
    fleet = load_fleet(write(tmp_path, FLEET))
    assert (fleet.chain, fleet.broker.host, fleet.broker.port, fleet.client_host) == ("lab", "192.168.1.2", 1883,
                                                                                       "192.168.1.2")
    zed0, pynq0 = fleet.boards[0], fleet.board("pynq0")
    assert zed0.ssh.key == Path("/home/alice/.ssh/id_ed25519")
    assert zed0.ssh.known_hosts == Path("/home/alice/.ssh/known_hosts")
    assert (zed0.remote_root, pynq0.remote_root) == ("/opt/finnsplit", "/srv/finnsplit")
    assert (pynq0.type, pynq0.ssh.user, pynq0.ssh.port, pynq0.data_port) == ("pynq-z2", "root", 22, 7000)


@pytest.mark.parametrize(("change", "message"), [
    (("type: zedboard\n    address: 192.168.1.10", "type: zedbaord\n    address: 192.168.1.10"),
     r"boards\[0\]\.type: expected a known board \(.*zedboard\) or a board file's path, found 'zedbaord' "
     r"\(did you mean 'zedboard'\?\)"),
    (("name: zed1", "name: zed0"), r"boards\[2\]\.name: expected a name no other board has, found 'zed0', "
                                   r"the name of boards\[0\] too"),
    (("name: zed1", "name: Zed_1"), r"boards\[2\]\.name: expected a name matching \[a-z0-9-\]\+, found 'Zed_1'"),
    (("    address: 192.168.1.13\n", ""), r"boards\[3\]\.address: expected a non-empty string, found nothing"),
    (("ssh: {user: root,", "ssh: {usr: root,"), r"boards\[0\]\.ssh\.usr: expected a field of boards\[0\]\.ssh "
                                                r"\(user, port, key, known_hosts\), found unknown field 'usr' "
                                                r"\(did you mean 'user'\?\)"),
    (("data_port: 7000", "data_port: 70000"), r"boards\[0\]\.data_port: expected an integer in 1\.\.65535, "
                                              r"found 70000"),
    (("remote_root: /opt/finnsplit", "remote_root: opt"), r"remote_root: expected an absolute path, found 'opt'"),
    (("chain: lab", "chain: lab/1"), r"chain: expected a name matching \[a-z0-9-\]\+, found 'lab/1'"),
    (("client: {host: 192.168.1.2}\n", ""), r"client: expected a mapping \(host\), found nothing"),
    (("port: 1883}", "port: '1883'}"), r"broker\.port: expected an integer in 1\.\.65535 or null, found '1883'"),
    (("boards:", "boards: []\nunused:"), r"unused: expected a field of the top level \(chain, broker, client, boards, "
                                         r"remote_root\), found unknown field 'unused'"),
])
def test_errors_name_the_file_and_the_field(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    assert change[0] in FLEET
    path = write(tmp_path, FLEET.replace(*change))
    with pytest.raises(FleetError, match=rf"^{re.escape(str(path))}: {message}") as info:
        load_fleet(path)
    assert isinstance(info.value, ConfigError)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = FLEET.replace("chain: lab", "chain: Lab").replace("port: 22,", "port: 0,").replace(
        "    address: 192.168.1.13\n", "    adress: 192.168.1.13\n")
    with pytest.raises(FleetError) as info:
        load_fleet(write(tmp_path, text))
    assert [p.field for p in info.value.problems] == ["chain", "boards[0].ssh.port", "boards[3].adress",
                                                      "boards[3].address"]
    assert "did you mean 'address'?" in str(info.value) and len(str(info.value).splitlines()) == 4


def test_not_yaml_or_missing(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match="expected valid YAML, found while parsing"):
        load_fleet(write(tmp_path, "boards: [\n"))
    with pytest.raises(FleetError, match=r"nope\.yaml: expected a fleet file that can be read, found No such file"):
        load_fleet(tmp_path / "nope.yaml")
    with pytest.raises(FleetError, match=r"fleet.yaml: expected a mapping \(chain, .*\), found 'text'"):
        load_fleet(write(tmp_path, "text\n"))


def manifest(*boards: tuple[str, int]) -> Manifest:
    return Manifest.from_json(manifest_json([partition_json(k, board=board, replicas=replicas)
                                             for k, (board, replicas) in enumerate(boards)]))


def test_partitions_go_in_order_to_boards_of_their_type_with_replicas(tmp_path: Path) -> None:
    fleet = load_fleet(write(tmp_path, FLEET))
    placed = assign(fleet, manifest(("pynq-z2", 2), ("zedboard", 1)))
    assert [(k, b.name) for k, b in placed.placements] == [(0, "pynq0"), (0, "pynq1"), (1, "zed0")]
    assert [b.name for b in placed.spares] == ["zed1"]


def test_too_few_boards_of_a_type_says_how_many(tmp_path: Path) -> None:
    fleet = load_fleet(write(tmp_path, FLEET))
    with pytest.raises(AssignmentError, match=r"needs 3 zedboard board\(s\) \(partitions \[0, 1\], replicas "
                                              r"included\), .*fleet.yaml has 2 \(zed0, zed1\)"):
        assign(fleet, manifest(("zedboard", 2), ("zedboard", 1), ("pynq-z2", 1)))
    with pytest.raises(AssignmentError, match=r"needs 1 kv260 board\(s\).* has 0$"):
        assign(fleet, manifest(("kv260", 1)))


def test_the_example_fleet_loads() -> None:
    from pathlib import Path

    from orchestrator.control.fleet import load_fleet

    fleet = load_fleet(Path(__file__).resolve().parents[2] / "orchestrator" / "fleet.example.yaml")
    assert [b.name for b in fleet.boards][-1] == "spare0" and {b.type for b in fleet.boards} == {"zedboard"}
    broker = fleet.broker  # authenticated and encrypted; files relative to the fleet file
    assert (broker.port, broker.username, broker.insecure) == (8883, "lab-orchestrator", False)
    assert broker.ca_file == Path(fleet.path).parent / "fleet-secrets" / "ca.crt"

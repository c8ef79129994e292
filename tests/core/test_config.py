"""core/config.py: one typed config mechanism for board files, fleet.yaml, agent.yaml and build.yaml.

Every file kind refuses unknown keys at every level and reports each problem in one style,
`<file>: <field path>: expected <what>, found <what>`; the CLI prints it as one line per problem.
"""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import pytest
import yaml

from board_agent.config import config_from_dict, load_config
from core.config import NonEmpty, Port, Range, Text, check, from_data, load_yaml, to_data
from core.errors import ConfigError, Problem
from orchestrator.control.fleet import load_fleet
from splitter.boards import BUILTIN_DIR, BoardFileError, load_board
from splitter.build_file import read_build_file

REPO = Path(__file__).resolve().parents[2]
FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]
LINE = re.compile(r"^(?P<file>[^:]+): (?:(?P<field>[\w.\[\]]+): )?expected (?P<expected>.+), found (?P<found>.+)$")


@dataclass(frozen=True)
class Login:
    """A nested section."""

    user: Text = "root"
    port: Port = 22


@dataclass(frozen=True)
class Host:
    """A list item."""

    address: Text
    login: Login = field(default_factory=Login)


@dataclass(frozen=True)
class Sample:
    """A schema using every kind of field the mechanism knows."""

    name: Text
    kind: Literal["small", "large"]
    hosts: Annotated[tuple[Host, ...], NonEmpty()]
    ratio: Annotated[float, Range(gt=0, le=1)] = 0.5
    count: Annotated[int, Range(ge=1)] = 1
    enabled: bool = False
    note: str | None = None
    size: Text | Annotated[int, Range(ge=1)] = "6"
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        check(self.low <= self.high, "low", f"a number <= high ({self.high})", self.low)


GOOD = {"name": "a", "kind": "small", "hosts": [{"address": "10.0.0.1"}, {"address": "h", "login": {"port": 2222}}]}


def problems(data: object) -> list[str]:
    """The problems from_data finds in `data` (as Sample), one string each, without the source."""
    with pytest.raises(ConfigError) as info:
        from_data(Sample, data, "sample.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.problems)
    for line, problem in zip(lines, info.value.problems, strict=True):
        match = LINE.match(line)
        assert match is not None, line
        assert (match["file"], match["field"] or "") == ("sample.yaml", problem.field)
    return [str(p) for p in info.value.problems]


def test_a_good_file_gives_a_frozen_instance_with_defaults() -> None:
    sample = from_data(Sample, GOOD, "sample.yaml")
    assert sample.hosts[1].login == Login(port=2222) and sample.hosts[0].login == Login()
    assert (sample.ratio, sample.count, sample.enabled, sample.note, sample.size) == (0.5, 1, False, None, "6")
    with pytest.raises(AttributeError):
        sample.name = "b"  # type: ignore[misc]
    assert from_data(Sample, to_data(sample), "again") == sample
    assert from_data(Sample, {**GOOD, "size": 4, "ratio": 1}, "x").size == 4  # an int is a number, too


@pytest.mark.parametrize(("change", "expected"), [
    ({"nmae": "a"}, "nmae: expected a field of the top level (name, kind, hosts, ratio, count, enabled, note, size, "
                    "low, high), found unknown field 'nmae' (did you mean 'name'?)"),
    ({"hosts": [{"address": "h", "port": 22}]}, "hosts[0].port: expected a field of hosts[0] (address, login), "
                                                "found unknown field 'port'"),
    ({"hosts": [{"address": "h", "login": {"usr": "x"}}]},
     "hosts[0].login.usr: expected a field of hosts[0].login (user, port), found unknown field 'usr' "
     "(did you mean 'user'?)"),
])
def test_unknown_keys_are_refused_at_every_level(change: dict, expected: str) -> None:
    assert expected in problems({**GOOD, **change})


@pytest.mark.parametrize(("change", "expected"), [
    ({"name": 3}, "name: expected a non-empty string, found 3"),
    ({"name": "  "}, "name: expected a non-empty string, found '  '"),
    ({"kind": "smal"}, "kind: expected one of small, large, found 'smal' (did you mean 'small'?)"),
    ({"hosts": []}, "hosts: expected a non-empty list of mappings (address, login), found an empty list"),
    ({"hosts": {"address": "h"}}, "hosts: expected a non-empty list of mappings (address, login), found a mapping"),
    ({"hosts": ["h"]}, "hosts[0]: expected a mapping (address, login), found 'h'"),
    ({"ratio": 0}, "ratio: expected a number in (0, 1], found 0"),
    ({"ratio": "half"}, "ratio: expected a number in (0, 1], found 'half'"),
    ({"count": 1.5}, "count: expected an integer >= 1, found 1.5"),
    ({"count": True}, "count: expected an integer >= 1, found true"),
    ({"enabled": "yes"}, "enabled: expected true or false, found 'yes'"),
    ({"note": 7}, "note: expected a string or null, found 7"),
    ({"size": 0}, "size: expected a non-empty string or an integer >= 1, found 0"),
    ({"hosts": [{"address": "h", "login": {"port": 70000}}]},
     "hosts[0].login.port: expected an integer in 1..65535, found 70000"),
    ({"low": 2.0}, "low: expected a number <= high (1.0), found 2.0"),
])
def test_wrong_types_and_values_name_the_field(change: dict, expected: str) -> None:
    assert problems({**GOOD, **change}) == [expected]


def test_missing_required_fields_and_a_file_that_is_not_a_mapping() -> None:
    assert problems({"kind": "large"}) == [
        "name: expected a non-empty string, found nothing (the field is required)",
        "hosts: expected a non-empty list of mappings (address, login), found nothing (the field is required)"]
    assert problems({**GOOD, "hosts": [{}]}) == [
        "hosts[0].address: expected a non-empty string, found nothing (the field is required)"]
    assert problems(["a"]) == ["expected a mapping (name, kind, hosts, ratio, count, enabled, note, size, low, high), "
                               "found a list of 1 item"]
    assert problems(None) == [problems(["a"])[0].replace("a list of 1 item", "null")]


def test_every_problem_of_a_file_at_once() -> None:
    found = problems({"name": "", "kind": "huge", "extra": 1, "hosts": [{"address": "h", "login": {"port": 0}}, 5]})
    assert [p.split(":")[0] for p in found] == ["extra", "name", "kind", "hosts[0].login.port", "hosts[1]"]


def test_the_error_is_one_config_error_type_and_survives_pickling() -> None:
    with pytest.raises(ConfigError) as info:
        from_data(Sample, {**GOOD, "count": 0}, "s.yaml")
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is ConfigError and again.problems == info.value.problems and str(again) == str(info.value)
    assert str(Problem("", "valid YAML", "a tab")) == "expected valid YAML, found a tab"


def test_unreadable_and_invalid_yaml_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: expected a YAML file that can be read, found No such file"):
        load_yaml(Sample, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [a\nkind: small\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(Sample, bad)
    assert len(str(info.value).splitlines()) == 1 and str(info.value).startswith(f"{bad}: expected valid YAML, found ")


# ---- every file kind ----------------------------------------------------------------------------------------------


def test_board_files(tmp_path: Path) -> None:
    data = yaml.safe_load((BUILTIN_DIR / "zedboard.yaml").read_text())
    data["colour"] = "red"
    data["power"]["dynamic_mw_at_100mhz"]["lutt"] = 1
    data["usable"]["dsp"] = 2
    path = tmp_path / "zedboard.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(BoardFileError) as info:
        load_board(str(path))
    assert isinstance(info.value, ConfigError)
    assert [p.field for p in info.value.problems] == ["colour", "power.dynamic_mw_at_100mhz.lutt", "usable.dsp"]
    assert f"{path}: usable.dsp: expected a number in (0, 1], found 2" in str(info.value).splitlines()


FLEET = """\
chain: lab
broker: {host: 127.0.0.1, insecure: true}
client: {host: 127.0.0.1}
boards:
  - {name: zed0, type: zedboard, address: 10.0.0.1, ssh: {user: root}}
"""


def test_fleet_files(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET)
    assert load_fleet(path).broker.port == 1883
    path.write_text(FLEET.replace("insecure: true", "insecure: true, tls: on").replace("{user: root}", "{user: ''}")
                    .replace("chain: lab", "chain: lab\nspare: zed9"))
    with pytest.raises(ConfigError) as info:
        load_fleet(path)
    assert str(info.value).splitlines() == [
        f"{path}: spare: expected a field of the top level (chain, broker, client, boards, remote_root), "
        "found unknown field 'spare'",
        f"{path}: broker.tls: expected a field of broker (host, port, username, password_file, ca_file, insecure), "
        "found unknown field 'tls'",
        f"{path}: boards[0].ssh.user: expected a non-empty string, found ''"]


def agent_data() -> dict:
    return {"name": "zed0", "chain": "lab", "broker": {"host": "127.0.0.1", "insecure": True}}


def test_agent_files(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    data = agent_data()
    path.write_text(yaml.safe_dump(data))
    assert load_config(path).broker.port == 8883
    data.update(heartbeat="2", server={"max_failures": 0, "lancher": "qemu"}, broker={"insecure": True})
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [p.field for p in info.value.problems] == ["heartbeat", "broker.host", "server.lancher",
                                                      "server.max_failures"]
    assert f"{path}: server.lancher: expected a field of server" in str(info.value)
    assert "found unknown field 'lancher' (did you mean 'launcher'?)" in str(info.value)


def test_build_files(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "build.yaml"
    path.parent.mkdir()
    path.write_text("model: m.onnx\nboards: zedboard:4,pynq-z2:2\ntarget_fps: 100\nreplicate: false\n"
                    "input_spec: {dtype: UINT8, scale: 1/255, mean: [0.485, 0.456, 0.406], std: 0.226}\n")
    values = read_build_file(path)
    assert values["model"] == str(path.parent / "m.onnx") and values["boards"] == "zedboard:4,pynq-z2:2"
    path.write_text("boards: 6\n")
    assert read_build_file(path) == {"boards": "6"}
    path.write_text("model: m.onnx\nboards: zedboard:4,pynq-z2:2\ntarget_fps: 100\nreplicate: false\n"
                    "input_spec: {dtype: UINT8, scale: 1/255, mean: [0.485, 0.456, 0.406], std: 0.226}\n")
    values = read_build_file(path)
    assert (values["target_fps"], values["replicate"], values["input_spec"].mean) == (100.0, False,
                                                                                     (0.485, 0.456, 0.406))
    path.write_text("boards: 0\nfinn: maybe\ninput_spec: {dtype: UINT8, sdt: 2}\nmodle: m.onnx\n")
    with pytest.raises(ConfigError) as info:
        read_build_file(path)
    assert [p.field for p in info.value.problems] == ["modle", "boards", "input_spec.sdt", "finn"]
    assert f"{path}: finn: expected one of auto, yes, no, estimates, found 'maybe'" in str(info.value)


# ---- the files finnsplit writes load -------------------------------------------------------------------------------


def test_the_agent_yaml_board_install_writes_loads(tmp_path: Path) -> None:
    from orchestrator.deployment.board_install import agent_config

    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET)
    fleet = load_fleet(path)
    for launcher in (None, "qemu-arm-static -L /usr/arm-linux-gnueabihf"):
        text = agent_config(fleet.boards[0], fleet, "/etc/finnsplit", "/opt/finnsplit", launcher)
        cfg = config_from_dict(yaml.safe_load(text))
        assert (cfg.name, cfg.chain, cfg.server.launcher) == ("zed0", "lab", launcher)
        assert cfg.broker.username and cfg.broker.ca_file == "/etc/finnsplit/ca.crt"


# ---- the CLI: one clear line per problem, no traceback --------------------------------------------------------------


def finnsplit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*FINNSPLIT, *args], capture_output=True, text=True, timeout=900, cwd=cwd,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_the_cli_shows_a_config_error_as_one_line(tmp_path: Path) -> None:
    path = tmp_path / "build.yaml"
    path.write_text("model: m.onnx\nstrategy: greed\n")
    done = finnsplit("build", "--config", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"error: {path}: strategy: expected one of balanced, greedy, found 'greed' (did you mean 'greedy'?)"]
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET.replace("type: zedboard", "type: zedbord"))
    done = finnsplit("status", "--fleet", str(fleet))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"error: {fleet}: boards[0].type: expected a known board (kv260, pynq-z1, pynq-z2, ultra96-v2, zcu104, "
        "zedboard) or a board file's path, found 'zedbord' (did you mean 'zedboard'?)"]


@pytest.fixture(scope="module")
def tfc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zoo's TFC-w2a2 (seeded weights), the smallest model."""
    from splitter.zoo import export

    return export("tfc-w2a2", tmp_path_factory.mktemp("tfc") / "tfc-w2a2.onnx", seed=0)


def test_build_from_a_config_file_with_options_overriding_it(tfc: Path, tmp_path: Path) -> None:
    config = tmp_path / "conf" / "build.yaml"
    config.parent.mkdir()
    config.write_text(f"model: {tfc}\nboards: 3\nfinn: 'no'\noutput: from-file\n")
    done = finnsplit("build", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((config.parent / "from-file" / "manifest.json").read_text())  # relative to the file
    assert "2 boards unused" in done.stdout
    done = finnsplit("build", "--config", str(config), "--boards", "1", "-o", str(tmp_path / "cli"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "unused" not in done.stdout and (tmp_path / "cli" / "manifest.json").is_file()
    overridden = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert [p["board"] for p in overridden["partitions"]] == [p["board"] for p in manifest["partitions"]]
    assert not (tmp_path / "from-file").exists()


def test_the_documented_build_file_loads(tmp_path: Path) -> None:
    text = (REPO / "docs" / "config.md").read_text()
    block = re.search(r"```yaml\n# build\.yaml\n(.*?)```", text, re.S)
    assert block is not None, "docs/config.md shows an example build.yaml"
    path = tmp_path / "build.yaml"
    path.write_text(block.group(1))
    assert read_build_file(path)["model"] == str(tmp_path / "mobilenet-v1-w4a4.onnx")


def test_the_agent_prints_each_problem_on_its_own_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("name: Zed\nchain: lab\nbroker: {host: h, insecure: true, prot: 1}\n")
    done = subprocess.run([sys.executable, "-m", "board_agent", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, check=False, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"finnsplit-agent: {path}: name: expected a name matching [a-z0-9-]+, found 'Zed'",
        f"finnsplit-agent: {path}: broker.prot: expected a field of broker (host, port, keepalive_s, username, "
        "password_file, ca_file, insecure), found unknown field 'prot' (did you mean 'port'?)"]

"""The user's fleet (fleet.yaml) and which board runs which partition of a bundle.

The inventory format is the contract in docs/control-plane.md#inventory-the-users-fleet-fleetyaml.
`load_fleet` validates it into frozen dataclasses, with errors naming the file and the field;
`assign` places a bundle's partitions (and their replicas) on boards of the type the manifest asks for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from board_agent.mqtt import client_options
from core.errors import FinnsplitError
from splitter.boards import BoardError, UnknownBoardError, load_board

NAME = re.compile(r"[a-z0-9-]+")
DEFAULT_REMOTE_ROOT = "/opt/finnsplit"
DEFAULT_BROKER_PORT = 8883  # TLS (finnsplit fleet init); an insecure broker defaults to 1883
DEFAULT_DATA_PORT = 7000
DEFAULT_SSH_USER, DEFAULT_SSH_PORT = "root", 22
DEFAULT_SSH_KEY, DEFAULT_KNOWN_HOSTS = "~/.ssh/id_ed25519", "~/.ssh/known_hosts"


class FleetError(FinnsplitError):
    """A fleet.yaml that is missing, not YAML, or has a missing or malformed field."""

    def __init__(self, path: Path | str, why: str) -> None:
        super().__init__(f"fleet file {path}: {why}")
        self.path = str(path)


class AssignmentError(FinnsplitError):
    """A fleet without enough boards of some type for a bundle's partitions."""


@dataclass(frozen=True)
class SshSettings:
    """How the orchestrator logs in to one board (docs/control-plane.md)."""

    user: str
    port: int
    key: Path  # private key file, `~` expanded (key-file auth only)
    known_hosts: Path  # the pinned host keys, `~` expanded


@dataclass(frozen=True)
class BoardEntry:
    """One board of the fleet."""

    name: str  # [a-z0-9-]+, unique in the fleet; MQTT topics use it
    type: str  # board file name as splitter.boards knows it (the manifest's partitions[k].board)
    address: str  # SSH and data plane
    ssh: SshSettings
    data_port: int = DEFAULT_DATA_PORT  # where finnsplit-server listens
    remote_root: str = DEFAULT_REMOTE_ROOT  # absolute path on the board (docs/control-plane.md#remote-layout)


@dataclass(frozen=True)
class BrokerSettings:
    """Where the MQTT broker is and how the orchestrator logs in (docs/security.md)."""

    host: str
    port: int = DEFAULT_BROKER_PORT
    username: str | None = None  # `finnsplit fleet init`: <chain>-orchestrator
    password_file: Path | None = None  # readable by its owner only
    ca_file: Path | None = None  # the fleet's CA certificate: TLS, trusting only brokers it signed
    insecure: bool = False  # allow an anonymous plaintext broker (explicitly)

    def client_options(self) -> dict[str, Any]:
        """aiomqtt.Client keyword arguments; BrokerAuthError unless credentials and TLS are set (or insecure)."""
        return client_options(self.host, self.port, self.username, self.password_file, self.ca_file,
                              self.insecure, "fleet file")


@dataclass(frozen=True)
class Fleet:
    """A validated fleet.yaml."""

    chain: str  # MQTT namespace of the pipeline
    broker: BrokerSettings
    client_host: str  # the laptop's data-plane address
    boards: tuple[BoardEntry, ...]
    path: str = ""  # the file it was read from

    def board(self, name: str) -> BoardEntry:
        """The board called `name`."""
        for entry in self.boards:
            if entry.name == name:
                return entry
        raise KeyError(f"no board {name!r} in {self.path or 'the fleet'}")


@dataclass(frozen=True)
class Assignment:
    """Boards of a bundle: (partition index, board) in partition order, replicas included, and spares."""

    placements: tuple[tuple[int, BoardEntry], ...]
    spares: tuple[BoardEntry, ...]  # boards of the fleet no partition uses (failover candidates)


class _Fields:
    """Typed access to one mapping of fleet.yaml, with errors naming file and field."""

    def __init__(self, path: Path | str, data: Any, where: str, known: tuple[str, ...]) -> None:
        if not isinstance(data, Mapping):
            raise FleetError(path, f"{where or 'the top level'} must be a mapping of fields, got {data!r}")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise FleetError(path, f"unknown field '{where}{unknown[0]}' (known: {', '.join(known)})")
        self.path, self.data, self.where = path, data, where

    def fail(self, key: str, why: str) -> FleetError:
        return FleetError(self.path, f"field '{self.where}{key}' {why}, got {self.data.get(key)!r}")

    def text(self, key: str, default: str | None = None, pattern: re.Pattern | None = None) -> str:
        if key not in self.data and default is None:
            raise FleetError(self.path, f"missing field '{self.where}{key}'")
        value = self.data.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(key, "must be a non-empty string")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(key, f"must match {pattern.pattern}")
        return value

    def port(self, key: str, default: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise self.fail(key, "must be a TCP port (1-65535)")
        return value

    def file(self, key: str, default: str) -> Path:
        return Path(self.text(key, default)).expanduser()

    def section(self, key: str, known: tuple[str, ...], required: bool) -> _Fields:
        if key not in self.data and required:
            raise FleetError(self.path, f"missing field '{self.where}{key}'")
        return _Fields(self.path, self.data.get(key, {}), f"{self.where}{key}.", known)


def load_fleet(path: str | Path) -> Fleet:
    """Read and validate a fleet.yaml (docs/control-plane.md#inventory-the-users-fleet-fleetyaml)."""
    path = Path(path).expanduser()
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise FleetError(path, f"cannot read YAML: {exc}") from None
    top = _Fields(path, data, "", ("chain", "broker", "client", "remote_root", "boards"))
    chain = top.text("chain", pattern=NAME)
    broker = top.section("broker", ("host", "port", "username", "password_file", "ca_file", "insecure"),
                         required=True)
    client = top.section("client", ("host",), required=True)
    root = _remote_root(top, DEFAULT_REMOTE_ROOT)
    items = top.data.get("boards")
    if not isinstance(items, list) or not items:
        raise top.fail("boards", "must be a non-empty list of boards")
    boards = tuple(_board(path, item, f"boards[{i}].", root) for i, item in enumerate(items))
    seen: set[str] = set()
    for i, entry in enumerate(boards):
        if entry.name in seen:
            raise FleetError(path, f"field 'boards[{i}].name': board name {entry.name!r} is used twice")
        seen.add(entry.name)
    return Fleet(chain=chain,
                 broker=_broker(broker),
                 client_host=client.text("host"), boards=boards, path=str(path))


def _broker(fields: _Fields) -> BrokerSettings:
    insecure = fields.data.get("insecure", False)
    if not isinstance(insecure, bool):
        raise fields.fail("insecure", "must be true or false")
    secure = {key: fields.text(key) if key in fields.data else None for key in ("username", "password_file", "ca_file")}
    return BrokerSettings(
        host=fields.text("host"), port=fields.port("port", 1883 if insecure else DEFAULT_BROKER_PORT),
        username=secure["username"], insecure=insecure,
        password_file=None if secure["password_file"] is None else _relative_to(fields.path, secure["password_file"]),
        ca_file=None if secure["ca_file"] is None else _relative_to(fields.path, secure["ca_file"]))


def _relative_to(fleet_path: Path | str, value: str) -> Path:
    """A file named in fleet.yaml: `~` expanded, relative to the fleet file's directory."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(fleet_path).parent / path


def _remote_root(fields: _Fields, default: str) -> str:
    root = fields.text("remote_root", default)
    if not root.startswith("/"):
        raise fields.fail("remote_root", "must be an absolute path on the board")
    return root.rstrip("/") or "/"


def _board(path: Path, data: Any, where: str, default_root: str) -> BoardEntry:
    fields = _Fields(path, data, where, ("name", "type", "address", "ssh", "data_port", "remote_root"))
    ssh = fields.section("ssh", ("user", "port", "key", "known_hosts"), required=False)
    name = fields.text("name", pattern=NAME)
    try:
        board_type = load_board(fields.text("type")).name
    except UnknownBoardError as exc:
        raise FleetError(path, f"field '{where}type': {exc}") from None
    except BoardError as exc:
        raise FleetError(path, f"field '{where}type' names an unusable board: {exc}") from None
    return BoardEntry(
        name=name,
        type=board_type,
        address=fields.text("address"),
        ssh=SshSettings(user=ssh.text("user", DEFAULT_SSH_USER), port=ssh.port("port", DEFAULT_SSH_PORT),
                        key=ssh.file("key", DEFAULT_SSH_KEY), known_hosts=ssh.file("known_hosts", DEFAULT_KNOWN_HOSTS)),
        data_port=fields.port("data_port", DEFAULT_DATA_PORT),
        remote_root=_remote_root(fields, default_root),
    )


def assign(fleet: Fleet, manifest: Mapping[str, Any]) -> Assignment:
    """Place the manifest's partitions, in order and with their replicas, on the fleet's boards of each type."""
    pools: dict[str, list[BoardEntry]] = {}
    for entry in fleet.boards:
        pools.setdefault(entry.type.lower(), []).append(entry)
    needed: dict[str, list[int]] = {}
    for part in manifest["partitions"]:
        needed.setdefault(str(part["board"]).lower(), []).extend([part["index"]] * int(part.get("replicas", 1)))
    short = [(kind, parts) for kind, parts in needed.items() if len(parts) > len(pools.get(kind, []))]
    if short:
        raise AssignmentError("; ".join(
            f"the bundle needs {len(parts)} {kind} board(s) (partitions {sorted(set(parts))}, replicas included), "
            f"{fleet.path or 'the fleet'} has {len(pools.get(kind, []))}"
            f"{' (' + ', '.join(b.name for b in pools.get(kind, [])) + ')' if pools.get(kind) else ''}"
            for kind, parts in short))
    placements: list[tuple[int, BoardEntry]] = []
    for part in manifest["partitions"]:
        pool = pools[str(part["board"]).lower()]
        placements.extend((part["index"], pool.pop(0)) for _ in range(int(part.get("replicas", 1))))
    used = {entry.name for _, entry in placements}
    return Assignment(placements=tuple(placements), spares=tuple(b for b in fleet.boards if b.name not in used))


def fan_in_flags(manifest: dict[str, Any], index: int) -> list[str]:
    """Server flags for partition `index` downstream of replicated stages (docs/protocol.md#fan-out-and-merge):
    `--order any` once an earlier partition is replicated (frames arrive interleaved), and room for
    every upstream replica (and a replacement) past the default 4 upstream connections."""
    parts = manifest["partitions"]
    position = next(i for i, p in enumerate(parts) if p["index"] == index)
    flags = []
    if any(int(p.get("replicas", 1)) > 1 for p in parts[:position]):
        flags += ["--order", "any"]
    upstream = int(parts[position - 1].get("replicas", 1)) if position else 1
    if upstream + 1 > 4:
        flags += ["--max-upstreams", str(min(upstream + 2, 8))]
    return flags

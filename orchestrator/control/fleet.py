"""The user's fleet (fleet.yaml) and which board runs which partition of a bundle.

The inventory format is the contract in docs/control-plane.md#inventory-the-users-fleet-fleetyaml.
`load_fleet` reads it through its schema `FleetFile` (core/config.py: every problem at once, each naming
the file and the field) into frozen dataclasses;
`assign` places a bundle's partitions (and their replicas) on boards of the type the manifest asks for.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from core.config import AbsolutePath, Name, NonEmpty, Port, Text, load_yaml
from core.errors import ConfigError, FinnsplitError, Problem
from core.manifest import Manifest
from core.mqtt_login import client_options
from splitter.boards import BoardError, UnknownBoardError, load_board

DEFAULT_REMOTE_ROOT = "/opt/finnsplit"
DEFAULT_BROKER_PORT = 8883  # TLS (finnsplit fleet init); an insecure broker defaults to 1883
DEFAULT_DATA_PORT = 7000
DEFAULT_SSH_USER, DEFAULT_SSH_PORT = "root", 22
DEFAULT_SSH_KEY, DEFAULT_KNOWN_HOSTS = "~/.ssh/id_ed25519", "~/.ssh/known_hosts"


class FleetError(ConfigError):
    """A fleet.yaml that is missing, not YAML, or has missing, unknown or malformed fields (each a Problem)."""

    @property
    def path(self) -> str:
        """The fleet file."""
        return self.source


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


@dataclass(frozen=True)
class SshSection:
    """`boards[i].ssh:` of fleet.yaml."""

    user: Text = DEFAULT_SSH_USER
    port: Port = DEFAULT_SSH_PORT
    key: Text = DEFAULT_SSH_KEY
    known_hosts: Text = DEFAULT_KNOWN_HOSTS


@dataclass(frozen=True)
class BoardSection:
    """`boards[i]:` of fleet.yaml."""

    name: Name
    type: Text
    address: Text
    ssh: SshSection = field(default_factory=SshSection)
    data_port: Port = DEFAULT_DATA_PORT
    remote_root: AbsolutePath | None = None  # None: the fleet's remote_root


@dataclass(frozen=True)
class BrokerSection:
    """`broker:` of fleet.yaml."""

    host: Text
    port: Port | None = None  # None: 8883 (TLS), or 1883 when insecure
    username: Text | None = None
    password_file: Text | None = None  # relative to the fleet file's directory
    ca_file: Text | None = None
    insecure: bool = False


@dataclass(frozen=True)
class ClientSection:
    """`client:` of fleet.yaml."""

    host: Text


@dataclass(frozen=True)
class FleetFile:
    """The schema of fleet.yaml (docs/control-plane.md#inventory-the-users-fleet-fleetyaml)."""

    chain: Name
    broker: BrokerSection
    client: ClientSection
    boards: Annotated[tuple[BoardSection, ...], NonEmpty()]
    remote_root: AbsolutePath = DEFAULT_REMOTE_ROOT


def load_fleet(path: str | Path) -> Fleet:
    """Read and validate a fleet.yaml (docs/control-plane.md#inventory-the-users-fleet-fleetyaml)."""
    path = Path(path).expanduser()
    spec = load_yaml(FleetFile, path, error=FleetError, what="a fleet file")
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    boards = []
    for i, board in enumerate(spec.boards):
        if board.name in seen:
            problems.append(Problem(f"boards[{i}].name", "a name no other board has",
                                    f"{board.name!r}, the name of boards[{seen[board.name]}] too"))
        seen.setdefault(board.name, i)
        board_type = _board_type(board.type, f"boards[{i}].type", problems)
        boards.append(_board(board, board_type, spec.remote_root))
    if problems:
        raise FleetError(path, problems)
    return Fleet(chain=spec.chain, broker=_broker(path, spec.broker), client_host=spec.client.host,
                 boards=tuple(boards), path=str(path))


def _board_type(name: str, where: str, problems: list[Problem]) -> str:
    """The board file name `name` loads as (splitter.boards), or "" with a problem recorded."""
    try:
        return load_board(name).name
    except UnknownBoardError as exc:
        near = difflib.get_close_matches(name.lower(), exc.known, n=1, cutoff=0.6)
        problems.append(Problem(where, f"a known board ({', '.join(exc.known)}) or a board file's path",
                                f"{name!r}{f' (did you mean {near[0]!r}?)' if near else ''}"))
    except BoardError as exc:
        problems.append(Problem(where, "a usable board", f"{name!r}: {' '.join(str(exc).split())}"))
    return ""


def _broker(path: Path, spec: BrokerSection) -> BrokerSettings:
    default_port = 1883 if spec.insecure else DEFAULT_BROKER_PORT
    return BrokerSettings(
        host=spec.host, port=spec.port if spec.port is not None else default_port, username=spec.username,
        insecure=spec.insecure,
        password_file=None if spec.password_file is None else _relative_to(path, spec.password_file),
        ca_file=None if spec.ca_file is None else _relative_to(path, spec.ca_file))


def _relative_to(fleet_path: Path | str, value: str) -> Path:
    """A file named in fleet.yaml: `~` expanded, relative to the fleet file's directory."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(fleet_path).parent / path


def _root(value: str) -> str:
    return value.rstrip("/") or "/"


def _board(spec: BoardSection, board_type: str, default_root: str) -> BoardEntry:
    ssh = spec.ssh
    return BoardEntry(
        name=spec.name,
        type=board_type,
        address=spec.address,
        ssh=SshSettings(user=ssh.user, port=ssh.port, key=Path(ssh.key).expanduser(),
                        known_hosts=Path(ssh.known_hosts).expanduser()),
        data_port=spec.data_port,
        remote_root=_root(spec.remote_root if spec.remote_root is not None else default_root),
    )


def assign(fleet: Fleet, manifest: Manifest) -> Assignment:
    """Place the manifest's partitions, in order and with their replicas, on the fleet's boards of each type."""
    pools: dict[str, list[BoardEntry]] = {}
    for entry in fleet.boards:
        pools.setdefault(entry.type.lower(), []).append(entry)
    needed: dict[str, list[int]] = {}
    for part in manifest.partitions:
        needed.setdefault(part.board.lower(), []).extend([part.index] * part.replicas)
    short = [(kind, parts) for kind, parts in needed.items() if len(parts) > len(pools.get(kind, []))]
    if short:
        raise AssignmentError("; ".join(
            f"the bundle needs {len(parts)} {kind} board(s) (partitions {sorted(set(parts))}, replicas included), "
            f"{fleet.path or 'the fleet'} has {len(pools.get(kind, []))}"
            f"{' (' + ', '.join(b.name for b in pools.get(kind, [])) + ')' if pools.get(kind) else ''}"
            for kind, parts in short))
    placements: list[tuple[int, BoardEntry]] = []
    for part in manifest.partitions:
        pool = pools[part.board.lower()]
        placements.extend((part.index, pool.pop(0)) for _ in range(part.replicas))
    used = {entry.name for _, entry in placements}
    return Assignment(placements=tuple(placements), spares=tuple(b for b in fleet.boards if b.name not in used))


def fan_in_flags(manifest: Manifest, index: int) -> list[str]:
    """Server flags for partition `index` downstream of replicated stages (docs/protocol.md#fan-out-and-merge):
    `--order any` once an earlier partition is replicated (frames arrive interleaved), and room for
    every upstream replica (and a replacement) past the default 4 upstream connections."""
    parts = manifest.partitions
    position = next(i for i, p in enumerate(parts) if p.index == index)
    flags = []
    if any(p.replicas > 1 for p in parts[:position]):
        flags += ["--order", "any"]
    upstream = parts[position - 1].replicas if position else 1
    if upstream + 1 > 4:
        flags += ["--max-upstreams", str(min(upstream + 2, 8))]
    return flags

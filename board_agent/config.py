"""The board agent's configuration: one YAML file per board (docs/control-plane.md#board-agent).

Every section is a frozen dataclass; `load_config` checks each field's type and names the field
(`broker.port`) of any error. Derived values are computed only in `resolve_*` methods.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from board_agent.mqtt import BrokerAuthError, client_options
from core.errors import FinnsplitError
from core.server import find_server_binary
from core.topics import board_topic

NAME = re.compile(r"[a-z0-9-]+\Z")


class ConfigError(FinnsplitError):
    """An agent config that is missing, not YAML, or has a missing, unknown or mistyped field."""


@dataclass(frozen=True)
class BrokerConfig:
    """Where the MQTT broker is and how this board logs in (docs/security.md)."""

    host: str
    port: int = 8883
    keepalive_s: int = 10  # the broker declares the agent lost after 1.5 x keepalive of silence
    username: str | None = None  # this board's MQTT user (`finnsplit fleet init`: <chain>-board-<name>)
    password_file: str | None = None  # its password, in a file only the agent's user can read
    ca_file: str | None = None  # the fleet's CA certificate: TLS, and only a broker it signed is trusted
    insecure: bool = False  # true: allow an anonymous plaintext broker (a lab without `fleet init`)

    def __post_init__(self) -> None:
        _check(0 < self.port < 65536, "broker.port", "must be 1..65535")
        _check(self.keepalive_s > 0, "broker.keepalive_s", "must be positive")
        missing = [k for k in ("username", "password_file", "ca_file") if not getattr(self, k)]
        _check(self.insecure or not missing, f"broker.{missing[0] if missing else ''}",
               "is required: the broker needs credentials and TLS (made by `finnsplit fleet init`), "
               "or set broker.insecure: true")

    def client_options(self) -> dict[str, Any]:
        """aiomqtt.Client keyword arguments: host, port, credentials, TLS (reads the password file)."""
        try:
            return client_options(self.host, self.port, self.username, self.password_file, self.ca_file,
                                  self.insecure, "agent config")
        except BrokerAuthError as exc:
            raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class FpgaConfig:
    """The kernel's FPGA manager (deploy-facts: flags 0, firmware name, state "operating")."""

    manager: str = "/sys/class/fpga_manager/fpga0"
    firmware_dir: str = "/lib/firmware"  # where the kernel's firmware loader finds the .bit.bin
    timeout_s: float = 10.0  # until `state` reads "operating"


@dataclass(frozen=True)
class FinnZynqConfig:
    """Devices of the finn-zynq backend (docs/protocol.md#the-board-server)."""

    mem_device: str = "/dev/mem"  # IODMA registers mapped from here at the manifest's iodma base
    idma: str | None = None  # override, e.g. /dev/uio0 with generic-uio; None: mem_device@base
    odma: str | None = None
    dmabuf_in: str = "/dev/udmabuf0"
    dmabuf_out: str = "/dev/udmabuf1"
    dmabuf_in_phys: int | None = None  # None: the server reads /sys/class/u-dma-buf/<name>/phys_addr
    dmabuf_out_phys: int | None = None
    done_timeout_ms: int = 2000


@dataclass(frozen=True)
class ServerPolicy:
    """How the agent starts, restarts and stops finnsplit-server."""

    listen_timeout_s: float = 30.0  # until the "listening" event
    stop_timeout_s: float = 15.0  # SIGTERM (drain) to SIGKILL; above the server's --drain-timeout-ms
    stats_interval_ms: int = 1000
    backoff_s: float = 0.5  # first restart delay, doubled per failure within the window
    backoff_max_s: float = 10.0
    max_failures: int = 5  # failures within failure_window_s before giving up (status "error")
    failure_window_s: float = 60.0
    user: str | None = "nobody"  # the server gives up root for this user once its devices are mapped
    max_buffer_mb: float = 64.0  # frame buffers a run's --queue-depth may allocate (board memory)
    # A command the server runs under, e.g. "qemu-arm-static -L /usr/arm-linux-gnueabihf" for an
    # armhf server on an x86 test host (tests/test_board_install.py); never needed on a board.
    launcher: str | None = None

    def __post_init__(self) -> None:
        _check(self.max_failures >= 1, "server.max_failures", "must be at least 1")
        _check(0 < self.backoff_s <= self.backoff_max_s, "server.backoff_s", "must be in (0, backoff_max_s]")


@dataclass(frozen=True)
class CommandPolicy:
    """What the agent accepts on its cmd topic (board_agent/inbox.py)."""

    max_bytes: int = 65536  # larger messages are refused before parsing (the broker caps them too)
    max_age_s: float = 60.0  # a command sent this long before the newest accepted one is stale
    remember: int = 1024  # recent command ids kept to refuse replays

    def __post_init__(self) -> None:
        _check(1024 <= self.max_bytes <= 1 << 20, "commands.max_bytes", "must be 1024..1048576")
        _check(self.max_age_s > 0, "commands.max_age_s", "must be positive")
        _check(self.remember >= 16, "commands.remember", "must be at least 16")


@dataclass(frozen=True)
class AgentConfig:
    """One board's agent."""

    name: str  # the board's name in the fleet inventory, [a-z0-9-]+
    chain: str  # the pipeline's MQTT namespace, [a-z0-9-]+
    broker: BrokerConfig
    remote_root: str = "/opt/finnsplit"  # bundles/<id>/ and current (docs/control-plane.md#remote-layout)
    data_host: str = "0.0.0.0"  # the server's --listen host
    data_port: int = 7000  # 0: an ephemeral port, kept across restarts
    server_binary: str | None = None  # None: $FINNSPLIT_SERVER, PATH, this checkout's cpp_server/build
    heartbeat_s: float = 2.0
    reconnect_max_s: float = 10.0  # broker reconnect backoff: 0.5 s doubling to this
    fpga: FpgaConfig = field(default_factory=FpgaConfig)
    finn_zynq: FinnZynqConfig = field(default_factory=FinnZynqConfig)
    server: ServerPolicy = field(default_factory=ServerPolicy)
    commands: CommandPolicy = field(default_factory=CommandPolicy)

    def __post_init__(self) -> None:
        _check(bool(NAME.match(self.name)), "name", f"must match [a-z0-9-]+, got {self.name!r}")
        _check(bool(NAME.match(self.chain)), "chain", f"must match [a-z0-9-]+, got {self.chain!r}")
        _check(0 <= self.data_port < 65536, "data_port", "must be 0..65535")
        _check(self.heartbeat_s > 0, "heartbeat_s", "must be positive")
        _check(self.reconnect_max_s >= 0.5, "reconnect_max_s", "must be at least 0.5")

    def topic(self, leaf: str) -> str:
        """The MQTT topic `leaf` (status, cmd, ...) of this board."""
        return board_topic(self.chain, self.name, leaf)

    def resolve_server_binary(self) -> Path:
        """The finnsplit-server executable; raises ConfigError if there is none."""
        found = find_server_binary(self.server_binary)
        if found is None:
            where = self.server_binary or "$FINNSPLIT_SERVER, PATH or cpp_server/build"
            raise ConfigError(f"finnsplit-server not found ({where}); set server_binary in the agent config")
        return found

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (what `load_config` reads back)."""
        return dataclasses.asdict(self)


def load_config(path: str | Path) -> AgentConfig:
    """Read and check an agent config file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the agent config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def config_from_dict(data: object) -> AgentConfig:
    """Build an AgentConfig from parsed YAML/JSON, checking every field."""
    return _build(AgentConfig, data, "")


def _check(ok: bool, key: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"field {key!r} {why}")


def _build(cls: type, data: object, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{f'field {where!r}' if where else 'the config'} must be a mapping, "
                          f"got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown field {key!r} (known: {', '.join(known)})")
    values = {}
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}" if where else f.name
        if f.name in data:
            values[f.name] = _convert(hints[f.name], data[f.name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing field {key!r}")
    return cls(**values)


def _convert(hint: Any, value: object, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if isinstance(hint, types.UnionType):  # `X | None`
        if value is None:
            return None
        hint = next(arg for arg in hint.__args__ if arg is not type(None))
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"field {key!r} must be {hint.__name__}, got {value!r}")

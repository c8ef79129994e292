"""The board agent's configuration: one YAML file per board (docs/control-plane.md#board-agent).

Every section is a frozen dataclass and the tree is agent.yaml's schema: `load_config` reads it through
core/config.py (types, ranges and unknown keys checked everywhere, every problem at once, each naming
the file and the field, e.g. `broker.port`). Derived values are computed only in `resolve_*` methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from core.config import Name, Port, Range, check, from_data, load_yaml, to_data
from core.errors import ConfigError, Problem
from core.mqtt_login import BrokerAuthError, client_options
from core.server import find_server_binary
from core.topics import board_topic

__all__ = ["AgentConfig", "BrokerConfig", "CommandPolicy", "ConfigError", "FinnZynqConfig", "FpgaConfig",
           "ServerPolicy", "config_from_dict", "find_server_binary", "load_config"]

SOURCE = "agent config"  # names a config built from data rather than read from a file
Positive = Annotated[float, Range(gt=0)]
PositiveInt = Annotated[int, Range(gt=0)]


@dataclass(frozen=True)
class BrokerConfig:
    """Where the MQTT broker is and how this board logs in (docs/security.md)."""

    host: str
    port: Port = 8883
    keepalive_s: PositiveInt = 10  # the broker declares the agent lost after 1.5 x keepalive of silence
    username: str | None = None  # this board's MQTT user (`finnsplit fleet init`: <chain>-board-<name>)
    password_file: str | None = None  # its password, in a file only the agent's user can read
    ca_file: str | None = None  # the fleet's CA certificate: TLS, and only a broker it signed is trusted
    insecure: bool = False  # true: allow an anonymous plaintext broker (a lab without `fleet init`)

    def __post_init__(self) -> None:
        missing = [k for k in ("username", "password_file", "ca_file") if not getattr(self, k)]
        check(self.insecure or not missing, missing[0] if missing else "",
              "a value: the broker needs credentials and TLS (made by `finnsplit fleet init`), "
              "or set broker.insecure: true", "nothing")

    def client_options(self) -> dict[str, Any]:
        """aiomqtt.Client keyword arguments: host, port, credentials, TLS (reads the password file)."""
        try:
            return client_options(self.host, self.port, self.username, self.password_file, self.ca_file,
                                  self.insecure, SOURCE)
        except BrokerAuthError as exc:
            raise ConfigError(SOURCE, [Problem("broker", "credentials and a CA certificate the agent can read",
                                               str(exc))]) from None


@dataclass(frozen=True)
class FpgaConfig:
    """The kernel's FPGA manager (deploy-facts: flags 0, firmware name, state "operating")."""

    manager: str = "/sys/class/fpga_manager/fpga0"
    firmware_dir: str = "/lib/firmware"  # where the kernel's firmware loader finds the .bit.bin
    timeout_s: Positive = 10.0  # until `state` reads "operating"


@dataclass(frozen=True)
class FinnZynqConfig:
    """Devices of the finn-zynq backend (docs/protocol.md#the-board-server)."""

    mem_device: str = "/dev/mem"  # IODMA registers mapped from here at the manifest's iodma base
    idma: str | None = None  # override, e.g. /dev/uio0 with generic-uio; None: mem_device@base
    odma: str | None = None
    # a boundary of several tensors needs one buffer per tensor: a comma list in boundary order
    # ("/dev/udmabuf0,/dev/udmabuf2"), as are idma/odma overrides (docs/protocol.md#the-board-server)
    dmabuf_in: str = "/dev/udmabuf0"
    dmabuf_out: str = "/dev/udmabuf1"
    dmabuf_in_phys: int | None = None  # None: the server reads /sys/class/u-dma-buf/<name>/phys_addr
    dmabuf_out_phys: int | None = None
    done_timeout_ms: PositiveInt = 2000


@dataclass(frozen=True)
class ServerPolicy:
    """How the agent starts, restarts and stops finnsplit-server."""

    listen_timeout_s: Positive = 30.0  # until the "listening" event
    stop_timeout_s: Positive = 15.0  # SIGTERM (drain) to SIGKILL; above the server's --drain-timeout-ms
    stats_interval_ms: PositiveInt = 1000
    backoff_s: Positive = 0.5  # first restart delay, doubled per failure within the window
    backoff_max_s: Positive = 10.0
    max_failures: PositiveInt = 5  # failures within failure_window_s before giving up (status "error")
    failure_window_s: Positive = 60.0
    user: str | None = "nobody"  # the server gives up root for this user once its devices are mapped
    max_buffer_mb: Positive = 64.0  # frame buffers a run's --queue-depth may allocate (board memory)
    # A command the server runs under, e.g. "qemu-arm-static -L /usr/arm-linux-gnueabihf" for an
    # armhf server on an x86 test host (tests/board_agent/test_board_install.py); never needed on a board.
    launcher: str | None = None

    def __post_init__(self) -> None:
        check(self.backoff_s <= self.backoff_max_s, "backoff_s", f"a number <= backoff_max_s ({self.backoff_max_s})",
              self.backoff_s)


@dataclass(frozen=True)
class CommandPolicy:
    """What the agent accepts on its cmd topic (board_agent/inbox.py)."""

    max_bytes: Annotated[int, Range(ge=1024, le=1 << 20)] = 65536  # larger ones are refused before parsing
    max_age_s: Positive = 60.0  # a command sent this long before the newest accepted one is stale
    remember: Annotated[int, Range(ge=16)] = 1024  # recent command ids kept to refuse replays


@dataclass(frozen=True)
class AgentConfig:
    """One board's agent."""

    name: Name  # the board's name in the fleet inventory, [a-z0-9-]+
    chain: Name  # the pipeline's MQTT namespace, [a-z0-9-]+
    broker: BrokerConfig
    remote_root: str = "/opt/finnsplit"  # bundles/<id>/ and current (docs/control-plane.md#remote-layout)
    data_host: str = "0.0.0.0"  # the server's --listen host
    data_port: Annotated[int, Range(ge=0, le=65535)] = 7000  # 0: an ephemeral port, kept across restarts
    server_binary: str | None = None  # None: $FINNSPLIT_SERVER, PATH, this checkout's cpp_server/build
    heartbeat_s: Positive = 2.0
    reconnect_max_s: Annotated[float, Range(ge=0.5)] = 10.0  # broker reconnect backoff: 0.5 s doubling to this
    fpga: FpgaConfig = field(default_factory=FpgaConfig)
    finn_zynq: FinnZynqConfig = field(default_factory=FinnZynqConfig)
    server: ServerPolicy = field(default_factory=ServerPolicy)
    commands: CommandPolicy = field(default_factory=CommandPolicy)

    def topic(self, leaf: str) -> str:
        """The MQTT topic `leaf` (status, cmd, ...) of this board."""
        return board_topic(self.chain, self.name, leaf)

    def resolve_server_binary(self) -> Path:
        """The finnsplit-server executable; raises ConfigError if there is none."""
        found = find_server_binary(self.server_binary)
        if found is None:
            where = self.server_binary or "$FINNSPLIT_SERVER, PATH or cpp_server/build"
            raise ConfigError(SOURCE, [Problem("server_binary", "an executable finnsplit-server", f"none ({where})")])
        return found

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (what `load_config` reads back)."""
        return to_data(self)


def load_config(path: str | Path) -> AgentConfig:
    """Read and check an agent config file."""
    return load_yaml(AgentConfig, path, what="an agent config")


def config_from_dict(data: object, source: str = SOURCE) -> AgentConfig:
    """Build an AgentConfig from parsed YAML/JSON, checking every field."""
    return from_data(AgentConfig, data, source)

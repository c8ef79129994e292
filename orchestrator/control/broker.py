"""A fleet's broker secrets and configuration: identities, passwords, ACLs, TLS (docs/security.md).

`init_secrets` (the core of `finnsplit fleet init`) makes, in one directory, everything a Mosquitto
broker needs to serve one chain with authenticated, authorized, encrypted MQTT: the fleet's CA and
the broker's certificate (orchestrator/control/pki.py), one random password per board and one for the
orchestrator (files 0600), the daemon ingress's token, Mosquitto's password file (PBKDF2-SHA512,
its `$7$` format), an ACL file (a board reads only its own `cmd` and writes only its own topics;
the orchestrator reads and writes the chain), and a mosquitto.conf with a TLS listener, no
anonymous access and message size limits. Run again it keeps existing keys and passwords and adds
what is missing (a new board).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from core.topics import board_prefix, chain_filter
from orchestrator.control.pki import ensure_ca, issue_server_cert, write_private

TLS_PORT = 8883
BOARD_WRITES = ("status", "reply", "stats", "event", "heartbeat")
MESSAGE_SIZE_LIMIT = 131072  # the broker drops larger publishes; agent and orchestrator cap at 64 KiB
MAX_PACKET_SIZE = 262144  # a larger packet disconnects its sender before the broker buffers it
PBKDF2_ITERATIONS = 101  # mosquitto_passwd's; the passwords are 256-bit random, not guessable words


def board_username(chain: str, name: str) -> str:
    """The MQTT user of board `name` in `chain`."""
    return f"{chain}-board-{name}"


def orchestrator_username(chain: str) -> str:
    """The MQTT user of the chain's orchestrator (and `finnsplit status`)."""
    return f"{chain}-orchestrator"


@dataclass(frozen=True)
class Identity:
    """An MQTT user and the file holding its password."""

    username: str
    password_file: Path


@dataclass(frozen=True)
class FleetSecrets:
    """The files `init_secrets` wrote for one chain."""

    directory: Path
    chain: str
    boards: tuple[str, ...]

    @property
    def ca_file(self) -> Path:
        """The fleet CA's certificate: every client's trust anchor."""
        return self.directory / "ca.crt"

    @property
    def broker_dir(self) -> Path:
        """The broker's certificate, key, password file, ACL and mosquitto.conf."""
        return self.directory / "broker"

    def board(self, name: str) -> Identity:
        """Board `name`'s MQTT identity."""
        return Identity(board_username(self.chain, name), self.directory / "boards" / f"{name}.password")

    def orchestrator(self) -> Identity:
        """The orchestrator's MQTT identity."""
        return Identity(orchestrator_username(self.chain), self.directory / "orchestrator.password")

    @property
    def ingress_token_file(self) -> Path:
        """The bearer token of the daemon's ingress (docs/ingress.md)."""
        return self.directory / "ingress.token"

    def mosquitto_conf(self, host: str, port: int = TLS_PORT, extra: str = "") -> str:
        """A mosquitto.conf serving this chain on a TLS listener at host:port (`extra` lines appended)."""
        b = self.broker_dir
        return (f"# finnsplit chain {self.chain}: authenticated, authorized, encrypted (docs/security.md)\n"
                "per_listener_settings false\nallow_anonymous false\n"
                f"password_file {b / 'passwd'}\nacl_file {b / 'acl'}\n"
                f"message_size_limit {MESSAGE_SIZE_LIMIT}\nmax_packet_size {MAX_PACKET_SIZE}\n"
                f"listener {port} {host}\ncafile {self.ca_file}\ncertfile {b / 'broker.crt'}\n"
                f"keyfile {b / 'broker.key'}\ntls_version tlsv1.2\n" + extra)


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Mosquitto's password-file hash of `password`: `$7$<iterations>$<salt>$<PBKDF2-SHA512>`, base64."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(chain: str, boards: list[str] | tuple[str, ...]) -> str:
    """Mosquitto ACLs: each board reads its cmd and writes its own topics; the orchestrator has the chain."""
    lines = [f"# finnsplit chain {chain} (docs/security.md); anything not listed is denied",
             f"user {orchestrator_username(chain)}", f"topic readwrite {chain_filter(chain)}", ""]
    for name in boards:
        prefix = board_prefix(chain, name)
        lines += [f"user {board_username(chain, name)}", f"topic read {prefix}/cmd"]
        lines += [f"topic write {prefix}/{leaf}" for leaf in BOARD_WRITES] + [""]
    return "\n".join(lines)


def _password(path: Path) -> str:
    if not path.exists():
        write_private(path, (secrets.token_urlsafe(32) + "\n").encode())
    return path.read_text().strip()


def init_secrets(directory: str | Path, chain: str, boards: list[str] | tuple[str, ...],
                 broker_hosts: list[str]) -> FleetSecrets:
    """Make (or complete) the chain's CA, broker certificate, passwords, password file and ACL in `directory`."""
    found = FleetSecrets(Path(directory).resolve(), chain, tuple(boards))
    found.directory.mkdir(parents=True, exist_ok=True)
    ensure_ca(found.directory, f"finnsplit fleet {chain} CA")
    issue_server_cert(found.directory, found.broker_dir, "broker", broker_hosts)
    users = [found.orchestrator(), *(found.board(name) for name in boards)]
    passwd = "".join(f"{user.username}:{hash_password(_password(user.password_file))}\n" for user in users)
    write_private(found.broker_dir / "passwd", passwd.encode())
    (found.broker_dir / "acl").write_text(acl_text(chain, boards))
    _password(found.ingress_token_file)  # other programs' key to the daemon's ingress
    return found

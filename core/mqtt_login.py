"""How an MQTT client of the chain logs in: username, password file, TLS against the fleet's CA.

Shared by the board agent and the orchestrator (orchestrator/control/fleet_link.py), so it is part of core:
standard library only. `finnsplit fleet init` makes the files (orchestrator/control/broker.py, docs/security.md).
"""

from __future__ import annotations

import secrets
import ssl
import stat
from pathlib import Path
from typing import Any

from core.errors import FinnsplitError


class BrokerAuthError(FinnsplitError):
    """Credentials or TLS settings that are missing, unreadable or too widely readable."""


def read_password(path: str | Path, field: str = "broker.password_file") -> str:
    """The password in `path`, refused if the file can be read by its group or others (chmod 600)."""
    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise BrokerAuthError(f"{field}: cannot read {path} ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BrokerAuthError(f"{field}: {path} is accessible to its group or others (mode {stat.filemode(mode)}); "
                              f"run `chmod 600 {path}`")
    password = text.strip()
    if not password:
        raise BrokerAuthError(f"{field}: {path} is empty")
    return password


def tls_context(ca_file: str | Path, field: str = "broker.ca_file") -> ssl.SSLContext:
    """TLS 1.2+ verifying the broker's certificate and host name against the fleet's CA alone."""
    path = Path(ca_file).expanduser()
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise BrokerAuthError(f"{field}: cannot load the CA certificate {path} ({exc})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_options(host: str, port: int, username: str | None, password_file: str | Path | None,
                   ca_file: str | Path | None, insecure: bool, where: str) -> dict[str, Any]:
    """aiomqtt.Client keyword arguments; BrokerAuthError unless credentials and TLS are set (or `insecure`)."""
    options: dict[str, Any] = {"hostname": host, "port": port}
    if insecure and not username and not ca_file:
        return options  # an anonymous plaintext broker, chosen explicitly
    missing = [name for name, value in (("username", username), ("password_file", password_file),
                                        ("ca_file", ca_file)) if not value]
    if missing and not insecure:
        raise BrokerAuthError(f"{where}: broker.{', broker.'.join(missing)} not set: the broker needs credentials "
                              "and TLS (`finnsplit fleet init` makes them; docs/security.md), or set "
                              "broker.insecure: true for an anonymous plaintext broker")
    if username:
        options["username"] = username
        if password_file:
            options["password"] = read_password(password_file)
    if ca_file:
        options["tls_context"] = tls_context(ca_file)
    return options


def client_id(base: str) -> str:
    """A client id no one can predict: an attacker who could log in still cannot take over a session by id."""
    return f"{base}-{secrets.token_hex(6)}"


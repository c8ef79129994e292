"""The processes virtual boards and fleets are made of: SSH keys, an OpenSSH sshd, a Mosquitto broker.

One place for them, used by the virtual fleet (orchestrator/rigs/vfleet.py, `finnsplit run
--virtual-fleet`), the benchmarks and the tests alike. Each process is the real program (Debian's
sshd and mosquitto), started with a generated configuration and waited for until its port answers.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import FinnsplitError

MOSQUITTO = "/usr/sbin/mosquitto"
SSHD = "/usr/sbin/sshd"


class VirtualFleetError(FinnsplitError):
    """A virtual fleet's broker, sshd or agent did not come up."""


def keygen(path: Path) -> Path:
    """An ed25519 key pair at `path` and `path`.pub, unless it exists."""
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


def wait_for_port(host: str, port: int, what: str, proc: subprocess.Popen, log: Path, timeout: float = 10.0,
                  banner: bytes = b"") -> None:
    """Until `host:port` accepts a connection (and sends `banner` first, if given); VirtualFleetError if
    `proc` exits or `timeout` passes, with the end of its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5) as conn:
            if not banner or conn.recv(64).startswith(banner):
                return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
    raise VirtualFleetError(f"{what} did not start on {host}:{port}: {tail}")


def start_mosquitto(conf_text: str, work: Path, host: str, port: int) -> subprocess.Popen:
    """Mosquitto with `conf_text` (work/mosquitto.conf, log work/mosquitto.log), once it accepts connections."""
    conf, log = work / "mosquitto.conf", work / "mosquitto.log"
    conf.write_text(conf_text)
    with log.open("ab") as out:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(host, port, "mosquitto", proc, log, timeout=10.0)
    except VirtualFleetError:
        proc.kill()
        proc.wait()
        raise
    return proc


@dataclass
class Sshd:
    """An OpenSSH server in `base` on `address:port`, accepting the one client key given, host key pinned."""

    base: Path
    address: str
    port: int
    proc: subprocess.Popen

    @classmethod
    def start(cls, base: Path, address: str, port: int, client_public_key: Path,
              command_prefix: Sequence[str] = ()) -> Sshd:
        """Generate its host key and config in `base` and start it (`command_prefix`: e.g. `ip netns exec NS`)."""
        base.mkdir(parents=True, exist_ok=True)
        host_key = keygen(base / "host_ed25519")
        auth = base / "authorized_keys"
        auth.write_text(client_public_key.read_text())
        (base / "sshd_config").write_text(
            f"Port {port}\nListenAddress {address}\nHostKey {host_key}\nAuthorizedKeysFile {auth}\n"
            f"PidFile {base / 'sshd.pid'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nSubsystem sftp internal-sftp\n")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        log = base / "sshd.log"
        with log.open("ab") as out:
            proc = subprocess.Popen([*command_prefix, SSHD, "-D", "-e", "-f", str(base / "sshd_config")],
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(address, port, f"sshd in {base}", proc, log, banner=b"SSH-")
        except VirtualFleetError:
            proc.kill()
            proc.wait()
            raise
        return cls(base, address, port, proc)

    @property
    def host_public_key(self) -> Path:
        """The server's host key (public half)."""
        return self.base / "host_ed25519.pub"

    def known_hosts_line(self) -> str:
        """The known_hosts line that pins this server's host key."""
        key_type, key_b64 = self.host_public_key.read_text().split()[:2]
        host = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{host} {key_type} {key_b64}\n"

    def stop(self) -> None:
        """Stop the server."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

"""SSH to a board with a pinned host key: connection, remote commands, and the errors a board can cause.

Host keys come only from the fleet entry's known_hosts file; an unknown or changed key is refused
(paramiko RejectPolicy), never added (docs/control-plane.md#deployment-orchestratordeploypy).
Authentication is by key file only. A client is not thread safe: use one per board and thread.
"""

from __future__ import annotations

import base64
import hashlib
import shlex

import paramiko

from core.errors import FinnsplitError
from orchestrator.control.fleet import BoardEntry


class DeployError(FinnsplitError):
    """Something a board (or its fleet entry) caused while deploying to it; names the board."""

    def __init__(self, board: BoardEntry, why: str) -> None:
        super().__init__(f"board {board.name} ({board.ssh.user}@{board.address}:{board.ssh.port}): {why}")
        self.board = board.name


class HostKeyError(DeployError):
    """The board's host key is not pinned in known_hosts, or differs from the pinned one."""


class UnreachableError(DeployError):
    """No SSH server answered at the board's address and port."""


class AuthError(DeployError):
    """The board refused the fleet entry's key (or the key file is missing)."""


class RemoteCommandError(DeployError):
    """A command or SFTP operation on the board failed."""


def host_key_name(board: BoardEntry) -> str:
    """The board's name in known_hosts: `address`, or `[address]:port` for a port other than 22."""
    return board.address if board.ssh.port == 22 else f"[{board.address}]:{board.ssh.port}"


def pin_hint(board: BoardEntry) -> str:
    """How to pin a board's host key (check the fingerprint on the board's console before trusting it)."""
    return (f"pin it with `ssh-keyscan -p {board.ssh.port} {board.address} >> {board.ssh.known_hosts}` "
            f"and check the fingerprints (`ssh-keygen -lf {board.ssh.known_hosts}`) against "
            f"`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the board's serial console")


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a public key."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


class _PinnedHostKeys(paramiko.RejectPolicy):
    """RejectPolicy whose refusal is a HostKeyError telling the user how to pin the key."""

    def __init__(self, board: BoardEntry) -> None:
        self.board = board

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostKeyError(self.board, f"host key {key.get_name()} {fingerprint(key)} of {hostname} is not in "
                                       f"{self.board.ssh.known_hosts}; refusing to connect: {pin_hint(self.board)}")


def connect(board: BoardEntry, timeout: float = 10.0) -> paramiko.SSHClient:
    """An SSH client logged in to `board` with its key file, its host key checked against known_hosts."""
    ssh = board.ssh
    if not ssh.known_hosts.is_file():
        raise HostKeyError(board, f"known_hosts file {ssh.known_hosts} does not exist (fleet field ssh.known_hosts); "
                                  f"{pin_hint(board)}")
    if not ssh.key.is_file():
        raise AuthError(board, f"private key file {ssh.key} does not exist (fleet field ssh.key)")
    client = paramiko.SSHClient()
    client.load_host_keys(str(ssh.known_hosts))
    client.set_missing_host_key_policy(_PinnedHostKeys(board))
    try:
        client.connect(board.address, port=ssh.port, username=ssh.user, key_filename=str(ssh.key),
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout,
                       allow_agent=False, look_for_keys=False)
    except HostKeyError:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyError(board, f"HOST KEY CHANGED: {host_key_name(board)} presented {exc.key.get_name()} "
                                  f"{fingerprint(exc.key)}, {ssh.known_hosts} pins {fingerprint(exc.expected_key)}. "
                                  f"Either the board was reinstalled or someone is intercepting the connection. "
                                  f"If the board was reinstalled, remove the old key with `ssh-keygen -R "
                                  f"'{host_key_name(board)}' -f {ssh.known_hosts}`, then {pin_hint(board)}") from None
    except paramiko.AuthenticationException as exc:
        client.close()
        raise AuthError(board, f"authentication as {ssh.user} with key {ssh.key} failed ({exc}); is its public key "
                               f"in the board's ~{ssh.user}/.ssh/authorized_keys?") from None
    except (OSError, paramiko.SSHException) as exc:
        client.close()
        raise UnreachableError(board, f"cannot reach an SSH server: {_why_unreachable(exc, timeout)}; is the "
                                      f"board powered, on the network and running sshd on port {ssh.port}?") from None
    return client


def _why_unreachable(exc: Exception, timeout: float) -> str:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, paramiko.SSHException):
        return f"the port accepted the connection but no SSH server answered ({exc})"
    return str(exc) or type(exc).__name__


def run(client: paramiko.SSHClient, board: BoardEntry, argv: list[str], timeout: float = 60.0) -> str:
    """Run `argv` on the board (each word quoted) and return its stdout; RemoteCommandError unless it exits 0."""
    command = " ".join(shlex.quote(word) for word in argv)
    try:
        _, stdout, stderr = client.exec_command(command, timeout=timeout)
        out = stdout.read().decode(errors="replace")
        err = stderr.read().decode(errors="replace")
        status = stdout.channel.recv_exit_status()
    except (OSError, paramiko.SSHException) as exc:
        raise RemoteCommandError(board, f"`{command}` failed: {exc}") from None
    if status != 0:
        raise RemoteCommandError(board, f"`{command}` exited with status {status}: {err.strip() or out.strip()}")
    return out

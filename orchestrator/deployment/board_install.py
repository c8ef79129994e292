"""`finnsplit board install`: put the board agent and finnsplit-server on a board over SSH.

A board gets only what a board needs (docs/board-setup.md): a wheel holding `core` and
`board_agent` (standard library, aiomqtt and PyYAML; nothing of splitter/ or orchestrator/, no
numpy, onnx or torch), its two dependencies, the finnsplit-server binary built for the board's
architecture, the agent's config and broker credentials (from `finnsplit fleet init`), and the
systemd unit. Layout on the board, under the fleet's remote_root (/opt/finnsplit by default):

    venv/                     python3 -m venv, the agent wheel installed into it
    wheels/                   what pip installed from (offline: no index on the board)
    bin/finnsplit-server      for the board's `uname -m`
    <etc>/agent.yaml, broker.password, ca.crt       (--etc-dir, /etc/finnsplit)
    <systemd>/finnsplit-agent.service               (--systemd-dir, /etc/systemd/system)

Installing again upgrades: every file is replaced atomically (written beside, then renamed) and
the unit restarted. The agent imports are checked on the board before the unit is enabled.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
import shlex
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import paramiko
import yaml

from core.errors import FinnsplitError
from orchestrator.control.broker import board_username
from orchestrator.control.fleet import BoardEntry, Fleet
from orchestrator.deployment import ssh

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "board_agent")
DISTRIBUTION = "finnsplit-board"
# The agent's own dependencies, pinned as pyproject.toml pins them.
REQUIRES = ("aiomqtt", "pyyaml")
# `uname -m` -> the cpp_server build directory holding that architecture's binary (scripts/setup.sh)
SERVER_BUILDS = {"x86_64": "build", "armv7l": "build-armhf", "aarch64": "build-aarch64"}
# Modules the agent must never import on a board: heavy, absent on boards, or laptop-only.
FORBIDDEN = ("splitter", "orchestrator", "numpy", "onnx", "onnxruntime", "qonnx", "torch", "brevitas")
UNIT = "finnsplit-agent.service"

Progress = Callable[[str], None]


class InstallError(FinnsplitError):
    """The agent or server could not be installed on a board; names the board and the step."""


@dataclass(frozen=True)
class InstallOptions:
    """Where things go on the board, and how its Python packages are found."""

    etc_dir: str = "/etc/finnsplit"
    systemd_dir: str = "/etc/systemd/system"
    enable: bool = True  # systemctl daemon-reload, enable and restart the unit
    secrets: Path | None = None  # `finnsplit fleet init`'s directory: writes agent.yaml and the credentials
    wheels: Path | None = None  # dependency wheels for the board (default: downloaded for it on this machine)
    online: bool = False  # let the board's pip fetch the dependencies itself
    arch: str | None = None  # install this architecture's server whatever `uname -m` says (with `launcher`)
    launcher: str | None = None  # the agent runs the server under it (an emulator on a test host)


@dataclass(frozen=True)
class Installed:
    """What one install did: the board's architecture and Python, and where the agent runs from."""

    board: str
    arch: str
    python: str
    root: str
    agent_argv: tuple[str, ...]  # the unit's ExecStart
    unit_path: str


def _version() -> str:
    try:
        return metadata.version("finnsplit")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _pins() -> list[str]:
    """The agent's requirements with this installation's versions (pyproject.toml's pins)."""
    return [f"{name}=={metadata.version(name)}" for name in REQUIRES]


def agent_wheel(directory: Path) -> Path:
    """Write the board's wheel (core + board_agent, py3-none-any) into `directory` and return it."""
    version = _version()
    dist = f"{DISTRIBUTION.replace('-', '_')}-{version}"
    files: dict[str, bytes] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[path.relative_to(REPO).as_posix()] = path.read_bytes()
    requires = "".join(f"Requires-Dist: {pin}\n" for pin in _pins())
    files[f"{dist}.dist-info/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {version}\n"
        f"Summary: finnsplit board agent and its core vocabulary\nRequires-Python: >=3.10\n{requires}").encode()
    files[f"{dist}.dist-info/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: finnsplit\nRoot-Is-Purelib: true\n"
                                        b"Tag: py3-none-any\n")
    files[f"{dist}.dist-info/entry_points.txt"] = b"[console_scripts]\nfinnsplit-agent = board_agent.__main__:main\n"
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}.dist-info/RECORD,,")
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    out = directory / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            wheel.writestr(info, data, zipfile.ZIP_DEFLATED)
    return out


def dependency_wheels(directory: Path, arch: str, python: str) -> list[Path]:
    """Download the agent's dependencies as wheels for a board with `uname -m` arch and Python X.Y."""
    platform = {"x86_64": "manylinux2014_x86_64", "aarch64": "manylinux2014_aarch64",
                "armv7l": "manylinux2014_armv7l"}.get(arch)
    if platform is None:
        raise InstallError(f"no wheels known for architecture {arch!r}; pass --wheels DIR or --online")
    before = set(directory.iterdir())
    argv = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--dest", str(directory),
            "--only-binary", ":all:", "--python-version", python, "--implementation", "cp",
            "--platform", platform, "--platform", "linux_" + arch, "--platform", "any", *_pins()]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise InstallError(f"cannot download the agent's dependencies ({', '.join(_pins())}) as {platform} wheels for "
                           f"Python {python}: {why}; pass --wheels DIR (wheels for the board) or --online (the board's "
                           "own pip fetches them)")
    return sorted(set(directory.iterdir()) - before) or sorted(directory.glob("*.whl"))


def server_binary(arch: str) -> Path:
    """This checkout's finnsplit-server for `uname -m` arch (InstallError naming the build if missing)."""
    build = SERVER_BUILDS.get(arch)
    if build is None:
        raise InstallError(f"no finnsplit-server build for architecture {arch!r}; known: {', '.join(SERVER_BUILDS)}")
    path = REPO / "cpp_server" / build / "finnsplit-server"
    if not path.is_file():
        raise InstallError(f"{path} does not exist: build it with `bash scripts/setup.sh` (it cross-builds armhf and "
                           "aarch64 servers)")
    return path


def agent_config(board: BoardEntry, fleet: Fleet, etc_dir: str, root: str, launcher: str | None = None) -> str:
    """The board's agent.yaml, with the broker credentials `finnsplit fleet init` made for it."""
    config = {"name": board.name, "chain": fleet.chain,
              "broker": {"host": fleet.broker.host, "port": fleet.broker.port,
                         "username": board_username(fleet.chain, board.name),
                         "password_file": posixpath.join(etc_dir, "broker.password"),
                         "ca_file": posixpath.join(etc_dir, "ca.crt")},
              "remote_root": board.remote_root, "data_host": board.address, "data_port": board.data_port,
              "server_binary": posixpath.join(root, "bin", "finnsplit-server")}
    if launcher:
        config["server"] = {"launcher": launcher}
    return yaml.safe_dump(config, sort_keys=False)


def unit_text(root: str, etc_dir: str) -> str:
    """board_agent/systemd/finnsplit-agent.service with this install's paths."""
    text = (REPO / "board_agent" / "systemd" / UNIT).read_text()
    text = text.replace("/opt/finnsplit/venv/bin/python", posixpath.join(root, "venv", "bin", "python"))
    text = text.replace("--config /etc/finnsplit/agent.yaml", f"--config {posixpath.join(etc_dir, 'agent.yaml')}")
    return text.replace("ReadWritePaths=/opt/finnsplit ", f"ReadWritePaths={root} ")


def exec_start(unit: str) -> tuple[str, ...]:
    """The ExecStart command line of a unit file."""
    found = re.search(r"^ExecStart=(.+)$", unit, re.M)
    if found is None:
        raise InstallError("the unit has no ExecStart line")
    return tuple(found.group(1).split())


class _Board:
    """One SSH session to a board: commands and atomic file uploads, errors naming the board and step."""

    def __init__(self, board: BoardEntry) -> None:
        self.board = board
        self.client = ssh.connect(board)
        self.sftp: paramiko.SFTPClient = self.client.open_sftp()

    def run(self, argv: list[str], step: str, timeout: float = 300.0) -> str:
        try:
            return ssh.run(self.client, self.board, argv, timeout=timeout)
        except ssh.DeployError as exc:
            raise InstallError(f"board {self.board.name}: {step}: {exc}") from None

    def put(self, data: bytes, path: str, mode: int) -> None:
        """Write `data` to `path` on the board: beside it first, then renamed over it."""
        tmp = f"{path}.finnsplit-new"
        try:
            with self.sftp.open(tmp, "wb") as f:
                f.write(data)
            self.sftp.chmod(tmp, mode)
            self.sftp.posix_rename(tmp, path)
        except OSError as exc:
            raise InstallError(f"board {self.board.name}: cannot write {path}: {exc}") from None

    def close(self) -> None:
        self.sftp.close()
        self.client.close()


def install(board: BoardEntry, fleet: Fleet, opts: InstallOptions, progress: Progress = lambda _: None) -> Installed:
    """Install or upgrade the agent and the server on `board` (see the module docstring)."""
    root, etc = board.remote_root, opts.etc_dir
    remote = _Board(board)
    try:
        machine = remote.run(["uname", "-m"], "architecture").strip()  # what the board's python3 runs on
        arch = opts.arch or machine  # what its server is built for
        python = remote.run(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                            "python3 (the board needs Python 3.10 or later with venv)").strip()
        if tuple(int(x) for x in python.split(".")) < (3, 10):
            raise InstallError(f"board {board.name}: Python {python}; the agent needs 3.10 or later")
        progress(f"{board.name}: {arch}, Python {python}")
        binary = server_binary(arch)
        remote.run(["mkdir", "-p", posixpath.join(root, "bin"), posixpath.join(root, "wheels"), etc,
                    opts.systemd_dir], "directories")
        with tempfile.TemporaryDirectory() as tmp:
            wheels = [agent_wheel(Path(tmp))]
            if opts.wheels is not None:
                wheels += sorted(opts.wheels.glob("*.whl"))
            elif not opts.online:
                wheels += dependency_wheels(Path(tmp), machine, python)
            for wheel in wheels:
                remote.put(wheel.read_bytes(), posixpath.join(root, "wheels", wheel.name), 0o644)
        remote.put(binary.read_bytes(), posixpath.join(root, "bin", "finnsplit-server"), 0o755)
        progress(f"{board.name}: uploaded the agent, {len(wheels) - 1} dependency wheel(s), finnsplit-server ({arch})")
        venv = posixpath.join(root, "venv")
        remote.run(["python3", "-m", "venv", "--clear", venv], "python3 -m venv (Debian: apt install python3-venv)")
        pip = [posixpath.join(venv, "bin", "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        where = [] if opts.online else ["--no-index"]
        remote.run([*pip, *where, "--find-links", posixpath.join(root, "wheels"), f"{DISTRIBUTION}=={_version()}"],
                   "pip install of the agent")
        _check_imports(remote, venv)
        launcher = shlex.split(opts.launcher) if opts.launcher else []
        remote.run([*launcher, posixpath.join(root, "bin", "finnsplit-server"), "self-test"],
                   "finnsplit-server self-test")
        if opts.secrets is not None:
            _write_credentials(remote, board, fleet, opts, root)
        unit = unit_text(root, etc)
        unit_path = posixpath.join(opts.systemd_dir, UNIT)
        remote.put(unit.encode(), unit_path, 0o644)
        if opts.enable:
            remote.run(["systemctl", "daemon-reload"], "systemctl daemon-reload")
            remote.run(["systemctl", "enable", UNIT], "systemctl enable")
            remote.run(["systemctl", "restart", UNIT], "systemctl restart")
        progress(f"{board.name}: agent installed in {venv}, unit {unit_path}" + (" enabled" if opts.enable else ""))
        return Installed(board.name, arch, python, root, exec_start(unit), unit_path)
    finally:
        remote.close()


def _check_imports(remote: _Board, venv: str) -> None:
    """The installed agent imports, and imports nothing of FORBIDDEN."""
    probe = ("import sys, board_agent.__main__, board_agent.agent; "
             f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}); print(','.join(bad))")
    bad = remote.run([posixpath.join(venv, "bin", "python"), "-c", probe], "the installed agent's imports").strip()
    if bad:
        raise InstallError(f"board {remote.board.name}: the installed agent imports {bad}, which a board lacks")


def _write_credentials(remote: _Board, board: BoardEntry, fleet: Fleet, opts: InstallOptions, root: str) -> None:
    secrets, etc = opts.secrets, opts.etc_dir
    assert secrets is not None
    password = secrets / "boards" / f"{board.name}.password"
    ca = secrets / "ca.crt"
    for path in (password, ca):
        if not path.is_file():
            raise InstallError(f"{path} does not exist: run `finnsplit fleet init --fleet FLEET -o {secrets}` first")
    remote.put(password.read_bytes(), posixpath.join(etc, "broker.password"), 0o600)
    remote.put(ca.read_bytes(), posixpath.join(etc, "ca.crt"), 0o644)
    text = agent_config(board, fleet, etc, root, opts.launcher)
    remote.put(text.encode(), posixpath.join(etc, "agent.yaml"), 0o600)


def install_many(fleet: Fleet, names: list[str], opts: InstallOptions, progress: Progress) -> list[Installed]:
    """Install on the fleet's boards named (all when `names` is empty), one after another."""
    known = {b.name: b for b in fleet.boards}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InstallError(f"no board {', '.join(map(repr, unknown))} in the fleet; boards: {', '.join(known)}")
    return [install(known[n], fleet, opts, progress) for n in (names or list(known))]


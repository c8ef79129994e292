"""A virtual fleet: boards as network namespaces, each with a real sshd and a real board agent.

Everything a real fleet has except the FPGA: the laptop side gets a Mosquitto broker on the
bridge address, configured as `finnsplit fleet init` configures a real one (TLS with the fleet's
own CA, a password per board and for the orchestrator, ACLs, no anonymous access; orchestrator/
broker.py), every board an OpenSSH server on its own address (own host key, pinned in the fleet's
known_hosts), its own remote_root, and `python -m board_agent` in its namespace logging in with its
own credentials (the agent starts finnsplit-server with the emulate backend). `fleet.yaml`
describes it like any other fleet (docs/control-plane.md). Needs root. Used by `finnsplit run
--virtual-fleet` and the tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from orchestrator.control.broker import TLS_PORT, FleetSecrets, init_secrets
from orchestrator.rigs.netns import NetworkConfig, VirtualNetwork
from orchestrator.rigs.services import Sshd, VirtualFleetError, keygen, start_mosquitto

__all__ = ["BROKER_PORT", "VirtualFleet", "VirtualFleetError"]

BROKER_PORT = TLS_PORT


class VirtualFleet:
    """`boards` virtual boards [(name, type), ...] in `work`; use as a context manager."""

    def __init__(self, work: str | Path, boards: list[tuple[str, str]], chain: str = "vfleet",
                 rate_mbit: float | None = None, heartbeat_s: float = 1.0, agents: bool = True) -> None:
        """Create the network, broker, sshds and agents, and write work/fleet.yaml.

        `agents=False`: fresh boards, nothing but sshd (for `finnsplit board install`; run_in starts
        what it installed)."""
        self.work = Path(work).resolve()
        self.agents = agents
        self.work.mkdir(parents=True, exist_ok=True)
        self.boards, self.chain, self.heartbeat_s = boards, chain, heartbeat_s
        self.procs: dict[str, list[subprocess.Popen]] = {}
        self.network = VirtualNetwork(NetworkConfig(len(boards), rate_mbit=rate_mbit))
        self.secrets: FleetSecrets | None = None
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    @property
    def fleet_path(self) -> Path:
        """The fleet.yaml describing this fleet."""
        return self.work / "fleet.yaml"

    def remote_root(self, name: str) -> Path:
        """Where board `name` keeps its bundles."""
        return self.work / "boards" / name / "opt" / "finnsplit"

    def _start(self) -> None:
        host = self.network.host_address
        key = keygen(self.work / "orchestrator_key")
        self._start_broker(host)
        known = []
        for i, (name, _) in enumerate(self.boards):
            known.append(self._start_board(i, name, key))
        (self.work / "known_hosts").write_text("".join(known))
        self._write_fleet(key)

    def _start_broker(self, host: str) -> None:
        self.secrets = init_secrets(self.work / "secrets", self.chain, [n for n, _ in self.boards], [host])
        # as root, mosquitto would switch to its own user, which cannot read the work directory's 0600 files
        conf = self.secrets.mosquitto_conf(host, BROKER_PORT, "persistence false\nuser root\n")
        self.procs["broker"] = [start_mosquitto(conf, self.work, host, BROKER_PORT)]

    def _start_board(self, index: int, name: str, client_key: Path) -> str:
        """sshd and agent for one board; returns its known_hosts line."""
        self.remote_root(name).mkdir(parents=True, exist_ok=True)
        prefix = self.network.command(index, [])  # ip netns exec NS
        sshd = Sshd.start(self.work / "boards" / name / "ssh", self.network.address(index), 22,
                          Path(f"{client_key}.pub"), command_prefix=prefix)
        self.procs[name] = [sshd.proc]
        if self.agents:
            self.start_agent(name)
        return sshd.known_hosts_line()

    def start_agent(self, name: str) -> None:
        """Start (or start again) board `name`'s agent in its namespace."""
        index = [n for n, _ in self.boards].index(name)
        base = self.work / "boards" / name
        assert self.secrets is not None
        ident = self.secrets.board(name)
        config = {"name": name, "chain": self.chain,
                  "broker": {"host": self.network.host_address, "port": BROKER_PORT, "keepalive_s": 2,
                             "username": ident.username, "password_file": str(ident.password_file),
                             "ca_file": str(self.secrets.ca_file)},
                  "remote_root": str(self.remote_root(name)), "data_host": self.network.address(index),
                  "data_port": 7000, "heartbeat_s": self.heartbeat_s,
                  "server": {"stats_interval_ms": 500, "stop_timeout_s": 5.0}}
        (base / "agent.yaml").write_text(yaml.safe_dump(config))
        argv = [sys.executable, "-m", "board_agent", "--config", str(base / "agent.yaml")]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        agent = subprocess.Popen(self.network.command(index, argv), stdout=(base / "agent.log").open("ab"),
                                 stderr=subprocess.STDOUT, env=env)
        self.procs[name].append(agent)

    def run_in(self, name: str, argv: list[str], log: Path) -> subprocess.Popen:
        """Start `argv` in board `name`'s namespace with a bare environment (nothing of this checkout's
        venv or PYTHONPATH), as its init system would; killed with the board."""
        index = [n for n, _ in self.boards].index(name)
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(self.network.command(index, argv), stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                env=env, cwd="/")
        self.procs[name].append(proc)
        return proc

    def _write_fleet(self, key: Path) -> None:
        boards = [{"name": name, "type": kind, "address": self.network.address(i), "data_port": 7000,
                   "remote_root": str(self.remote_root(name)),
                   "ssh": {"user": "root", "port": 22, "key": str(key), "known_hosts": str(self.work / "known_hosts")}}
                  for i, (name, kind) in enumerate(self.boards)]
        assert self.secrets is not None
        me = self.secrets.orchestrator()
        broker = {"host": self.network.host_address, "port": BROKER_PORT, "username": me.username,
                  "password_file": str(me.password_file), "ca_file": str(self.secrets.ca_file)}
        fleet = {"chain": self.chain, "broker": broker,
                 "client": {"host": self.network.host_address}, "boards": boards}
        self.fleet_path.write_text(yaml.safe_dump(fleet, sort_keys=False))

    def kill(self, name: str) -> None:
        """Board `name` dies: every process in its namespace is killed at once (agent, server, sshd)."""
        index = [n for n, _ in self.boards].index(name)
        pids = subprocess.run(["ip", "netns", "pids", self.network.namespace(index)], capture_output=True,
                              text=True, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        for proc in self.procs.get(name, []):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def close(self) -> None:
        """Stop agents (they stop their servers), sshds and the broker; remove the network."""
        for procs in reversed(list(self.procs.values())):
            for proc in reversed(procs):
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.network.close()

    def __enter__(self) -> VirtualFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

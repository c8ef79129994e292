"""Virtual boards with their own network: Linux network namespaces on a bridge, links shaped like a board's NIC.

Board i is namespace `<prefix>b<i>` with address 10.<a>.<b>.(10 + i)/24 on a veth pair whose host end
joins the bridge `<prefix>br`, which carries the laptop's address .1. With `rate_mbit`, both
directions of every board's link pass a token bucket (tc tbf) at that rate: the namespace end
shapes what the board sends, the bridge end what it receives, as a 1 GbE NIC would; the bridge
itself shapes what the laptop sends, its one NIC feeding every board (a replicated first stage
shares it). Needs root
(`ip`, `tc` from iproute2); everything created is removed on close, also after a crash of an
earlier run with the same prefix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import FinnsplitError


class NetnsError(FinnsplitError):
    """A namespace, link or shaping rule could not be set up."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


def _tc(*args: str) -> None:
    done = subprocess.run(["tc", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetnsError(f"`tc {' '.join(args)}` failed: {done.stderr.strip()}")


def netns_available() -> str | None:
    """None when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} (iproute2) is not installed"
    return None


@dataclass(frozen=True)
class NetworkConfig:
    """Shape of the virtual network."""

    boards: int
    prefix: str = ""  # names start with this (<= 6 characters); default derived from the process id
    subnet: str = ""  # "10.a.b" (a /24); default derived from the process id
    rate_mbit: float | None = None  # per board and direction; None: unshaped veth speed
    delay_ms: float = 0.0  # one-way added latency per link direction (netem), 0 for none

    def resolved(self) -> NetworkConfig:
        """Fill the defaults: names and a /24 unique to this process, so parallel runs do not collide."""
        pid = os.getpid()
        prefix = self.prefix or f"fs{pid % 10000}"
        if len(prefix) > 6:
            raise NetnsError(f"prefix {prefix!r} is longer than 6 characters (Linux interface names are <= 15)")
        subnet = self.subnet or f"10.{200 + pid % 50}.{(pid // 50) % 250}"
        return NetworkConfig(self.boards, prefix, subnet, self.rate_mbit, self.delay_ms)


class VirtualNetwork:
    """Namespaces for `boards` virtual boards and the laptop's bridge; use as a context manager."""

    def __init__(self, config: NetworkConfig) -> None:
        """Create the bridge, the namespaces and their links (removing leftovers of the same prefix first)."""
        why = netns_available()
        if why:
            raise NetnsError(why)
        self.config = config.resolved()
        self.bridge = f"{self.config.prefix}br"
        self.cleanup()
        try:
            self._create()
        except BaseException:
            self.cleanup()
            raise

    @property
    def host_address(self) -> str:
        """The laptop's address on the bridge."""
        return f"{self.config.subnet}.1"

    def namespace(self, board: int) -> str:
        """Name of board `board`'s namespace."""
        return f"{self.config.prefix}b{board}"

    def address(self, board: int) -> str:
        """Board `board`'s address."""
        return f"{self.config.subnet}.{10 + board}"

    def command(self, board: int, argv: Sequence[str]) -> list[str]:
        """`argv` run inside board `board`'s namespace."""
        return ["ip", "netns", "exec", self.namespace(board), *argv]

    def _create(self) -> None:
        c = self.config
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.host_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        self._shape(self.bridge, None)  # the laptop's own NIC (only what it sends itself passes this qdisc)
        for i in range(c.boards):
            ns, host_end, board_end = self.namespace(i), f"{c.prefix}b{i}h", f"{c.prefix}b{i}n"
            _ip("netns", "add", ns)
            _ip("link", "add", host_end, "type", "veth", "peer", "name", board_end)
            _ip("link", "set", board_end, "netns", ns)
            _ip("link", "set", host_end, "master", self.bridge)
            _ip("link", "set", host_end, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", board_end)
            _ip("-n", ns, "link", "set", board_end, "up")
            self._shape(host_end, None)
            self._shape(board_end, ns)

    def _shape(self, dev: str, ns: str | None) -> None:
        """A token bucket at the board's rate (burst of 1 ms of traffic), netem delay in front of it if asked."""
        c = self.config
        if c.rate_mbit is None and not c.delay_ms:
            return
        prefix = ["-n", ns] if ns else []
        parent = ["root"]
        if c.delay_ms:
            _tc(*prefix, "qdisc", "add", "dev", dev, "root", "handle", "1:", "netem", "delay", f"{c.delay_ms}ms")
            parent = ["parent", "1:1"]
        if c.rate_mbit is not None:
            burst = max(int(c.rate_mbit * 1e6 / 8 / 1000), 16 * 1514)
            _tc(*prefix, "qdisc", "add", "dev", dev, *parent, "handle", "10:", "tbf", "rate", f"{c.rate_mbit}mbit",
                "burst", str(burst), "latency", "20ms")

    def cleanup(self) -> None:
        """Remove every namespace, link and the bridge of this prefix (idempotent)."""
        prefix = self.config.prefix
        # Delete the host ends first: a namespace's deletion (and with it its veth pair) completes
        # asynchronously in the kernel, so a quick re-creation could find the old links still there.
        for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if name.startswith(f"{prefix}b") and name.endswith("h") and name[len(prefix) + 1:-1].isdigit():
                _ip("link", "del", name, check=False)
        for line in _ip("netns", "list", check=False).stdout.splitlines():
            name = line.split(" ")[0]
            if name.startswith(f"{prefix}b") and name[len(prefix) + 1:].isdigit():
                _ip("netns", "del", name, check=False)
        _ip("link", "del", self.bridge, check=False)

    def close(self) -> None:
        """Tear everything down."""
        self.cleanup()

    def __enter__(self) -> VirtualNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

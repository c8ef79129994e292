"""Virtual boards: a bundle's partitions as local finnsplit-server processes (emulate or delay backend).

Each partition runs the same server binary a board runs, on loopback or in a network namespace of
its own (orchestrator/netns.py), chained partition k -> k+1 -> the client's result port, every link
authenticated with a key made for the run (orchestrator/link_auth.py) as on real boards. Reads only
the bundle's manifest and files (docs/bundle.md).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from board_agent.config import find_server_binary
from orchestrator.link_auth import new_key, write_key
from orchestrator.netns import VirtualNetwork
from orchestrator.protocol import WireSpec
from splitter.bundle.manifest import load_manifest
from splitter.datatypes import datatype
from splitter.errors import FinnsplitError


class VirtualBoardError(FinnsplitError):
    """A virtual board could not be started or died."""


def server_binary() -> Path:
    """finnsplit-server, found as a board agent finds it ($FINNSPLIT_SERVER, PATH, cpp_server/build)."""
    found = find_server_binary()
    if found is None:
        raise VirtualBoardError("finnsplit-server not found: build it (scripts/setup.sh builds cpp_server/build) "
                                "or set FINNSPLIT_SERVER")
    return found


class VirtualBoard:
    """One server process; `port` is where the previous hop connects."""

    def __init__(self, name: str, command: list[str], log_path: Path) -> None:
        """Start the process and wait until it listens."""
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.events: list[dict[str, Any]] = []
        self.port = self._wait_listening(timeout=30.0)
        threading.Thread(target=self._collect, daemon=True).start()

    def _wait_listening(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("{"):
                event = json.loads(line)
                self.events.append(event)
                if event.get("event") == "listening":
                    return int(event["port"])
        self.stop()
        raise VirtualBoardError(f"virtual board {self.name} did not start:\n{self.log_path.read_text()[-2000:]}")

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def last_stats(self) -> dict[str, Any] | None:
        """The newest stats line the server printed."""
        return next((e for e in reversed(self.events) if e.get("event") == "stats"), None)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the server drains frames in flight), SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class VirtualChain:
    """A bundle running on virtual boards; use as a context manager."""

    def __init__(self, bundle: str | Path, result_address: tuple[str, int], log_dir: str | Path,
                 binary: Path | None = None, network: VirtualNetwork | None = None,
                 manifest: dict[str, Any] | None = None, key: bytes | None = None, backend: str = "emulate",
                 stats_interval_ms: int = 500) -> None:
        """Start one server per partition, last first, the last sending to `result_address`.

        With `network`, partition k runs in board k's namespace on its own address; else on loopback.
        `key`: the link key (a new one if not given; `self.key`). `backend`: emulate (bit-exact) or
        delay (each partition's predicted compute time per frame, `predicted_compute_us`, and its real
        boundary sizes on the wire).
        """
        if backend not in ("emulate", "delay"):
            raise VirtualBoardError(f"virtual boards run the emulate or the delay backend, not {backend!r}")
        self.backend, self.stats_interval_ms = backend, stats_interval_ms
        self.root = Path(bundle)
        self.network = network
        self.manifest = manifest if manifest is not None else load_manifest(self.root)
        self.binary = binary or server_binary()
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.key = key or new_key()
        self._key_dir = Path(tempfile.mkdtemp(prefix="finnsplit-link-"))  # 0700, removed by close()
        self.key_file = write_key(self._key_dir / "link.key", self.key)
        self.boards: list[VirtualBoard] = []
        next_hop = result_address
        try:
            for part in reversed(self.manifest["partitions"]):
                board = self._start(part, next_hop)
                self.boards.insert(0, board)
                next_hop = (self._host(part["index"]), board.port)
        except BaseException:
            self.close()
            raise

    def _host(self, index: int) -> str:
        return self.network.address(index) if self.network else "127.0.0.1"

    def _start(self, part: dict[str, Any], next_hop: tuple[str, int]) -> VirtualBoard:
        index = part["index"]
        name = f"vboard{index}"
        command = [str(self.binary), "serve", "--listen", f"{self._host(index)}:0",
                   "--next", f"{next_hop[0]}:{next_hop[1]}", "--name", name, "--backend", self.backend,
                   "--stats-interval-ms", str(self.stats_interval_ms), "--auth-key-file", str(self.key_file.resolve())]
        if self.backend == "emulate":
            command += ["--program", str((self.root / part["files"]["program"]["path"]).resolve())]
        else:
            command += ["--spec-in", part["input"]["wire"], "--spec-out", part["output"]["wire"],
                        "--delay-us", str(round(predicted_compute_us(part)))]
        if self.network:
            command = self.network.command(index, command)
        return VirtualBoard(name, command, self.log_dir / f"{name}.log")

    @property
    def last_stage(self) -> str:
        """The node name of the last board (the only one the result port accepts)."""
        return f"vboard{self.manifest['partitions'][-1]['index']}"

    @property
    def first_hop(self) -> tuple[str, int]:
        """Where the client sends its tensors."""
        return (self._host(0), self.boards[0].port)

    @property
    def input_spec(self) -> WireSpec:
        """The first board's input on the wire."""
        return WireSpec.parse(self.manifest["input"]["wire"])

    @property
    def output_spec(self) -> WireSpec:
        """The last board's output on the wire."""
        return WireSpec.parse(self.manifest["output"]["wire"])

    def close(self) -> None:
        """Stop every board, first to last, so each drains into a live downstream; forget the key."""
        for board in self.boards:
            board.stop()
        shutil.rmtree(self._key_dir, ignore_errors=True)

    def __enter__(self) -> VirtualChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def predicted_compute_us(part: dict[str, Any]) -> float:
    """A partition's predicted accelerator time per frame on one board: its slowest layer's cycles / clock."""
    predicted = part["predicted"]
    return float(predicted["cycles"]) / float(predicted["clock_mhz"])


def random_inputs(manifest: dict[str, Any], count: int, seed: int = 0) -> list:
    """Seeded stand-in user inputs: raw integer pixels (declared input) or floats in [-1, 1]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    host = manifest["host"]["input"]
    shape = manifest["host"]["model_input"]["shape"]
    if host["kind"] == "onnx":
        return [rng.uniform(-1, 1, size=shape).astype(np.float32) for _ in range(count)]
    dtype = datatype(host["dtype"])
    return [rng.integers(dtype.min, dtype.max, size=shape, endpoint=True) for _ in range(count)]


def infer_on_virtual_boards(bundle: str | Path, inputs: list, log_dir: str | Path,
                            network: VirtualNetwork | None = None,
                            manifest: dict[str, Any] | None = None) -> tuple[list, float]:
    """Run user `inputs` through the bundle on virtual boards; (last board's integer outputs, seconds).

    `manifest`: the bundle's, already read and verified (else it is read here).
    """
    from orchestrator.client import ChainClient
    from orchestrator.host import prepare_input

    manifest = manifest if manifest is not None else load_manifest(bundle)
    tensors = [prepare_input(manifest, bundle, raw) for raw in inputs]
    input_spec = WireSpec.parse(manifest["input"]["wire"])
    output_spec = WireSpec.parse(manifest["output"]["wire"])
    host = network.host_address if network else "127.0.0.1"
    key = new_key()
    last = f"vboard{manifest['partitions'][-1]['index']}"
    with (ChainClient(input_spec, output_spec, result_host=host, key=key, last_stage=last) as client,
          VirtualChain(bundle, client.result_address, log_dir, network=network, manifest=manifest, key=key) as chain):
        client.connect(chain.first_hop)
        client.infer(tensors[0])  # warm-up: connections and buffers
        start = time.perf_counter()
        outputs = client.infer_many(tensors)
        seconds = time.perf_counter() - start
    return outputs, seconds

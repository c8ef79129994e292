"""Fixtures and helpers for the C++ server tests: builds, server processes, small dataflow graphs.

Test modules import what they use (`from cpp_fixtures import server_bin, ServerProcess, ...`).
Every build is made once per session and reused; a second session only rebuilds what changed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from core import server as core_server
from core.datatypes import DataType, datatype
from core.packing import pack, packed_size, unpack
from splitter import program
from splitter.graph import DataflowGraph, Layer, TensorSpec

REPO = Path(__file__).resolve().parents[1]
CPP = REPO / "cpp_server"
QEMU = ("qemu-arm-static", "-L", "/usr/arm-linux-gnueabihf")
QEMU_AARCH64 = ("qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu")
BUILD_TIMEOUT = 900


def cmake_build(build_dir: Path, configure: Sequence[str], env: dict[str, str] | None = None) -> None:
    """Configure (first time only) and build `build_dir`; fails the test with the compiler's output."""
    full_env = {**os.environ, **(env or {})}
    steps = [["cmake", "--build", str(build_dir), "-j", "2"]]
    if not (build_dir / "CMakeCache.txt").exists():
        steps.insert(0, ["cmake", "-S", str(CPP), "-B", str(build_dir), *configure])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, env=full_env, timeout=BUILD_TIMEOUT, check=False)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(step)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (scripts/setup.sh installs it)")


@pytest.fixture(scope="session")
def server_bin() -> Path:
    """The native release build of finnsplit-server."""
    cmake_build(CPP / "build", ["-DCMAKE_BUILD_TYPE=Release"])
    return CPP / "build" / "finnsplit-server"


@pytest.fixture(scope="session")
def sanitizer_build() -> Path:
    """A clang build with AddressSanitizer + UBSan: the server and the libFuzzer frame_fuzzer."""
    _require("clang++")
    build = CPP / "build-asan"
    cmake_build(
        build,
        ["-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g",
         "-DFINNSPLIT_SANITIZE=ON", "-DFINNSPLIT_FUZZ=ON"],
        env={"CC": "clang", "CXX": "clang++"},
    )
    return build


@pytest.fixture(scope="session")
def armhf_bin() -> Path:
    """The Zedboard (Cortex-A9, armhf) cross build; run it with QEMU + args."""
    _require("arm-linux-gnueabihf-g++")
    _require("qemu-arm-static")
    build = CPP / "build-armhf"
    cmake_build(build, ["-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_TOOLCHAIN_FILE={CPP / 'cmake/armhf-toolchain.cmake'}"])
    return build / "finnsplit-server"


@pytest.fixture(scope="session")
def aarch64_bin() -> Path:
    """The Zynq UltraScale+ (Cortex-A53, arm64) cross build; run it with QEMU_AARCH64 + args."""
    _require("aarch64-linux-gnu-g++")
    _require("qemu-aarch64-static")
    build = CPP / "build-aarch64"
    toolchain = CPP / "cmake" / "aarch64-toolchain.cmake"
    cmake_build(build, ["-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_TOOLCHAIN_FILE={toolchain}"])
    return build / "finnsplit-server"


# ---- server processes ---------------------------------------------------------------------------


class ServerProcess(core_server.ServerProcess):
    """core.server.ServerProcess with a test's conveniences: the log in LOG_DIR/NAME.stderr, waiting for log text."""

    def __init__(self, command: Sequence[str], name: str, log_dir: Path, env: dict[str, str] | None = None):
        """Start the process and wait for its "listening" event."""
        super().__init__(name, command, log_dir / f"{name}.stderr", env=env)

    def wait_log(self, text: str, timeout: float = 10.0, count: int = 1) -> str:
        """Wait until stderr contains `text` (at least `count` times); returns the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if log.count(text) >= count:
                return log
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: {text!r} not logged within {timeout} s; log:\n{self.log()}")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (drain) and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._finish()
        return code


class ServerFleet:
    """Starts servers for one test and kills whatever is left at teardown."""

    def __init__(self, binary: Path, log_dir: Path, wrapper: Sequence[str] = (), env: dict[str, str] | None = None):
        """`wrapper` prefixes the command (e.g. QEMU); `env` is added to each server's environment."""
        self.binary = binary
        self.log_dir = log_dir
        self.wrapper = tuple(wrapper)
        self.env = env
        self.servers: list[ServerProcess] = []

    def start(self, name: str, next_hop: tuple[str, int], *args: str, stats_ms: int = 100,
              key: bytes | None = None, listen: str = "127.0.0.1:0") -> ServerProcess:
        """Start `finnsplit-server serve` listening on `listen` with `args` (backend flags); with `key`
        its links are authenticated (--auth-key-file)."""
        auth: list[str] = []
        if key is not None:
            from orchestrator.dataplane.link_auth import write_key

            auth = ["--auth-key-file", str(write_key(self.log_dir / f"{name}.key", key))]
        command = [*self.wrapper, str(self.binary), "serve", "--listen", listen,
                   "--next", f"{next_hop[0]}:{next_hop[1]}", "--name", name,
                   "--stats-interval-ms", str(stats_ms), "--connect-timeout-ms", "500", *auth, *args]
        server = ServerProcess(command, name, self.log_dir, self.env)
        self.servers.append(server)
        return server

    def close(self) -> None:
        """Kill every server still running."""
        for server in self.servers:
            server.kill()


@pytest.fixture
def fleet(server_bin: Path, tmp_path: Path):
    """Native-build servers for one test."""
    servers = ServerFleet(server_bin, tmp_path)
    yield servers
    servers.close()


# ---- graphs -------------------------------------------------------------------------------------


class GraphBuilder:
    """Builds a chain DataflowGraph layer by layer (tests only; the lowering builds real ones)."""

    def __init__(self, name: str, shape: tuple[int, ...], dtype: str):
        """Start from an integer input tensor."""
        self.name = name
        self.input = TensorSpec("x", tuple(shape), datatype(dtype))
        self.tensors = {"x": self.input}
        self.layers: list[Layer] = []

    @property
    def last(self) -> TensorSpec:
        """The tensor the last layer produced."""
        return self.tensors[self.layers[-1].output] if self.layers else self.input

    def add(self, op_type: str, out_shape: tuple[int, ...], out_dtype: str, params: dict[str, np.ndarray] | None = None,
            **attrs: object) -> GraphBuilder:
        """Append a layer reading the last tensor."""
        out = f"t{len(self.layers) + 1}"
        self.tensors[out] = TensorSpec(out, tuple(out_shape), datatype(out_dtype))
        self.layers.append(Layer(op_type, f"{op_type}_{len(self.layers)}", self.last.name, out,
                                 dict(attrs), dict(params or {})))
        return self

    def build(self) -> DataflowGraph:
        """The graph."""
        return DataflowGraph(self.name, self.input, self.layers, self.tensors)


def sorted_thresholds(rng: np.random.Generator, rows: int, steps: int, lo: int, hi: int) -> np.ndarray:
    """Random ascending thresholds, one row per channel."""
    return np.sort(rng.integers(lo, hi + 1, size=(rows, steps)), axis=1).astype(np.int64)


def random_input(graph: DataflowGraph, rng: np.random.Generator) -> np.ndarray:
    """A random frame of the graph's input spec."""
    dtype = graph.input.dtype
    if dtype.is_bipolar:
        return rng.choice(np.array([-1, 1]), size=graph.input.shape)
    return rng.integers(dtype.min, dtype.max, size=graph.input.shape, endpoint=True)


# ---- offline execution --------------------------------------------------------------------------


def run_program(binary: Path, graph: DataflowGraph, frames: Sequence[np.ndarray], work: Path,
                wrapper: Sequence[str] = (), env: dict[str, str] | None = None) -> list[np.ndarray]:
    """Write `graph` as a program and run it with `finnsplit-server run`; returns the output frames."""
    path = work / f"{graph.name}.fsprog"
    program.write(graph, path)
    (work / "in.bin").write_bytes(b"".join(pack(f, graph.input.dtype) for f in frames))
    done = subprocess.run(
        [*wrapper, str(binary), "run", "--program", str(path), "--input", str(work / "in.bin"),
         "--output", str(work / "out.bin")],
        capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}, check=False,
    )
    assert done.returncode == 0, f"run failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return split_frames((work / "out.bin").read_bytes(), graph.output.dtype, graph.output.shape)


def split_frames(data: bytes, dtype: DataType, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Cut concatenated dense frames apart and unpack them."""
    size = packed_size(int(np.prod(shape)), dtype)
    assert len(data) % size == 0
    return [unpack(data[i : i + size], dtype, shape) for i in range(0, len(data), size)]

"""Virtual boards: a bundle's partitions as local finnsplit-server processes (emulate or delay backend).

Each partition runs the same server binary a board runs, on loopback or in a network namespace of
its own (orchestrator/rigs/netns.py), chained partition k -> k+1 -> the client's result port; a
replicated partition runs on as many boards, fed round robin by the stage before it (or the
client) and merged by the stage after it (docs/protocol.md#fan-out-and-merge). Every link
authenticated with a key made for the run (orchestrator/dataplane/link_auth.py) as on real boards. Reads only
the bundle's manifest and files (docs/bundle.md).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from core.datatypes import datatype
from core.errors import FinnsplitError
from core.manifest import Manifest, Partition, load_manifest
from core.server import ServerProcess, server_binary
from orchestrator.control.fleet import fan_in_flags
from orchestrator.dataplane.link_auth import new_key, write_key
from orchestrator.dataplane.protocol import WireSpec
from orchestrator.rigs.netns import VirtualNetwork
from splitter.progress import ProgressBar, Watcher


class VirtualBoardError(FinnsplitError):
    """A virtual board could not be started or died."""


class VirtualBoard(ServerProcess):
    """One server process (core/server.py); `port` is where the previous hop connects."""


class VirtualChain:
    """A bundle running on virtual boards; use as a context manager."""

    def __init__(self, bundle: str | Path, result_address: tuple[str, int], log_dir: str | Path,
                 binary: Path | None = None, network: VirtualNetwork | None = None,
                 manifest: Manifest | None = None, key: bytes | None = None, backend: str = "emulate",
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
        self.names = board_names(self.manifest)
        self.stages: list[list[VirtualBoard]] = []  # per partition, its replicas
        next_hops = [result_address]
        try:
            slot = board_count(self.manifest)
            for k in reversed(range(len(self.manifest.partitions))):
                part = self.manifest.partitions[k]
                slot -= len(self.names[k])
                stage: list[VirtualBoard] = []
                self.stages.insert(0, stage)  # filled as its replicas start, so close() stops them all
                for r, name in enumerate(self.names[k]):
                    stage.append(self._start(part, name, slot + r, next_hops))
                next_hops = [(self._host(slot + r), b.port) for r, b in enumerate(stage)]
        except BaseException:
            self.close()
            raise
        self.boards: list[VirtualBoard] = [b for stage in self.stages for b in stage]

    def _host(self, slot: int) -> str:
        return self.network.address(slot) if self.network else "127.0.0.1"

    def _start(self, part: Partition, name: str, slot: int, next_hops: list[tuple[str, int]]) -> VirtualBoard:
        """Board `slot` (its namespace with a network) runs one replica of `part`, fanning out to `next_hops`."""
        index = part.index
        command = [str(self.binary), "serve", "--listen", f"{self._host(slot)}:0",
                   "--next", ",".join(f"{h}:{p}" for h, p in next_hops), "--name", name, "--backend", self.backend,
                   "--stats-interval-ms", str(self.stats_interval_ms), "--auth-key-file", str(self.key_file.resolve())]
        command += fan_in_flags(self.manifest, index)
        if self.backend == "emulate":
            command += ["--program", str((self.root / part.files["program"].path).resolve())]
        else:
            command += ["--spec-in", part.input.wire, "--spec-out", part.output.wire,
                        "--delay-us", str(round(predicted_compute_us(part)))]
        if self.network:
            command = self.network.command(slot, command)
        return VirtualBoard(name, command, self.log_dir / f"{name}.log")

    @property
    def last_stage(self) -> str | tuple[str, ...]:
        """The node name of the last board, or of each replica of a replicated last stage (the only
        senders the result port accepts)."""
        return last_stage_nodes(self.manifest)

    @property
    def first_hop(self) -> tuple[str, int] | list[tuple[str, int]]:
        """Where the client sends its tensors: the first board, or every replica of a replicated first stage."""
        hops = [(self._host(r), b.port) for r, b in enumerate(self.stages[0])]
        return hops[0] if len(hops) == 1 else hops

    @property
    def input_spec(self) -> WireSpec:
        """The first board's input on the wire."""
        return WireSpec.parse(self.manifest.input.wire)

    @property
    def output_spec(self) -> WireSpec:
        """The last board's output on the wire."""
        return WireSpec.parse(self.manifest.output.wire)

    def close(self) -> None:
        """Stop every board, first to last, so each drains into a live downstream; forget the key."""
        for stage in self.stages:
            for board in stage:
                board.stop()
        shutil.rmtree(self._key_dir, ignore_errors=True)

    def __enter__(self) -> VirtualChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def board_names(manifest: Manifest) -> list[list[str]]:
    """Per partition, its virtual boards' node names: vboardK, or vboardK.R for replica R of a replicated one."""
    names = []
    for part in manifest.partitions:
        k, replicas = part.index, part.replicas
        names.append([f"vboard{k}"] if replicas == 1 else [f"vboard{k}.{r}" for r in range(replicas)])
    return names


def board_count(manifest: Manifest) -> int:
    """Virtual boards (network namespaces) a bundle needs: every partition's replicas."""
    return manifest.boards


def last_stage_nodes(manifest: Manifest) -> str | tuple[str, ...]:
    """The node(s) the result port accepts: the last partition's board, or its replicas."""
    names = board_names(manifest)[-1]
    return names[0] if len(names) == 1 else tuple(names)


def is_replicated(manifest: Manifest) -> bool:
    """True if any partition runs on several boards (results then arrive interleaved)."""
    return any(p.replicas > 1 for p in manifest.partitions)


def predicted_compute_us(part: Partition) -> float:
    """A partition's predicted accelerator time per frame on one board: its slowest layer's cycles / clock."""
    predicted = part.predicted
    return float(predicted["cycles"]) / float(predicted["clock_mhz"])


def random_inputs(manifest: Manifest, count: int, seed: int = 0) -> list:
    """Seeded stand-in user inputs: raw integer pixels (declared input) or floats in [-1, 1]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    host = manifest.host.input
    shape = manifest.host.model_input.shape
    if host.kind == "onnx":
        return [rng.uniform(-1, 1, size=shape).astype(np.float32) for _ in range(count)]
    dtype = datatype(host.dtype)
    return [rng.integers(dtype.min, dtype.max, size=shape, endpoint=True) for _ in range(count)]


def infer_on_virtual_boards(bundle: str | Path, inputs: list, log_dir: str | Path,
                            network: VirtualNetwork | None = None,
                            manifest: Manifest | None = None) -> tuple[list, float]:
    """Run user `inputs` through the bundle on virtual boards; (last board's integer outputs, seconds).

    `manifest`: the bundle's, already read and verified (else it is read here).
    """
    from orchestrator.dataplane.bundle_io import prepare_input
    from orchestrator.dataplane.client import ChainClient

    manifest = manifest if manifest is not None else load_manifest(bundle)
    tensors = [prepare_input(manifest, bundle, raw) for raw in inputs]
    input_spec = WireSpec.parse(manifest.input.wire)
    output_spec = WireSpec.parse(manifest.output.wire)
    host = network.host_address if network else "127.0.0.1"
    key = new_key()
    with (ChainClient(input_spec, output_spec, result_host=host, key=key, last_stage=last_stage_nodes(manifest),
                      ordered=not is_replicated(manifest)) as client,
          VirtualChain(bundle, client.result_address, log_dir, network=network, manifest=manifest, key=key) as chain):
        client.connect(chain.first_hop)
        client.infer(tensors[0])  # warm-up: connections and buffers
        start = time.perf_counter()
        watcher = Watcher(ProgressBar("streaming", len(tensors)), lambda: client.delivered - 1)
        try:
            outputs = client.infer_many(tensors)
            seconds = time.perf_counter() - start
        finally:
            watcher.stop()
    return outputs, seconds

"""Where `finnsplit bench` runs a bundle: virtual boards chained directly, or a fleet kept by the orchestrator.

Both stream the same frames and read the boards' own stats through orchestrator/bench/measure.py: the
virtual chain from each server's stdout, a fleet from the stats lines its agents forward over MQTT.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.manifest import Manifest
from orchestrator.bench.measure import BenchError, BenchResult, measure, result, stream_windowed
from orchestrator.dataplane.bundle_io import prepare_input
from orchestrator.dataplane.client import ChainClient
from orchestrator.dataplane.link_auth import new_key
from orchestrator.dataplane.protocol import WireSpec, encode_tensor
from orchestrator.rigs.netns import VirtualNetwork
from orchestrator.rigs.virtual import VirtualChain, is_replicated, last_stage_nodes, predicted_compute_us, random_inputs

Log = Callable[[str], None]
DISTINCT_INPUTS = 16  # frames cycle through this many prepared inputs


def inputs(manifest: Manifest, bundle: str | Path, count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` prepared first-board tensors, cycling through a few seeded random inputs."""
    raws = random_inputs(manifest, min(count, DISTINCT_INPUTS), seed)
    tensors = [prepare_input(manifest, bundle, raw) for raw in raws]
    return [tensors[i % len(tensors)] for i in range(count)]


def use_realtime(priority: int = 10) -> None:
    """Run this thread, the threads it starts and the virtual boards it starts at SCHED_FIFO `priority` (root).

    Virtual boards share this machine's cores with whatever else runs on it; a real board has its
    own. At real-time priority a server's thread runs as soon as it is ready, as it would on its
    board, instead of queueing behind other work (docs/bench.md#virtual-boards-and-the-cpu).
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError:
        raise BenchError("--realtime needs root (SCHED_FIFO scheduling)") from None


def delay_args(manifest: Manifest) -> dict[int, tuple[str, ...]]:
    """The delay backend's --delay-us per partition: its predicted compute time per frame."""
    return {p.index: ("--delay-us", str(round(predicted_compute_us(p)))) for p in manifest.partitions}


def bench_virtual(bundle: str | Path, manifest: Manifest, frames: int, window: int, latency_frames: int,
                  warmup: int, backend: str, log_dir: str | Path, network: VirtualNetwork | None = None,
                  link_mbit: float | None = None, log: Log = lambda _m: None) -> BenchResult:
    """Benchmark the bundle on virtual boards (one server per partition) on loopback or in `network`."""
    spec_in = WireSpec.parse(manifest.input.wire)
    payloads = [encode_tensor(t, spec_in) for t in inputs(manifest, bundle, max(frames, warmup))]
    key = new_key()
    host = network.host_address if network else "127.0.0.1"
    with (ChainClient(spec_in, WireSpec.parse(manifest.output.wire), result_host=host, key=key,
                      last_stage=last_stage_nodes(manifest), ordered=not is_replicated(manifest)) as client,
          VirtualChain(bundle, client.result_address, log_dir, network=network, manifest=manifest, key=key,
                       backend=backend, stats_interval_ms=200) as chain):
        client.connect(chain.first_hop)
        log(f"{len(chain.boards)} virtual boards ({backend} backend) up; warm-up of {warmup} frames")
        stream_windowed(client, payloads[:warmup], window)
        log(f"latency: {latency_frames} frames one at a time")
        lat_sent, lat_received = stream_windowed(client, payloads[:latency_frames], 1)

        def source() -> dict[str, tuple[int, dict[str, Any]]]:
            return {b.name: (part.index, b.last_stats() or {})
                    for part, stage in zip(manifest.partitions, chain.stages, strict=True) for b in stage}

        log(f"throughput: {frames} frames, at most {window} in flight")
        sent, received, boards = measure(lambda: stream_windowed(client, payloads[:frames], window), source, frames)
    where = f"in network namespaces, links {link_mbit:g} Mbit/s" if network and link_mbit else (
        "in network namespaces" if network else "on loopback")
    setup = f"{len(chain.boards)} virtual boards ({backend} backend) {where}"
    return result(str(bundle), setup, manifest, window, sent, received, boards, lat_sent, lat_received)


def bench_session(session: Any, bundle: str | Path, manifest: Manifest, frames: int, window: int,
                  latency_frames: int, warmup: int, setup: str, log: Log = lambda _m: None) -> BenchResult:
    """Benchmark the pipeline a running FleetSession (orchestrator/control/session.py) keeps up."""
    tensors = inputs(manifest, bundle, max(frames, warmup))
    client = session.client

    def stream(count: int, in_flight: int) -> tuple[list[float], list[float]]:
        client.window = in_flight
        client.infer_many(tensors[:count], timeout_s=600)
        return [client.sent_at[i] for i in range(count)], [client.arrived_at[i] for i in range(count)]

    def source() -> dict[str, tuple[int, dict[str, Any]]]:
        orch = session.orch
        return {orch.assignment[s.key]: (s.partition, dict(orch.link.board(orch.assignment[s.key]).stats))
                for s in orch.target.stages if s.key in orch.assignment}

    log(f"warm-up of {warmup} frames")
    stream(warmup, window)
    log(f"latency: {latency_frames} frames one at a time")
    lat_sent, lat_received = stream(latency_frames, 1)
    log(f"throughput: {frames} frames, at most {window} in flight")
    sent, received, boards = measure(lambda: stream(frames, window), source, frames)
    if client.resent:
        log(f"{client.resent} frames were resent (a board failed or was slow): the figures include that")
    return result(str(bundle), setup, manifest, window, sent, received, boards, lat_sent, lat_received)


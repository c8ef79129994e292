"""Benchmarks a running pipeline: throughput, latency percentiles and every board's own time per frame.

The client stamps each frame when it is sent and when its result arrives; the boards report their
own stage times (docs/protocol.md, the stats line: `stage_total_ms` of recv, recv_wait, compute,
send and the frame counters). A fresh stats line before and after the measured frames gives each
board's mean time per frame over exactly those frames. Beside them stands the plan's prediction for
every stage, read from the bundle's manifest (docs/bundle.md#manifest). Used by `finnsplit bench`
(cli/bench.py) and benchmarks/e2e.py; the report is orchestrator/bench/report.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.errors import FinnsplitError
from core.manifest import Manifest
from orchestrator.dataplane.client import ChainClient
from orchestrator.dataplane.protocol import ProtocolError
from splitter.boards import BoardError, load_board

STAGES = ("recv", "recv_wait", "compute", "send")
# which frame counter each stage's total is divided by
COUNTERS = {"recv": "in", "recv_wait": "in", "compute": "computed", "send": "out"}

StatsSource = Callable[[], dict[str, tuple[int, dict[str, Any]]]]  # node -> (stage, its latest stats line)


class BenchError(FinnsplitError):
    """A benchmark could not measure: no results, or boards that report no statistics."""


@dataclass(frozen=True)
class BoardTimes:
    """One board's mean time per frame in each stage of its server over the measured frames (µs)."""

    stage: int
    node: str
    frames: int  # frames this board computed in the measured window
    recv_us: float  # header to verified payload: the transfer in
    recv_wait_us: float  # waiting for a free input buffer (backpressure from compute)
    compute_us: float  # the accelerator
    send_us: float  # writing downstream, its backpressure included

    @property
    def wait_us(self) -> float:
        """Receiving and waiting for a buffer: the paper's "waiting/receiving new data"."""
        return self.recv_us + self.recv_wait_us


@dataclass(frozen=True)
class Prediction:
    """The plan's figures for one stage; times are per frame on one of its boards (µs)."""

    stage: int
    board: str
    replicas: int
    fps: float  # the stage's predicted rate (all replicas)
    compute_us: float  # slowest layer's cycles / clock
    recv_us: float  # bytes in / the board's link rate
    send_us: float  # bytes out / the board's link rate
    bytes_in: int
    bytes_out: int
    bottleneck: str
    utilization_pct: dict[str, float]
    power_w: float


@dataclass
class BenchResult:
    """What one benchmark run measured, beside what the plan predicted."""

    bundle: str
    setup: str  # where it ran, e.g. "6 virtual boards (delay backend), links 1000 Mbit/s"
    frames: int
    window: int  # frames in flight at most
    fps: float  # steady state: results after the first, over the time since the first
    seconds: float  # first send to last result
    latency_ms: dict[str, float]  # p50, p90, p99, mean, min, max: send to result, one frame in flight
    loaded_latency_ms: dict[str, float]  # the same during the throughput run (`window` in flight: queueing)
    predicted_fps: float
    limited_by: str
    boards: list[BoardTimes] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Measured over predicted throughput."""
        return self.fps / self.predicted_fps if self.predicted_fps else 0.0

    @property
    def predicted_latency_ms(self) -> float:
        """One frame alone through the chain, store and forward: every board's transfer in and compute,
        and the last board's transfer out."""
        if not self.predictions:
            return 0.0
        return (sum(p.recv_us + p.compute_us for p in self.predictions) + self.predictions[-1].send_us) / 1000.0

    def to_json(self) -> dict[str, Any]:
        """Everything, as plain data (bench.json; docs/bench.md)."""
        data = asdict(self)
        data["ratio"] = self.ratio
        data["predicted_latency_ms"] = self.predicted_latency_ms
        for board in data["boards"]:
            board["wait_us"] = board["recv_us"] + board["recv_wait_us"]
        return data


def predictions(manifest: Manifest) -> list[Prediction]:
    """The plan's prediction for every stage of the bundle, from its manifest and board files."""
    out = []
    for part in manifest.partitions:
        predicted = part.predicted
        try:
            rate = load_board(part.board).link_bytes_per_s
        except BoardError:
            # a board file that is not installed here: the link rate the plan used, from its link bound
            rate = float(predicted["link_fps"]) * max(int(predicted["bytes_in"]), int(predicted["bytes_out"]), 1)
        out.append(Prediction(
            part.index, part.board, part.replicas, float(predicted["fps"]),
            float(predicted["cycles"]) / float(predicted["clock_mhz"]),
            1e6 * int(predicted["bytes_in"]) / rate, 1e6 * int(predicted["bytes_out"]) / rate,
            int(predicted["bytes_in"]), int(predicted["bytes_out"]), str(predicted["bottleneck"]),
            {k: float(v) for k, v in predicted["utilization_pct"].items()}, float(predicted["power_w"])))
    return out


def percentiles(values_ms: list[float]) -> dict[str, float]:
    """p50, p90, p99, mean, min and max of per-frame latencies."""
    if not values_ms:
        raise BenchError("no frame came back: nothing to measure")
    array = np.asarray(values_ms)
    p50, p90, p99 = np.percentile(array, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(array.mean()),
            "min": float(array.min()), "max": float(array.max())}


def steady_fps(received: list[float]) -> float:
    """Results per second after the first one: the pipeline's rate without its fill time."""
    first, last = min(received, default=0.0), max(received, default=0.0)
    if len(received) < 2 or last <= first:
        raise BenchError("at least two results are needed to measure a rate")
    return (len(received) - 1) / (last - first)


def stream_windowed(client: ChainClient, payloads: list[bytes], window: int) -> tuple[list[float], list[float]]:
    """Send packed frames with at most `window` in flight; (send times, result times), in frame order.

    A replicated first stage gets the frames round robin; results of a replicated stage may come
    back interleaved and are matched to their frames by sequence number.
    """
    if not client.senders:
        raise ProtocolError("ChainClient.connect() first")
    slots = threading.Semaphore(window)
    sent: list[float] = [0.0] * len(payloads)
    frame_of: dict[int, int] = {}
    failure: list[BaseException] = []

    def send_all() -> None:
        try:
            for i, payload in enumerate(payloads):
                slots.acquire()
                sent[i] = time.perf_counter()
                frame_of[client.send_packed(payload)] = i
        except BaseException as exc:  # reported in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=send_all, daemon=True)
    thread.start()
    arrivals: list[tuple[int, float]] = []
    order: list[int] = []
    try:
        for _ in payloads:
            seq, _payload = client.receiver.receive_packed()
            arrivals.append((seq, time.perf_counter()))
            slots.release()
    finally:
        thread.join(timeout=30)
    if failure:
        raise failure[0]
    received: list[float] = [0.0] * len(payloads)
    for seq, when in arrivals:
        frame = frame_of.get(seq)
        if frame is None:
            raise ProtocolError(f"a result with sequence number {seq} matches no frame sent")
        order.append(frame)
        received[frame] = when
    if sorted(order) != list(range(len(payloads))):
        raise ProtocolError(f"results do not match the frames sent: {len(set(order))} of {len(payloads)} frames")
    if client.ordered and order != sorted(order):
        raise ProtocolError(f"results arrived out of order: {order[:10]} ...")
    return sent, received


def fresh_stats(source: StatsSource, after: dict[str, float], timeout_s: float = 10.0
                ) -> dict[str, tuple[int, dict[str, Any]]]:
    """Every board's first stats line newer (by its uptime) than `after[node]`."""
    deadline = time.monotonic() + timeout_s
    while True:
        snapshot = source()
        stale = [node for node, (_, stats) in snapshot.items()
                 if not stats or float(stats.get("uptime_s", 0.0)) <= after.get(node, -1.0)]
        if not stale:
            return snapshot
        if time.monotonic() > deadline:
            raise BenchError(f"no statistics from {', '.join(sorted(stale))} within {timeout_s:g} s "
                             "(the server prints them every --stats-interval-ms)")
        time.sleep(0.02)


def uptimes(snapshot: dict[str, tuple[int, dict[str, Any]]]) -> dict[str, float]:
    """Each board's stats uptime in a snapshot."""
    return {node: float(stats.get("uptime_s", 0.0)) for node, (_, stats) in snapshot.items()}


def board_times(before: dict[str, tuple[int, dict[str, Any]]], after: dict[str, tuple[int, dict[str, Any]]]
                ) -> list[BoardTimes]:
    """Mean time per frame in each stage of every board between two stats snapshots."""
    out = []
    for node, (stage, stats) in sorted(after.items(), key=lambda item: (item[1][0], item[0])):
        old = before.get(node, (stage, {}))[1]
        means = {}
        for name in STAGES:
            frames = _delta(stats, old, "frames", COUNTERS[name])
            total_ms = _delta(stats, old, "stage_total_ms", name)
            means[name] = 1000.0 * total_ms / frames if frames > 0 else 0.0
        out.append(BoardTimes(stage, node, int(_delta(stats, old, "frames", "computed")), means["recv"],
                              means["recv_wait"], means["compute"], means["send"]))
    return out


def _delta(new: dict[str, Any], old: dict[str, Any], section: str, key: str) -> float:
    return float(new.get(section, {}).get(key, 0.0)) - float(old.get(section, {}).get(key, 0.0))


def measure(stream: Callable[[], tuple[list[float], list[float]]], source: StatsSource, frames: int,
            timeout_s: float = 10.0) -> tuple[list[float], list[float], list[BoardTimes]]:
    """Run `stream` (after a warm-up) between two fresh stats snapshots; (sent, received, per board).

    The snapshot after waits until every measured frame has left every board, so each board's
    figures cover exactly the measured frames (checked by the frame counters).
    """
    before = fresh_stats(source, {}, timeout_s)
    before = fresh_stats(source, uptimes(before), timeout_s)  # a line written after the warm-up's results
    sent, received = stream()
    after = fresh_stats(source, uptimes(source()), timeout_s)
    deadline = time.monotonic() + timeout_s
    while not _complete(before, after, frames):
        if time.monotonic() > deadline:
            raise BenchError("the boards' frame counters do not add up to the frames sent: "
                             + ", ".join(f"{node}: {int(_delta(s, before.get(node, (0, {}))[1], 'frames', 'out'))}"
                                         for node, (_, s) in sorted(after.items())))
        after = fresh_stats(source, uptimes(after), timeout_s)
    return sent, received, board_times(before, after)


def _complete(before: dict[str, tuple[int, dict[str, Any]]], after: dict[str, tuple[int, dict[str, Any]]],
              frames: int) -> bool:
    """Every stage's boards together sent at least `frames` frames between the snapshots."""
    per_stage: dict[int, float] = {}
    for node, (stage, stats) in after.items():
        per_stage[stage] = per_stage.get(stage, 0.0) + _delta(stats, before.get(node, (stage, {}))[1], "frames", "out")
    return all(count >= frames for count in per_stage.values())


def latencies_ms(sent: list[float], received: list[float]) -> list[float]:
    """Send to result of every frame, in ms."""
    return [1000.0 * (r - s) for s, r in zip(sent, received, strict=True)]


def result(bundle: str, setup: str, manifest: Manifest, window: int, sent: list[float],
           received: list[float], boards: list[BoardTimes], lat_sent: list[float],
           lat_received: list[float]) -> BenchResult:
    """Assemble the figures of one run: the throughput run and the one-frame-at-a-time latency run."""
    return BenchResult(bundle, setup, len(received), window, steady_fps(received), max(received) - min(sent),
                       percentiles(latencies_ms(lat_sent, lat_received)),
                       percentiles(latencies_ms(sent, received)), float(manifest.plan.fps),
                       str(manifest.plan.limited_by), boards, predictions(manifest))

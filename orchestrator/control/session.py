"""`finnsplit run` and `finnsplit daemon`: a bundle deployed on a fleet, kept running, fed with inputs.

The orchestrator's reconcile loop runs in a background thread with its own event loop; the
resilient client streams from the calling thread and follows the orchestrator's first hop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import FinnsplitError
from core.manifest import Manifest, load_manifest
from orchestrator.control.daemon import DaemonConfig, Orchestrator
from orchestrator.control.fleet import Fleet
from orchestrator.dataplane.link_auth import new_key
from orchestrator.dataplane.pipeline_client import ResilientClient
from orchestrator.dataplane.protocol import WireSpec

Log = Callable[[str], None]


@dataclass
class RunReport:
    """What a streaming run measured."""

    outputs: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0
    resent: int = 0
    stages: dict[int, str] = field(default_factory=dict)
    killed: str | None = None


class FleetSession:
    """An orchestrator running in a background thread, and a client for the pipeline it keeps up."""

    def __init__(self, fleet: Fleet, bundle: str | Path, cfg: DaemonConfig, log: Log,
                 manifest: Manifest | None = None) -> None:
        """Start the result port and the orchestrator; `wait_running` before streaming."""
        manifest = manifest if manifest is not None else load_manifest(bundle)
        self.log = log
        key = new_key()  # this deployment's data-plane key: the boards get it with their run commands
        self.client = ResilientClient(WireSpec.parse(manifest.input.wire),
                                      WireSpec.parse(manifest.output.wire), self._first_hop,
                                      result_host=fleet.client_host, deadline_s=3.0, window=8,
                                      rewired=lambda: self.orch.generation, key=key,
                                      last_stage=lambda: self.orch.last_stage())
        self.orch = Orchestrator(fleet, bundle, self.client.result_address, cfg, log, manifest, link_key=key)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _first_hop(self) -> tuple[str, int] | None:
        return self.orch.first_hop()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        try:
            self._loop.run_until_complete(self.orch.run(self._stop))
        except Exception as exc:  # reported to the user by wait_running / the caller
            self.error = exc
            self.log(f"orchestrator stopped: {exc}")

    def wait_running(self, timeout_s: float = 180.0) -> dict[int, str]:
        """Block until the pipeline runs end to end; returns stage -> board."""
        deadline = time.monotonic() + timeout_s
        while self.orch.state != "running":
            if self.error is not None:
                raise self.error
            if time.monotonic() > deadline:
                raise FinnsplitError(f"pipeline not running after {timeout_s:g} s (state {self.orch.state})")
            time.sleep(0.1)
        return dict(self.orch.assignment)

    def stream(self, tensors: list[np.ndarray], kill: Callable[[str], None] | None = None,
               kill_after: int | None = None) -> RunReport:
        """Send `tensors`; with `kill`, make the board of stage 1 (or 0) die after `kill_after` results
        (stages count boards: with a replicated first partition, stage 1 is its second replica)."""
        report = RunReport(stages=dict(self.orch.assignment))
        killer = None
        if kill is not None and kill_after is not None:
            def kill_one() -> None:
                while self.client.delivered < kill_after:
                    time.sleep(0.01)
                stage = 1 if 1 in self.orch.assignment else 0
                report.killed = self.orch.assignment[stage]
                self.log(f"killing {report.killed} (partition {self.orch.label(stage)}) after "
                         f"{self.client.delivered} results")
                kill(report.killed)
            killer = threading.Thread(target=kill_one, daemon=True)
            killer.start()
        began = time.perf_counter()
        report.outputs = self.client.infer_many(tensors, timeout_s=600)
        report.seconds = time.perf_counter() - began
        report.resent = self.client.resent
        report.stages = dict(self.orch.assignment)
        if killer is not None:
            killer.join(timeout=5)
        return report

    def close(self) -> None:
        """Stop the orchestrator loop (boards keep running what they run) and the client."""
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
        self.client.close()

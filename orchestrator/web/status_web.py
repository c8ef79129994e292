"""`finnsplit status --web HOST:PORT`: the live dashboard from the broker alone, beside any daemon.

The same page and sampler as the daemon's (docs/dashboard.md), fed by a read-only view of the
chain: the agents' status, heartbeats and stats, and the pipeline the daemon publishes retained on
`finnsplit/<chain>/pipeline` (docs/control-plane.md). It needs the orchestrator's broker identity
(the fleet file) to read the chain, and it commands nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from core.messages import PipelineStage
from orchestrator.control.fleet import Fleet
from orchestrator.control.fleet_link import FleetLink
from orchestrator.web.dashboard import DashboardState
from orchestrator.web.dashboard_page import PAGE
from orchestrator.web.server import Response, Route, WebServer, is_loopback, json_response, parse_address

Log = Callable[[str], None]


@dataclass(frozen=True)
class _Timeouts:
    heartbeat_timeout_s: float = 5.0  # the daemon's default (orchestrator/control/daemon.py DaemonConfig)


class BrokerView:
    """What the dashboard reads of an orchestrator, from the retained pipeline message instead."""

    def __init__(self, fleet: Fleet, link: FleetLink) -> None:
        """`link` runs elsewhere (its own thread's loop); this only reads it."""
        self.fleet, self.link, self.cfg = fleet, link, _Timeouts()

    def _stages(self) -> tuple[PipelineStage, ...]:
        return () if self.link.pipeline is None else self.link.pipeline.stages

    @property
    def state(self) -> str:
        """The daemon's last published state ("no daemon" before any)."""
        if not self.link.connected.is_set():
            return "no broker"
        return "no daemon" if self.link.pipeline is None else self.link.pipeline.state

    @property
    def bundle(self) -> str | None:
        """The bundle the daemon runs."""
        return None if self.link.pipeline is None else self.link.pipeline.bundle

    generation = 0

    @property
    def assignment(self) -> dict[int, str]:
        """Stage (its position in the published list) -> board."""
        return {k: s.board for k, s in enumerate(self._stages())}

    def replicas(self, key: int) -> int:
        """How many boards run stage `key`'s partition."""
        stages = self._stages()
        return sum(1 for s in stages if s.partition == stages[key].partition) if key < len(stages) else 1

    def label(self, key: int) -> str:
        """"K", or "K.R" for replica R of a replicated partition K."""
        stages = self._stages()
        if key >= len(stages):
            return str(key)
        partition, replica = stages[key].partition, stages[key].replica
        return str(partition) if self.replicas(key) == 1 else f"{partition}.{replica}"

    def first_hop(self) -> tuple[str, int] | None:
        """The published first hop."""
        first = None if self.link.pipeline is None else self.link.pipeline.first
        host, _, port = (first or "").rpartition(":")
        return (host, int(port)) if host and port.isdigit() else None


def serve_status(fleet: Fleet, address: str, say: Log, done: threading.Event) -> None:
    """Serve the dashboard of `fleet` on `address` until `done` is set."""
    host, port = parse_address(address)
    link = FleetLink(fleet.broker, fleet.chain, client_id="finnsplit-status", boards=[b.name for b in fleet.boards])
    loop = asyncio.new_event_loop()
    task = loop.create_task(link.run())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    state = DashboardState(BrokerView(fleet, link))  # type: ignore[arg-type]  (reads like an Orchestrator)
    sampler = threading.Thread(target=state.run, args=(done,), daemon=True)
    sampler.start()
    routes = {("GET", "/"): Route(lambda _r: Response(200, PAGE.encode(), "text/html; charset=utf-8")),
              ("GET", "/api/state"): Route(lambda _r: json_response(state.snapshot()))}
    server = WebServer((host, port), routes)
    say(f"dashboard of chain {fleet.chain} at {server.url}" + ("" if is_loopback(host) else
        " (read-only, unauthenticated: reachable by anyone on this network)"))
    try:
        done.wait()
    finally:
        server.close()
        sampler.join(timeout=5)
        loop.call_soon_threadsafe(task.cancel)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0.1), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)

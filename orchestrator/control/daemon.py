"""The orchestrator daemon: keep a bundle's pipeline deployed, running and wired across a fleet.

A reconcile loop (docs/control-plane.md): observe the agents over MQTT (orchestrator/control/fleet_link.py),
plan with the pure planner (orchestrator/control/reconcile.py), execute the steps through a table of
executors (SSH uploads in a thread, MQTT commands), repeat. A board that stops heartbeating is
lost: its stage moves to a spare of the same type, upstream is re-pointed, and the client
(orchestrator/dataplane/pipeline_client.py) follows `first_hop()` and resends what was lost. A replicated
partition is one stage per replica board: each fails over on its own, and the stage before it
fans out to all of them (docs/protocol.md#fan-out-and-merge).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import messages
from core.manifest import Manifest, load_manifest
from orchestrator.control.fleet import Fleet, assign, fan_in_flags
from orchestrator.control.fleet_link import CommandError, FleetLink
from orchestrator.control.reconcile import (
    BoardView,
    Decision,
    Degraded,
    Deploy,
    Prestage,
    Run,
    Step,
    Stop,
    plan_steps,
    target_of,
)
from orchestrator.dataplane.link_auth import new_key
from orchestrator.deployment.deploy import UploadMeter, UploadReport, bundle_id, deploy
from orchestrator.deployment.ssh import DeployError

Log = Callable[[str], None]


@dataclass(frozen=True)
class DaemonConfig:
    """Knobs of the reconcile loop."""

    backend: str = "emulate"  # the boards' accelerator backend: emulate (virtual boards) or finn-zynq
    heartbeat_timeout_s: float = 5.0  # a board silent this long is lost
    tick_s: float = 0.5  # re-plan at least this often
    command_timeout_s: float = 60.0
    max_failures: int = 3  # failed deploys/runs before the orchestrator stops using a board
    replace_drain_s: float = 0.5  # how long a board's replaced server may drain before it is killed
    # extra finnsplit-server flags per partition, e.g. the delay backend's --delay-us (board_agent/server_args.py)
    server_args: dict[int, tuple[str, ...]] = field(default_factory=dict)


class Orchestrator:
    """Reconciles one bundle onto one fleet; `run()` forever, or `until_running()` once."""

    def __init__(self, fleet: Fleet, bundle_dir: str | Path, result_address: tuple[str, int],
                 cfg: DaemonConfig | None = None, log: Log = print, manifest: Manifest | None = None,
                 link_key: bytes | None = None) -> None:
        """Prepare the target from the bundle's manifest (`manifest` if the caller verified it, else read here).

        `link_key`: the deployment's data-plane key, handed to every board with its run command (a
        new one if not given); the client's result port must use the same.
        """
        self.fleet, self.bundle_dir, self.cfg, self.log = fleet, Path(bundle_dir), cfg or DaemonConfig(), log
        self.link_key = link_key or new_key()
        self.manifest = manifest if manifest is not None else load_manifest(self.bundle_dir)
        self.bundle = bundle_id(self.bundle_dir)
        self.target = target_of(self.bundle, self.manifest.partitions, f"{result_address[0]}:{result_address[1]}")
        fleet.broker.client_options()  # credentials and TLS are set and readable (BrokerAuthError), or say so now
        self.link = FleetLink(fleet.broker, fleet.chain, on_change=lambda _: self._wake(),
                              boards=[b.name for b in fleet.boards])
        # The fleet must hold the plan (AssignmentError otherwise, before anything is uploaded); its
        # placement (partitions in order, replicas side by side, as target.stages) is the planner's start.
        self.assignment: dict[int, str] = {
            stage.key: entry.name
            for stage, (_, entry) in zip(self.target.stages, assign(fleet, self.manifest).placements, strict=True)}
        self.deployed: dict[str, set[tuple[str, int]]] = {b.name: set() for b in fleet.boards}
        self.next_hops: dict[str, tuple[str, int, str]] = {}  # board -> (bundle, partition, next) it was told
        self.failures: dict[str, int] = {}
        self.state = "starting"
        self.generation = 0  # completed Run steps: a client resends what was in flight when it changes
        self._changed = asyncio.Event()
        self._degraded_said: set[tuple[int, bool]] = set()  # (partition, waiting) already told
        self._published: messages.Pipeline | None = None
        self.executors: dict[type, Callable[[Any], Any]] = {Deploy: self._deploy, Prestage: self._prestage,
                                                            Run: self._run, Stop: self._stop, Degraded: self._degraded}
        self._prestaging: asyncio.Task | None = None
        self.uploads = UploadMeter()  # deployments' bytes on a progress bar (on a terminal only)

    def _wake(self) -> None:
        self._changed.set()

    # ---- observation ----------------------------------------------------------------------------
    def views(self) -> dict[str, BoardView]:
        """What the planner sees of every board now."""
        now, views = time.monotonic(), {}
        for entry in self.fleet.boards:
            seen = self.link.board(entry.name)
            status = seen.last_status or messages.LOST
            alive = seen.alive(now, self.cfg.heartbeat_timeout_s)
            told = self.next_hops.get(entry.name)
            running = (status.state, status.bundle, status.partition)
            next_hop = told[2] if told and running == ("running", told[0], told[1]) else None
            views[entry.name] = BoardView(
                entry.name, entry.type, f"{entry.address}:{entry.data_port}", alive=alive,
                state=(status.state or "lost") if alive else "lost", bundle=status.bundle,
                partition=status.partition, next_hop=next_hop,
                deployed=frozenset(self.deployed[entry.name]),
                failed=self.failures.get(entry.name, 0) >= self.cfg.max_failures, heard=seen.last_seen > 0)
        return views

    def last_stage(self) -> str | tuple[str, ...] | None:
        """The board running the chain's last stage now, or the boards of its replicas (the only
        senders the result port accepts)."""
        names = tuple(self.assignment[s.key] for s in self.target.partitions()[-1] if s.key in self.assignment)
        return None if not names else names[0] if len(names) == 1 else names

    def first_hop(self) -> tuple[str, int] | list[tuple[str, int]] | None:
        """Where the pipeline starts now (the replicas of a replicated first stage: a list), or None
        while it is not running end to end."""
        first = self.target.partitions()[0]
        if self.state != "running" or any(s.key not in self.assignment for s in first):
            return None
        hops = [(e.address, e.data_port) for e in (self.fleet.board(self.assignment[s.key]) for s in first)]
        return hops[0] if len(hops) == 1 else hops

    def replicas(self, key: int) -> int:
        """How many boards run the partition of stage `key`."""
        stage = next(s for s in self.target.stages if s.key == key)
        return sum(1 for s in self.target.stages if s.partition == stage.partition)

    def label(self, key: int) -> str:
        """A stage's name for people: its partition, and which replica ("1", "1.0", "1.1")."""
        stage = next(s for s in self.target.stages if s.key == key)
        return str(stage.partition) if self.replicas(key) == 1 else f"{stage.partition}.{stage.replica}"

    # ---- the loop -------------------------------------------------------------------------------
    async def step_once(self) -> Decision:
        """Observe, plan, execute; returns what was decided."""
        decision = plan_steps(self.target, self.views(), self.assignment)
        self.assignment = decision.assignment
        if decision.degraded:
            self.state = "waiting" if all(d.waiting for d in decision.degraded) else "degraded"
        else:
            self.state = "running" if decision.settled else "reconciling"
        if decision.settled:
            if decision.steps and (self._prestaging is None or self._prestaging.done()):
                # In the background: a failure meanwhile must be handled at once, not after the uploads.
                self._prestaging = asyncio.create_task(self._execute_all(decision.steps))
        else:
            if self._prestaging is not None and not self._prestaging.done():
                self._prestaging.cancel()  # a spare may be needed now: no more uploads competing with the failover
            deploys = [s for s in decision.steps if isinstance(s, Deploy)]
            await asyncio.gather(*(self._execute(s) for s in deploys))
            for step in decision.steps:
                if not isinstance(step, Deploy):
                    await self._execute(step)
        await self._publish()
        return decision

    async def _execute_all(self, steps: list[Step]) -> None:
        for step in steps:
            await self._execute(step)

    async def _execute(self, step: Step) -> None:
        try:
            await self.executors[type(step)](step)
        except Exception as exc:  # DeployError, CommandError, or a bug: count it against the board, go on
            name = getattr(step, "board", "?")
            self.failures[name] = self.failures.get(name, 0) + 1
            what = exc if isinstance(exc, DeployError | CommandError) else repr(exc)
            self.log(f"{type(step).__name__} on {name} failed ({self.failures[name]}/{self.cfg.max_failures}): {what}")

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Reconcile until `stop` is set."""
        stop = stop or asyncio.Event()
        task = asyncio.create_task(self.link.run())
        try:
            await asyncio.wait_for(self.link.connected.wait(), 30)
            await asyncio.sleep(self.cfg.heartbeat_timeout_s / 2)  # let retained statuses arrive
            while not stop.is_set():
                self._changed.clear()
                try:
                    await self.step_once()
                except Exception as exc:  # the loop must outlive any one failed step; the next one re-plans
                    self.log(f"reconcile step failed: {exc!r}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), self.cfg.tick_s)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ---- executors ------------------------------------------------------------------------------
    async def _upload(self, step: Deploy | Prestage, activate: bool) -> UploadReport:
        upload = self.uploads.deploy if activate else deploy  # prestaging spares: in the background, no bar
        report = await asyncio.to_thread(upload, self.fleet.board(step.board), self.bundle_dir, step.partition,
                                         activate=activate)
        self.deployed[step.board].add((step.bundle, step.partition))
        return report

    async def _deploy(self, step: Deploy) -> None:
        self.log(f"deploying partition {step.partition} to {step.board} ({self.fleet.board(step.board).address})")
        report = await self._upload(step, activate=True)
        self.log(f"  {step.board}: {len(report.sent)} sent ({report.bytes_sent:,} B), {len(report.skipped)} skipped")

    async def _prestage(self, step: Prestage) -> None:
        await self._upload(step, activate=False)
        self.log(f"spare {step.board} holds partition {step.partition}'s files")

    async def _run(self, step: Run) -> None:
        self.log(f"starting partition {step.partition} on {step.board} -> {step.next_hop}")
        # A server re-pointed away from a dead next hop cannot drain into it; the client resends what it held.
        args = (*fan_in_flags(self.manifest, step.partition), *self.cfg.server_args.get(step.partition, ()))
        await self.link.send(step.board, messages.Run(step.bundle, step.partition, step.next_hop, self.cfg.backend,
                                                      args, self.cfg.replace_drain_s, self.link_key.hex()),
                             timeout_s=self.cfg.command_timeout_s)
        self.next_hops[step.board] = (step.bundle, step.partition, step.next_hop)
        self.generation += 1

    async def _stop(self, step: Stop) -> None:
        self.log(f"stopping {step.board} (not needed)")
        await self.link.send(step.board, messages.Stop(), timeout_s=self.cfg.command_timeout_s)
        self.next_hops.pop(step.board, None)

    async def _degraded(self, step: Degraded) -> None:
        if (step.partition, step.waiting) not in self._degraded_said:
            self._degraded_said.add((step.partition, step.waiting))
            if step.waiting:
                self.log(f"partition {step.partition}: {step.why}")
            else:
                self.log(f"DEGRADED: partition {step.partition} cannot run: {step.why}")

    async def _publish(self) -> None:
        """The pipeline's state, retained, for clients and dashboards (finnsplit/<chain>/pipeline)."""
        hop = self.first_hop()
        hops = hop if isinstance(hop, list) else [hop] if hop else []  # a replicated first stage: every replica
        payload = messages.Pipeline(self.bundle, self.state, ",".join(f"{h}:{port}" for h, port in hops) or None,
                                    self.target.result_address,
                                    tuple(messages.PipelineStage(s.partition, s.replica, self.assignment[s.key])
                                          for s in self.target.stages if s.key in self.assignment))
        if payload != self._published and await self.link.publish("pipeline", payload.encode(), retain=True):
            self._published = payload

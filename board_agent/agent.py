"""The board agent: one board's MQTT control plane (docs/control-plane.md), supervising finnsplit-server.

aiomqtt 2 has no automatic reconnect, so `BoardAgent.run` loops over connections with backoff. The
server keeps running while the broker is away; the retained status is republished on reconnect.
No message can stop the agent: each is checked by the inbox (board_agent/inbox.py) and any failure
in handling one is logged and answered. A session that fails anyway publishes what the broker's
will would say ("lost") before it reconnects, so the orchestrator learns of it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import aiomqtt

from board_agent.config import AgentConfig
from board_agent.fpga import FpgaManager, firmware_name
from board_agent.inbox import CommandInbox, CommandRefused
from board_agent.run import PreparedRun, prepare_run, write_link_key
from board_agent.server import ServerSupervisor, server_command
from core.errors import FinnsplitError
from core.messages import (
    LOST,
    Command,
    Event,
    Heartbeat,
    PingResult,
    Reply,
    Run,
    RunResult,
    Stats,
    Status,
    StopResult,
)
from core.mqtt_login import client_id

log = logging.getLogger("board_agent")
Message = Status | Heartbeat | Reply | Stats | Event


def agent_version() -> str:
    """The installed finnsplit version (the status's "agent" field)."""
    try:
        return metadata.version("finnsplit")
    except metadata.PackageNotFoundError:
        return "unknown"


class BoardAgent:
    """Answers run/stop/ping commands and publishes status, events, stats and heartbeats."""

    def __init__(self, cfg: AgentConfig) -> None:
        """An agent for the board `cfg.name`; `run` connects it."""
        self.cfg = cfg
        self.version = agent_version()
        self._client: aiomqtt.Client | None = None
        self._state: dict[str, Any] = {"state": "idle", "bundle": None, "partition": None, "listen": None,
                                       "error": None}
        self._supervisor: ServerSupervisor | None = None
        self._ops = asyncio.Lock()  # run and stop execute one at a time, in arrival order
        self._ops_running: set[asyncio.Task[None]] = set()
        self._outbox: asyncio.Queue[tuple[str, Message, int, bool]] = asyncio.Queue()
        self._heartbeats = 0
        self._shut_down = False
        self._inbox = CommandInbox(cfg.commands)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, reconnecting to the broker; then stop the server and go offline."""
        delay = 0.5
        while not stop.is_set():
            try:
                async with self._new_client() as client:
                    delay = 0.5
                    try:
                        await self._session(client, stop)
                    except aiomqtt.MqttError:
                        raise
                    except Exception:  # a bug: the agent must not die of it; say what the will would say
                        log.exception("session failed; publishing 'lost' and reconnecting")
                        with contextlib.suppress(Exception):
                            await client.publish(self.cfg.topic("status"), LOST.encode(), qos=1, retain=True)
            except (aiomqtt.MqttError, FinnsplitError) as exc:  # FinnsplitError: the password file went away
                log.warning("broker %s:%d: %s; reconnecting in %.1f s", self.cfg.broker.host,
                            self.cfg.broker.port, exc, delay)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, self.cfg.reconnect_max_s)
        await self._shutdown(None)  # a no-op when the session already shut down

    def _new_client(self) -> aiomqtt.Client:
        broker = self.cfg.broker
        return aiomqtt.Client(**broker.client_options(),
                              identifier=client_id(f"finnsplit-{self.cfg.chain}-{self.cfg.name}"),
                              keepalive=broker.keepalive_s, clean_session=True,
                              will=aiomqtt.Will(self.cfg.topic("status"), LOST.encode(), qos=1, retain=True))

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        await client.subscribe(self.cfg.topic("cmd"), qos=1)
        self._client, self._outbox = client, asyncio.Queue()
        log.info("connected to %s:%d as %s", self.cfg.broker.host, self.cfg.broker.port, self.cfg.topic(""))
        self._emit("status", self._status(), qos=1, retain=True)
        publisher = asyncio.create_task(self._publisher(client))
        tasks = [publisher, asyncio.create_task(self._consume(client)), asyncio.create_task(self._heartbeat()),
                 stopping := asyncio.create_task(stop.wait())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                await self._shutdown(publisher)
            for task in done:
                task.result()  # an MqttError ends the session; run() reconnects
        finally:
            self._client = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _publisher(self, client: aiomqtt.Client) -> None:
        """Publish the outbox in order (a reply never overtakes the status change it reports)."""
        while True:
            leaf, message, qos, retain = await self._outbox.get()
            try:
                await client.publish(self.cfg.topic(leaf), message.encode(), qos=qos, retain=retain)
            finally:
                self._outbox.task_done()

    async def _consume(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                self._dispatch(message.payload, bool(message.retain))
            except Exception:  # a bug in handling one message must not end the others
                log.exception("handling a command failed")

    async def _heartbeat(self) -> None:
        while True:
            self._heartbeats += 1
            self._emit("heartbeat", Heartbeat(self._heartbeats, time.time()), qos=0)
            await asyncio.sleep(self.cfg.heartbeat_s)

    def _dispatch(self, payload: object, retained: bool = False) -> None:
        """Check one command and start or answer it; a refused one gets an error reply, never a crash."""
        try:
            cmd = self._inbox.accept(payload, retained)
        except CommandRefused as exc:
            log.warning("refused: %s", exc)
            if exc.reply:
                self._reply(exc.cid, error=str(exc))
            return
        if cmd.op == "ping":  # the inbox admits only the known ops (core.messages.OPS)
            self._reply(cmd.id, result=PingResult(time.time()))
        else:
            task = asyncio.create_task(self._execute(cmd))
            self._ops_running.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._ops_running.discard)

    async def _execute(self, cmd: Command) -> None:
        cid, op, request = cmd.id, cmd.op, cmd.request
        async with self._ops:
            shown = {k: "<secret>" if k == "link_key" else v for k, v in cmd.fields().items()}
            log.info("%s %s: %s", op, cid, json.dumps(shown))
            try:
                result = await (self._run(request) if isinstance(request, Run) else self._stop())
            except FinnsplitError as exc:
                log.error("%s %s failed: %s", op, cid, exc)
                self._reply(cid, error=str(exc))
                return
            except Exception as exc:  # a bug: report it and keep serving
                log.exception("%s %s failed", op, cid)
                self._reply(cid, error=f"internal error: {exc!r}")
                return
        self._reply(cid, result=result)

    async def _run(self, request: Run) -> RunResult:
        try:
            prepared = await asyncio.to_thread(prepare_run, self.cfg.remote_root, request)
            key_file = write_link_key(self.cfg.remote_root, request.link_key)
            command = functools.partial(server_command, self.cfg, self.cfg.resolve_server_binary(), prepared,
                                        key_file=key_file)
            command(self.cfg.data_port)  # checks `args` before the running server is replaced
        except FinnsplitError as exc:
            await self._stop_server()
            self._set(state="error", bundle=request.bundle, partition=request.partition, listen=None, error=str(exc))
            raise
        await self._stop_server(request.drain_s)
        self._set(state="starting", bundle=prepared.bundle_id, partition=request.partition, listen=None, error=None)
        supervisor = ServerSupervisor(command, self.cfg.data_port, self.cfg.server, self._on_stats,
                                      self._on_event, self._on_state)
        try:
            if prepared.bitbin is not None:
                await asyncio.to_thread(self._load_bitstream, prepared)
            port = await supervisor.start()
        except FinnsplitError as exc:
            self._set(state="error", error=str(exc))
            raise
        self._supervisor = supervisor
        listen = f"{self.cfg.data_host}:{port}"
        self._set(state="running", listen=listen)
        return RunResult(listen, supervisor.pid, prepared.bundle_id)

    def _load_bitstream(self, prepared: PreparedRun) -> None:
        fpga = FpgaManager(Path(self.cfg.fpga.manager), Path(self.cfg.fpga.firmware_dir), self.cfg.fpga.timeout_s)
        assert prepared.bitbin is not None
        fpga.load(prepared.bitbin, firmware_name(prepared.bundle_id, prepared.request.partition))

    async def _stop(self) -> StopResult:
        code = await self._stop_server()
        self._set(state="idle", bundle=None, partition=None, listen=None, error=None)
        return StopResult(code)

    async def _stop_server(self, timeout_s: float | None = None) -> int | None:
        supervisor = self._supervisor
        if supervisor is None:
            return None
        self._set(state="stopping")
        code = await supervisor.stop(timeout_s)  # if this caller is cancelled, the stop goes on; _shutdown awaits it
        self._supervisor = None
        return code

    async def _shutdown(self, publisher: asyncio.Task[None] | None) -> None:
        """Stop the server and, if connected, publish the offline status (before a clean disconnect)."""
        if self._shut_down:
            return
        self._shut_down = True
        log.info("shutting down")
        for task in self._ops_running:
            task.cancel()
        await asyncio.gather(*self._ops_running, return_exceptions=True)
        await self._stop_server()
        self._state.update(state="idle", bundle=None, partition=None, listen=None, error=None)
        if publisher is not None:
            self._emit("status", dataclasses.replace(self._status(), online=False), qos=1, retain=True)
            flushed = asyncio.create_task(self._outbox.join())
            await asyncio.wait([flushed, publisher], timeout=10, return_when=asyncio.FIRST_COMPLETED)
            flushed.cancel()

    # ---- publishing -----------------------------------------------------------------------------

    def _status(self) -> Status:
        return Status(online=True, **self._state, agent=self.version, ts=time.time())

    def _set(self, **changes: Any) -> None:
        self._state.update(changes)
        log.info("status %s", self._state["state"] + (f": {self._state['error']}" if self._state["error"] else ""))
        self._emit("status", self._status(), qos=1, retain=True)

    def _on_stats(self, line: dict[str, Any]) -> None:
        self._emit("stats", Stats({k: v for k, v in line.items() if k != "board"}, self.cfg.name), qos=0)

    def _on_event(self, event: dict[str, Any]) -> None:
        details = {k: v for k, v in event.items() if k not in ("event", "board", "ts")}
        self._emit("event", Event(event["event"], details, self.cfg.name, time.time()), qos=1)

    def _on_state(self, state: str, error: str | None) -> None:
        if state == "error":
            self._set(state="error", listen=None, error=error)
        else:
            self._set(state=state, error=None)

    def _reply(self, cid: str | None, result: RunResult | StopResult | PingResult | None = None,
               error: str | None = None) -> None:
        reply = Reply.failure(cid, error) if error is not None else Reply(cid, True, None, result and result.fields())
        self._emit("reply", reply, qos=1)

    def _emit(self, leaf: str, payload: Message, qos: int, retain: bool = False) -> None:
        """Queue a message for the broker; dropped while disconnected (the status is republished on connect)."""
        if self._client is None:
            log.debug("not connected: %s message dropped", leaf)
            return
        self._outbox.put_nowait((leaf, payload, qos, retain))

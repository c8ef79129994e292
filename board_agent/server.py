"""Supervises one finnsplit-server child: its command line, start-up, stats, restarts and stop.

The server's flags and its stdout JSON lines ("listening", "stats", "exit") are docs/protocol.md;
the restart policy is docs/control-plane.md. Everything here runs on the agent's asyncio loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import logging
import os
import shlex
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from board_agent.config import AgentConfig, ServerPolicy
from board_agent.run import PreparedRun, RunError
from board_agent.server_args import check_args
from core.errors import FinnsplitError
from core.manifest import Partition
from core.server import parse_event

log = logging.getLogger("board_agent.server")
PR_SET_PDEATHSIG = 1


class ServerStartError(FinnsplitError):
    """finnsplit-server exited or stayed silent before its "listening" event."""


def server_command(cfg: AgentConfig, binary: Path, run: PreparedRun, port: int,
                   key_file: Path | None = None) -> list[str]:
    """The `finnsplit-server serve` command line for `run`, listening on cfg.data_host:port.

    `key_file`: the link key (--auth-key-file). As root, the server drops to `server.user` once its
    devices are mapped. The request's `args` are checked against board_agent/server_args.py.
    """
    part = run.partition
    launcher = shlex.split(cfg.server.launcher) if cfg.server.launcher else []
    command = [*launcher, str(binary), "serve", "--listen", f"{cfg.data_host}:{port}", "--next", run.request.next,
               "--name", cfg.name, "--backend", run.request.backend, "--stats", "stdout"]
    if key_file is not None:
        command += ["--auth-key-file", str(key_file)]
    if cfg.server.user and os.geteuid() == 0:
        command += ["--user", cfg.server.user]
    if run.request.backend == "emulate":
        assert run.program is not None  # prepare_run checked it lies inside the bundle
        command += ["--program", str(run.program)]
    else:
        command += ["--spec-in", part.input.wire, "--spec-out", part.output.wire]
    if run.request.backend == "finn-zynq":
        command += finn_zynq_flags(cfg, part)
    owned = {arg for arg in command[len(launcher):] if arg.startswith("--")}
    for arg in run.request.args:
        if arg.split("=", 1)[0] in owned:
            raise RunError(f"run: 'args' may not set {arg.split('=', 1)[0]} (the agent sets it)")
    frame_bytes = part.input.packed_bytes + part.output.packed_bytes
    extra = check_args(run.request.args, run.request.backend, frame_bytes, cfg.server.max_buffer_mb)
    extra.setdefault("--stats-interval-ms", str(cfg.server.stats_interval_ms))
    return command + [word for flag, value in extra.items() for word in (flag, value)]


def finn_zynq_flags(cfg: AgentConfig, part: Partition) -> list[str]:
    """The finn-zynq backend's flags from the manifest's finn_io and finn.iodma, and the config's devices."""
    dev = cfg.finn_zynq
    assert part.finn is not None  # prepare_run refuses a finn-zynq run without a FINN build
    iodma, order = part.finn.iodma, part.finn.iodma_order or {}
    # one value per tensor in boundary order (docs/finn.md#multi-tensor-boundaries): the DMA moving tensor k is
    # the build's iodma_order[k] (FINN's driver), else idma{k} / odma{k}
    dmas = {side: list(order.get(side) or [f"{prefix}{k}" for k in range(len(boundary.tensors))])
            for side, prefix, boundary in (("inputs", "idma", part.input), ("outputs", "odma", part.output))}
    for name in dmas["inputs"] + dmas["outputs"]:
        if name not in iodma:
            raise RunError(f"run: the partition's FINN build maps no {name} (its .hwh has {', '.join(iodma)})")

    def joined(values: object) -> str:
        return ",".join(map(str, values)) if isinstance(values, tuple | list) else str(values)

    flags = ["--in-word-elems", joined(part.finn_io.in_word_elems),
             "--out-word-elems", joined(part.finn_io.out_word_elems),
             "--idma", dev.idma or joined([f"{dev.mem_device}@{iodma[n]['base']}" for n in dmas["inputs"]]),
             "--odma", dev.odma or joined([f"{dev.mem_device}@{iodma[n]['base']}" for n in dmas["outputs"]]),
             "--dmabuf-in", dev.dmabuf_in, "--dmabuf-out", dev.dmabuf_out,
             "--done-timeout-ms", str(dev.done_timeout_ms)]
    if dev.dmabuf_in_phys is not None:
        flags += ["--dmabuf-in-phys", hex(dev.dmabuf_in_phys)]
    if dev.dmabuf_out_phys is not None:
        flags += ["--dmabuf-out-phys", hex(dev.dmabuf_out_phys)]
    return flags


def _die_with_parent(parent: int) -> Callable[[], None]:
    # If the agent is killed outright (no chance to stop its child), the kernel sends the server
    # SIGTERM, so it drains and frees the data port for the agent that systemd starts next.
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


class ServerSupervisor:
    """One finnsplit-server process, restarted with backoff when it exits unexpectedly."""

    def __init__(self, command: Callable[[int], list[str]], port: int, policy: ServerPolicy,
                 on_stats: Callable[[dict[str, Any]], None], on_event: Callable[[dict[str, Any]], None],
                 on_state: Callable[[str, str | None], None]) -> None:
        """`command(port)` builds the command line; callbacks get stats lines, events and state changes."""
        self._command = command
        self.port = port  # the configured port until the first start, then the bound one
        self._policy = policy
        self._on_stats, self._on_event, self._on_state = on_stats, on_event, on_state
        self._proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._stderr: collections.deque[str] = collections.deque(maxlen=30)
        self._exit_line: dict[str, Any] | None = None
        self._failures: list[float] = []
        self._watch: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[int | None] | None = None

    @property
    def pid(self) -> int | None:
        """The running server's process id."""
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    def stderr_tail(self) -> str:
        """The server's last stderr lines."""
        return "\n".join(self._stderr)

    async def start(self) -> int:
        """Start the server and wait for "listening"; returns the port. Raises ServerStartError."""
        await self._spawn()
        self._on_event({"event": "server-started", "pid": self.pid, "port": self.port})
        self._watch = asyncio.create_task(self._watch_loop())
        return self.port

    async def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM (the server drains), SIGKILL after `timeout_s` (default the policy's stop timeout).

        Returns the exit code. Idempotent, and a cancelled caller does not interrupt the stop (a later
        call awaits it).
        """
        if self._stop_task is None:
            self._stop_task = asyncio.create_task(self._stop(self._policy.stop_timeout_s if timeout_s is None
                                                             else timeout_s))
        return await asyncio.shield(self._stop_task)

    async def _stop(self, timeout_s: float) -> int | None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return None if proc is None else proc.returncode
        code = await self._terminate(proc, timeout_s)
        self._on_event(self._exit_event(proc, code, expected=True))
        return code

    async def _spawn(self) -> None:
        self._stderr.clear()
        self._exit_line = None
        command = self._command(self.port)
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent(os.getpid()))
        except OSError as exc:
            raise ServerStartError(f"cannot run {command[0]}: {exc.strerror}") from None
        self._proc = proc
        listening: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._readers = [asyncio.create_task(self._read_stdout(proc, listening)),
                         asyncio.create_task(self._read_stderr(proc))]
        exited = asyncio.create_task(proc.wait())
        try:
            await asyncio.wait({listening, exited}, timeout=self._policy.listen_timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # stop() during a start or restart
            await self._terminate(proc, 0)
            raise
        finally:
            exited.cancel()
        if not listening.done() or proc.returncode is not None:
            why = (f"exited with code {proc.returncode}" if proc.returncode is not None else
                   f"sent no listening event within {self._policy.listen_timeout_s:g} s")
            await self._terminate(proc, 0)
            raise ServerStartError(f"finnsplit-server {why}:\n{self.stderr_tail()}")
        self.port = int(listening.result()["port"])
        log.info("finnsplit-server %d listening on port %d", proc.pid, self.port)

    async def _read_stdout(self, proc: asyncio.subprocess.Process, listening: asyncio.Future[dict[str, Any]]) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = parse_event(raw)
            if line is None:
                log.warning("finnsplit-server: not a JSON object on stdout: %r", raw[:200])
                continue
            kind = line.get("event")
            if kind == "listening" and not listening.done():
                listening.set_result(line)
            elif kind == "stats":
                self._on_stats(line)
            elif kind == "exit":
                self._exit_line = line

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self._stderr.append(line)
            log.info("server: %s", line)

    async def _terminate(self, proc: asyncio.subprocess.Process, timeout: float) -> int:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM if timeout > 0 else signal.SIGKILL)
            try:
                await asyncio.wait_for(proc.wait(), timeout if timeout > 0 else None)
            except asyncio.TimeoutError:
                log.warning("finnsplit-server %d did not exit %g s after SIGTERM: SIGKILL", proc.pid, timeout)
                proc.kill()
                await proc.wait()
        await asyncio.wait(self._readers, timeout=2)  # the stderr tail and the exit line
        assert proc.returncode is not None
        return proc.returncode

    def _exit_event(self, proc: asyncio.subprocess.Process, code: int, expected: bool) -> dict[str, Any]:
        event: dict[str, Any] = {"event": "server-exited", "pid": proc.pid, "code": code, "expected": expected,
                                 "signal": signal.Signals(-code).name if code < 0 else None}
        if self._exit_line is not None:
            event["exit"] = self._exit_line
        if not expected:
            event["stderr"] = self.stderr_tail()
        return event

    async def _watch_loop(self) -> None:
        while True:
            proc = self._proc
            assert proc is not None
            code = await proc.wait()
            await asyncio.wait(self._readers, timeout=2)  # the stderr tail and the exit line
            log.warning("finnsplit-server %d exited unexpectedly (code %d)", proc.pid, code)
            self._on_event(self._exit_event(proc, code, expected=False))
            if not await self._restart():
                return
            self._on_event({"event": "server-restarted", "pid": self.pid, "port": self.port,
                            "failures": len(self._failures)})
            self._on_state("running", None)

    async def _restart(self) -> bool:
        """Restart after a failure with backoff; False when the policy gives up."""
        policy = self._policy
        while True:
            now = time.monotonic()
            self._failures = [t for t in self._failures if now - t < policy.failure_window_s] + [now]
            if len(self._failures) >= policy.max_failures:
                message = (f"finnsplit-server failed {len(self._failures)} times within "
                           f"{policy.failure_window_s:g} s; giving up. Last stderr:\n{self.stderr_tail()}")
                log.error("%s", message)
                self._on_state("error", message)
                return False
            delay = min(policy.backoff_max_s, policy.backoff_s * 2 ** (len(self._failures) - 1))
            self._on_state("starting", None)
            await asyncio.sleep(delay)
            try:
                await self._spawn()
                return True
            except ServerStartError as exc:
                log.warning("restart failed: %s", exc)

"""finnsplit-server as a child process: finding the binary, reading its stdout events, stopping it.

The server prints one JSON object per stdout line ("listening", "stats", "exit"; docs/protocol.md)
and logs to stderr. Three places run it — virtual boards (orchestrator/rigs/virtual.py), the tests'
server fleets (tests/cpp_fixtures.py) and, asynchronously, the board agent (board_agent/server.py) —
and all find it and read its events here.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.errors import FinnsplitError

CHECKOUT = Path(__file__).resolve().parents[1]
Event = dict[str, Any]


class ServerProcessError(FinnsplitError):
    """finnsplit-server is missing, did not start, exited, or did not say what was waited for."""


def find_server_binary(explicit: str | None = None) -> Path | None:
    """finnsplit-server: `explicit` if given, else $FINNSPLIT_SERVER, PATH, this checkout's cpp_server/build."""
    candidates = [explicit] if explicit else [os.environ.get("FINNSPLIT_SERVER"), shutil.which("finnsplit-server"),
                                              str(CHECKOUT / "cpp_server" / "build" / "finnsplit-server")]
    for candidate in filter(None, candidates):
        if Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def server_binary() -> Path:
    """finnsplit-server as find_server_binary finds it, or a ServerProcessError saying how to get one."""
    found = find_server_binary()
    if found is None:
        raise ServerProcessError("finnsplit-server not found: build it (scripts/setup.sh builds cpp_server/build) "
                                 "or set FINNSPLIT_SERVER")
    return found


def parse_event(line: str | bytes) -> Event | None:
    """One stdout line as an event, or None for a line that is not a JSON object."""
    text = line.decode(errors="replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        event = json.loads(text)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


class ServerProcess:
    """A finnsplit-server child; its stdout events are collected by a thread, its stderr goes to `log_path`."""

    def __init__(self, name: str, command: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
                 listen_timeout_s: float = 30.0) -> None:
        """Start `command` and wait for its "listening" event (`port` is where the previous hop connects)."""
        self.name, self.log_path = name, Path(log_path)
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     env=None if env is None else {**os.environ, **env})
        self.events: list[Event] = []
        self._new: queue.Queue[Event] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        try:
            listening = self.wait_event(lambda e: e.get("event") == "listening", listen_timeout_s)
        except ServerProcessError as exc:
            self.stop()
            raise ServerProcessError(f"{name} did not start: {exc}") from None
        self.port = int(listening["port"])

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = parse_event(line)
            if event is not None:
                self.events.append(event)
                self._new.put(event)

    @property
    def address(self) -> tuple[str, int]:
        """Where the previous hop connects, for a server listening on loopback."""
        return ("127.0.0.1", self.port)

    def wait_event(self, predicate: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        """The first event (already seen, or from now on within `timeout`) that satisfies `predicate`."""
        for event in list(self.events):
            if predicate(event):
                return event
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and self._new.empty() and not self._reader.is_alive():
                raise ServerProcessError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-2000:]}")
            try:
                event = self._new.get(timeout=0.1)
            except queue.Empty:
                continue
            if predicate(event):
                return event
        raise ServerProcessError(f"{self.name}: no such event within {timeout:g} s; log:\n{self.log()[-2000:]}")

    def stats(self, predicate: Callable[[Event], bool] = lambda s: True, timeout: float = 10.0) -> Event:
        """The next stats event that satisfies `predicate` (needs a short --stats-interval-ms)."""
        return self.wait_event(lambda e: e.get("event") == "stats" and predicate(e), timeout)

    def last_stats(self) -> Event | None:
        """The newest stats event the server printed."""
        return next((e for e in reversed(self.events) if e.get("event") == "stats"), None)

    def log(self) -> str:
        """Everything the server wrote to stderr so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the server drains the frames in flight), SIGKILL if it does not exit in time; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._finish()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL (an abrupt crash) and wait."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._finish()

    def _finish(self) -> None:
        self._reader.join(timeout=5)
        self._log.close()

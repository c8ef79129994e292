"""A progress bar for long steps: counts, rate and ETA on one redrawn line; silent when not a terminal.

    with ProgressBar("checking", total=96) as bar:
        for chunk in chunks:
            ...
            bar.advance(len(chunk))

Logs and pipes get nothing from it (the commands print their own summary lines), so scripts and
CI output stay clean. Thread safe: a watcher thread may call `set` while another works. One bar
holds a stream at a time (until closed: a bar begun meanwhile stays quiet). A line
printed while a bar is shown goes through `echo` (the bar is cleared, the line printed, the bar
drawn again below it), so log lines and the bar never share a line.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

_WIDTH = 28
_SHOWN: dict[int, ProgressBar] = {}  # id(stream) -> the bar drawn on it last and not closed yet
_SHOWN_LOCK = threading.Lock()


def echo(message: str, stream: TextIO | None = None) -> None:
    """Print `message` as a line of its own on `stream` (stderr), above the bar shown there, if any;
    on a terminal, above a bar another terminal stream shows (stdout and stderr share one screen)."""
    stream = stream if stream is not None else sys.stderr
    with _SHOWN_LOCK:
        bar = _SHOWN.get(id(stream))
        if bar is None and _is_terminal(stream):
            bar = next((b for b in _SHOWN.values() if _is_terminal(b.stream)), None)
    if bar is None:
        stream.write(message + "\n")
        stream.flush()
        return
    bar.print_above(message, stream)


def _is_terminal(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def _bytes(value: float) -> str:
    """A byte count for people: B, kB, MB or GB."""
    for scale, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if value >= scale:
            return f"{value / scale:.1f} {name}"
    return f"{value:.0f} B"


class ProgressBar:
    """One step's bar on `stream` (stderr by default), drawn only if it is a terminal."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None, unit: str = "frames",
                 start: float | None = None) -> None:
        """`total` items of `unit` to do (`unit` "bytes": shown in kB/MB/GB), begun at `start`
        (time.monotonic(); default now) for the rate and the ETA."""
        self.label, self.total, self.unit = label, max(int(total), 0), unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_terminal(self.stream)
        self.done = 0
        self._start = time.monotonic() if start is None else start
        self._drawn = 0.0
        self._lock = threading.Lock()

    def line(self, now: float | None = None) -> str:
        """The bar as text: label, bar, count, rate and ETA."""
        elapsed = (now if now is not None else time.monotonic()) - self._start
        filled = _WIDTH * self.done // self.total if self.total else _WIDTH
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.done >= self.total:
            eta = f"done in {elapsed:.0f} s"
        elif rate > 0:
            eta = f"ETA {(self.total - self.done) / rate:.0f} s"
        else:
            eta = "ETA ?"
        bar = f"{self.label} [{'#' * filled}{'.' * (_WIDTH - filled)}]"
        if self.unit == "bytes":
            return f"{bar} {_bytes(self.done)} of {_bytes(self.total)}, {_bytes(rate)}/s, {eta}"
        return f"{bar} {self.done}/{self.total} {self.unit}, {rate:.1f}/s, {eta}"

    def set(self, done: int) -> None:
        """`done` items are finished (redraws at most ten times a second, and at the end)."""
        with self._lock:
            self.done = min(int(done), self.total)
            now = time.monotonic()
            if self.enabled and (now - self._drawn >= 0.1 or self.done >= self.total):
                self._draw(now)

    def _draw(self, now: float) -> None:
        """Redraw the bar's line (the caller holds the lock); not while another bar holds the stream."""
        with _SHOWN_LOCK:
            if _SHOWN.setdefault(id(self.stream), self) is not self:
                return  # one line, one bar: e.g. a failover's upload while frames stream
        self._drawn = now
        self.stream.write("\r" + self.line(now) + "\033[K")
        self.stream.flush()

    def print_above(self, message: str, out: TextIO | None = None) -> None:
        """Print `message` on a line of its own on `out` (the bar's stream by default) and draw the bar
        again below it."""
        out = out if out is not None else self.stream
        with self._lock:
            if self.enabled and self._drawn:
                self.stream.write("\r\033[K")
                self.stream.flush()
            out.write(message + "\n")
            out.flush()
            if self.enabled and self._drawn:
                self._draw(time.monotonic())

    def advance(self, count: int = 1) -> None:
        """`count` more items are finished."""
        self.set(self.done + count)

    def close(self) -> None:
        """End the bar's line (a terminal keeps the last state)."""
        with self._lock:
            if self.enabled and self._drawn:
                self.stream.write("\n")
                self.stream.flush()
                self._drawn = 0.0
            with _SHOWN_LOCK:
                if _SHOWN.get(id(self.stream)) is self:
                    del _SHOWN[id(self.stream)]

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Watcher:
    """Polls `count()` in a background thread and shows it on a ProgressBar until stopped."""

    def __init__(self, bar: ProgressBar, count: Callable[[], int], interval_s: float = 0.2) -> None:
        """Start polling."""
        self.bar, self.count, self.interval_s = bar, count, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        if bar.enabled:
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.bar.set(self.count())

    def stop(self) -> None:
        """Stop polling, draw the final count and end the line."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.bar.set(self.count())
        self.bar.close()

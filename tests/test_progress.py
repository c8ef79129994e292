"""Progress bars: counts, rate and ETA on a terminal; nothing at all on a pipe or a log."""

from __future__ import annotations

import io
import time

from splitter.progress import ProgressBar, Watcher


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_counts_and_an_eta() -> None:
    out = Terminal()
    with ProgressBar("checking", 4, stream=out) as bar:
        bar._start -= 2.0  # two seconds in
        bar.advance(1)
        assert "checking [#######.....................] 1/4 frames" in out.getvalue()
        assert "ETA 6 s" in out.getvalue()  # 1 frame in 2 s: 3 more take 6 s
        time.sleep(0.11)
        bar.advance(3)
    text = out.getvalue()
    assert "4/4 frames" in text and "done in 2 s" in text and text.endswith("\n")


def test_a_pipe_gets_nothing() -> None:
    out = io.StringIO()
    with ProgressBar("checking", 3, stream=out) as bar:
        bar.advance(3)
    watcher = Watcher(ProgressBar("streaming", 5, stream=out), lambda: 5)
    watcher.stop()
    assert out.getvalue() == ""


def test_a_watcher_follows_a_counter() -> None:
    out, done = Terminal(), [0]
    watcher = Watcher(ProgressBar("streaming", 10, stream=out), lambda: done[0], interval_s=0.01)
    done[0] = 6
    time.sleep(0.2)
    assert "6/10 frames" in out.getvalue()
    done[0] = 10
    watcher.stop()
    assert "10/10 frames" in out.getvalue() and out.getvalue().endswith("\n")

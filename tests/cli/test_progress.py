"""Progress bars: counts, rate and ETA on a terminal; nothing at all on a pipe or a log."""

from __future__ import annotations

import io
import time

from splitter.progress import ProgressBar, Watcher, echo


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


def test_lines_printed_meanwhile_go_above_the_bar() -> None:
    out = Terminal()
    with ProgressBar("uploading", 10, stream=out) as bar:
        bar.set(4)
        echo("[   1.0s] deploying partition 1", out)
        text = out.getvalue()
        # the bar's line is cleared, the message gets a line of its own, the bar is drawn again below it
        assert "\r\033[K[   1.0s] deploying partition 1\n\ruploading [" in text and text.endswith("\033[K")
        bar.set(10)
    echo("after", out)
    assert out.getvalue().endswith("done in 0 s\033[K\nafter\n")  # no bar shown any more: a plain line


def test_one_bar_holds_a_stream_at_a_time() -> None:
    out = Terminal()
    with ProgressBar("streaming", 10, stream=out) as first:
        first.set(1)
        with ProgressBar("uploading", 5, stream=out) as second:  # e.g. a failover's upload meanwhile
            second.set(5)
        first.set(10)
    assert "uploading" not in out.getvalue() and "10/10 frames" in out.getvalue()
    with ProgressBar("uploading", 5, stream=out) as third:  # the stream is free again
        third.set(5)
    assert "uploading [" in out.getvalue()


def test_bytes_are_shown_in_kb_mb_gb() -> None:
    with ProgressBar("uploading", 40_100_000, stream=Terminal(), unit="bytes", start=time.monotonic() - 2.0) as bar:
        bar.set(12_300_000)
        assert "12.3 MB of 40.1 MB, 6.1 MB/s, ETA 5 s" in bar.line()
        bar.set(40_100_000)
        assert "40.1 MB of 40.1 MB" in bar.line() and "done in 2 s" in bar.line()
    assert "x [............................] 0 B of 2.0 kB, 0 B/s" in ProgressBar("x", 2000, unit="bytes").line()


def test_a_line_on_the_other_terminal_stream_clears_the_bar_first() -> None:
    err, out = Terminal(), Terminal()  # stdout and stderr of one terminal: one screen
    with ProgressBar("uploading", 10, stream=err) as bar:
        bar.set(3)
        drawn = len(err.getvalue())
        echo("health: 6 boards running", out)
        assert out.getvalue() == "health: 6 boards running\n"
        after = err.getvalue()[drawn:]
        assert after.startswith("\r\033[K\ruploading [") and "3/10 frames" in after  # cleared, then drawn again
    piped = io.StringIO()
    with ProgressBar("uploading", 10, stream=err) as bar:
        bar.set(3)
        drawn = len(err.getvalue())
        echo("to a pipe", piped)  # not the terminal: the bar stays as it is
    assert piped.getvalue() == "to a pipe\n" and err.getvalue()[drawn:] == "\n"

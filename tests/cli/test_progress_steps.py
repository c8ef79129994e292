"""The long steps' progress bars, on a fake terminal; on a pipe the commands print what they printed before.

Real parts: the CNV model built and planned, its partitions on the board server (emulate backend),
the Python executor and qonnx as references, FINN v0.10.1 in .venv-finn for its estimates.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.manifest import load_manifest
from orchestrator.dataplane.reference_check import ReferenceCheck
from orchestrator.rigs.virtual import infer_on_virtual_boards, random_inputs
from splitter.build import BuildConfig, build
from splitter.progress import echo

FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]
BAR = re.compile(r"\[[#.]{28}\]")


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def cnv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the CNV model, its bundle for 3 Zedboards, one stage each)."""
    from splitter.zoo import export

    work = tmp_path_factory.mktemp("progress")
    export("cnv-w2a2", work / "cnv.onnx", seed=0)
    build(BuildConfig(model=str(work / "cnv.onnx"), output=str(work / "bundle"), boards="3", finn="no",
                      replicate=False))
    return work / "cnv.onnx", work / "bundle"


@contextlib.contextmanager
def terminal() -> Iterator[Terminal]:
    """stderr, where the bars go, is a terminal (in the test's body: pytest sets sys.stderr for each phase)."""
    out = Terminal()
    with contextlib.redirect_stderr(out):
        yield out


def finished_bars(text: str, label: str) -> list[str]:
    """The states of `label`'s bar drawn in `text`."""
    return [part.split("\033[K")[0] for part in text.split("\r") if part.startswith(label + " [")]


def test_build_shows_the_search_and_the_partitions_exported(cnv: tuple[Path, Path], tmp_path: Path) -> None:
    model, _ = cnv
    with terminal() as out:
        state = build(BuildConfig(model=str(model), output=str(tmp_path / "b"), boards="3", finn="no",
                                  replicate=False), echo)
    text = out.getvalue()
    planning = finished_bars(text, "planning")
    assert planning and re.search(r"(\d+)/\1 searches, .* done in", planning[-1]), planning
    exporting = finished_bars(text, "exporting")
    assert "3/3 partitions" in exporting[-1] and "done in" in exporting[-1], exporting
    assert "0/3 partitions" in exporting[0]
    # every progress line is a line of its own: the bar is cleared before it
    for index in range(3):
        assert f"\r\033[Kwriting partition {index}: " in text
    assert len(state.plan.partitions) == 3


def test_a_pipe_gets_the_build_output_it_always_got(cnv: tuple[Path, Path], tmp_path: Path) -> None:
    model, _ = cnv
    done = subprocess.run([*FINNSPLIT, "build", str(model), "--boards", "3", "--no-replicate", "--finn", "no",
                           "-o", str(tmp_path / "b")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "\033" not in done.stderr and not BAR.search(done.stderr)
    assert "writing partition 2: " in done.stderr and "pipeline: " in done.stdout


def test_virtual_streaming_and_the_reference_checks(cnv: tuple[Path, Path], tmp_path: Path) -> None:
    model, bundle = cnv
    manifest = load_manifest(bundle)
    raws = random_inputs(manifest, 12)
    with terminal() as out:
        outputs, _ = infer_on_virtual_boards(bundle, raws, tmp_path / "logs", manifest=manifest)
        assert "12/12 frames" in finished_bars(out.getvalue(), "streaming")[-1]
        check = ReferenceCheck(str(model), manifest, str(bundle), raws)
        check.wait(echo)  # lowering the model takes a while: the computation is still running here
    text = out.getvalue()
    executor = finished_bars(text, "checking: executor")
    assert executor and "12/12 frames" in executor[-1], text
    assert "3/3 frames" in finished_bars(text, "checking: qonnx")[-1], text
    assert all(np.array_equal(e[None], y) for e, y in zip(check.executor, outputs, strict=True))


def test_finn_estimates_count_partitions(cnv: tuple[Path, Path]) -> None:
    from splitter.finn.estimates import run_estimates

    _, bundle = cnv
    with terminal() as out:
        results = run_estimates(bundle, [0, 2], jobs=2, log=echo)
    assert [r.status for r in results] == ["ran", "ran"]
    bars = finished_bars(out.getvalue(), "FINN estimates")
    assert "0/2 partitions" in bars[0] and "2/2 partitions" in bars[-1] and "done in" in bars[-1], bars
    assert any("1/2 partitions" in b for b in bars)
    assert sum(f"\r\033[Kpartition {k} (" in out.getvalue() for k in (0, 2)) == 2
    # a pipe: the same lines as before, no bar; the partitions are unchanged now, so FINN skips them
    done = subprocess.run([*FINNSPLIT, "finn-build", str(bundle), "--estimates-only", "--partition", "0",
                           "--partition", "2"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and not BAR.search(done.stderr)
    assert done.stderr.count("unchanged, skipped") == 2, done.stderr

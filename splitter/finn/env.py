"""Which Python interpreter has FINN, and the environment FINN's steps run with (docs/finn.md#where-finn-runs).

finnsplit never imports FINN into its own process for estimates: FINN pins numpy, onnx and
onnxruntime versions finnsplit cannot share. It runs splitter.finn.worker in FINN's interpreter as a
subprocess, found in this order:

1. `$FINNSPLIT_FINN_PYTHON`, when set (an explicit choice wins);
2. the current interpreter, when it imports FINN's builder (inside FINN's docker);
3. `.venv-finn/bin/python` of this checkout or of the working directory (scripts/setup-finn.sh).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from splitter.finn.errors import FinnError

PYTHON_VARIABLE = "FINNSPLIT_FINN_PYTHON"
VENV = ".venv-finn"
CHECKOUT = Path(__file__).resolve().parents[2]  # the folder holding splitter/
# Prints FINN's version: the one setup-finn.sh records beside FINN's source (FINN's setup.py declares
# none, so pip says 0.0.0), else the package's.
PROBE = """
import json, importlib.metadata as m, pathlib, finn.builder.build_dataflow as b
tag = pathlib.Path(b.__file__).resolve().parents[3] / ".finnsplit-version"
print(json.dumps(tag.read_text().strip() if tag.is_file() else m.version("finn")))
"""


class FinnNotFoundError(FinnError):
    """No interpreter with FINN's builder was found; `tried` says where finnsplit looked and why each failed."""

    def __init__(self, tried: list[str]) -> None:
        super().__init__(
            "FINN was not found: " + "; ".join(tried)
            + ". Run `bash scripts/setup-finn.sh` (builds .venv-finn from ../shared/vendor), set "
            f"{PYTHON_VARIABLE} to a Python that has FINN, or run inside FINN's docker (docs/finn.md)"
        )
        self.tried = tried


@dataclass(frozen=True)
class FinnPython:
    """An interpreter that imports FINN's builder, and how finnsplit found it."""

    python: str
    source: str  # FINNSPLIT_FINN_PYTHON, "current interpreter" or ".venv-finn"
    finn_version: str
    env: dict[str, str] = field(default_factory=dict)  # added to the worker's environment

    def environment(self, build_dir: Path) -> dict[str, str]:
        """The worker's environment: this checkout importable; FINN_BUILD_DIR set, FINN_ROOT where known."""
        env = dict(os.environ)
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join([str(CHECKOUT), *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("FINN_BUILD_DIR", str(build_dir))
        env["PYTHONUNBUFFERED"] = "1"
        return env


def candidates() -> list[tuple[str, str]]:
    """(interpreter, source) in search order; only existing files, no duplicates."""
    out: list[tuple[str, str]] = []
    explicit = os.environ.get(PYTHON_VARIABLE)
    if explicit:
        return [(explicit, PYTHON_VARIABLE)]
    out.append((sys.executable, "current interpreter"))
    for root in dict.fromkeys([CHECKOUT, Path.cwd().resolve()]):
        venv_python = root / VENV / "bin" / "python"
        if venv_python.exists():
            out.append((str(venv_python), VENV))
    return out


@functools.lru_cache(maxsize=8)
def _probe(python: str) -> tuple[str | None, str]:
    """(FINN's version, "") if `python` imports FINN's builder, else (None, why not)."""
    try:
        done = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{python} does not run ({exc})"
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.strip()][-1:] or ["no output"]
        return None, f"{python} has no FINN ({last[0].strip()})"
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


def find_finn_python() -> FinnPython:
    """The first candidate interpreter that imports FINN's builder (FinnNotFoundError lists all tried)."""
    tried = []
    for python, source in candidates():
        version, why = _probe(python)
        if version is None:
            tried.append(f"{source}: {why}")
            continue
        env = {}
        if source == VENV:
            env["FINN_ROOT"] = os.environ.get("FINN_ROOT") or str(Path(python).parents[1] / "src" / "finn")
        return FinnPython(python, source, version, env)
    if not os.environ.get(PYTHON_VARIABLE):
        tried.append(f"no {VENV} in {CHECKOUT} or {Path.cwd()}")
    raise FinnNotFoundError(tried)

"""`finnsplit build`: lower, plan, write the bundle, and (where FINN is installed) build bitstreams.

Like FINN's builder, a build is a list of named steps `step(state, cfg) -> state`; the list is data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from core.errors import FinnsplitError
from core.manifest import sha256_file
from splitter.boards import Board, parse_board_list
from splitter.bundle.export import write_bundle
from splitter.cost import CostConfig
from splitter.folding import finn_set_folding
from splitter.graph import DataflowGraph
from splitter.partition import Plan, plan, plan_for
from splitter.progress import ProgressBar

Progress = Callable[[str], None]
FINN_MODES = ("auto", "yes", "no", "estimates")


@dataclass(frozen=True)
class BuildConfig:
    """One `finnsplit build` run; each field is a CLI option and a key of build.yaml (docs/config.md#build-config)."""

    model: str  # QONNX file exported by brevitas
    output: str = "build"  # bundle directory (replaced if it holds an older bundle)
    boards: str = "6"  # a count of `board`, or "zedboard:4,pynq-z2:2"
    board: str = "zedboard"  # board type when `boards` is a count
    strategy: str = "balanced"  # "balanced" (fastest pipeline) or "greedy" (the reference paper's)
    target_fps: float | None = None  # balanced: the fewest boards reaching it; greedy: FINN SetFolding's target
    power_cap_w: float | None = None  # balanced: the best plan whose predicted power stays within it
    # balanced: "fps" (fastest) or "fps-per-watt" (most frames per joule); with target_fps: "boards"
    # (the fewest, the default) or "power" (the least predicted power)
    objective: str = "fps"
    link_gbps: float | None = None  # override the boards' link rate
    replicate: bool = True  # balanced: spare boards may replicate the bottleneck stage
    thresholds: str = "choose"  # MVAU/VVAU thresholds: chosen per layer, or all "embedded" / "standalone"
    input_spec: object = None  # splitter.lowering.InputSpec, or None for the model's own / the zoo's
    finn: str = "auto"  # FINN: bitstreams "auto" when installed, "yes" (required), "no", or "estimates" only
    finn_jobs: int = 1  # --finn estimates: partitions run at once


@dataclass
class BuildState:
    """What the steps have produced so far."""

    model: onnx.ModelProto | None = None
    graph: DataflowGraph | None = None
    plan: Plan | None = None
    manifest: Path | None = None
    bitfiles: list[Path] = field(default_factory=list)
    finn_estimates: list = field(default_factory=list)  # splitter.finn.estimates.EstimateResult per partition
    notes: list[str] = field(default_factory=list)  # for the user, printed after the table


def step_lower(state: BuildState, cfg: BuildConfig, progress: Progress) -> BuildState:
    """Read the QONNX model and lower it to dataflow layers."""
    from splitter.load import load_and_lower

    state.model, state.graph = load_and_lower(cfg.model, cfg.input_spec)
    progress(f"lowered {cfg.model}: {len(state.graph.layers)} dataflow layers")
    return state


def step_plan(state: BuildState, cfg: BuildConfig, progress: Progress) -> BuildState:
    """Choose cut points and foldings."""
    boards = parse_board_list(cfg.boards, cfg.board)
    graph = state.graph
    folds = None
    if cfg.strategy == "greedy" and cfg.target_fps is not None:
        board = boards[0]
        folds = finn_set_folding(graph.layers, board, graph.tensors, board.clock_hz / cfg.target_fps)
    progress(f"planning ({cfg.strategy}) on {_describe(boards)}")
    searching = SearchBar()
    common = {"link_gbps": cfg.link_gbps, "cfg": CostConfig(thresholds=cfg.thresholds), "replicate": cfg.replicate,
              "on_probe": searching}
    try:
        if cfg.strategy == "greedy":
            state.plan = plan(graph.layers, graph.tensors, boards, "greedy", greedy_foldings=folds, **common)
        elif cfg.target_fps is not None:
            state.plan = plan(graph.layers, graph.tensors, boards, "balanced", target_fps=cfg.target_fps,
                              least_power=cfg.objective == "power", **common)
        elif cfg.power_cap_w is not None or cfg.objective != "fps":
            state.plan = plan_for(graph.layers, graph.tensors, boards, cfg.objective, cfg.power_cap_w, **common)
        else:
            state.plan = plan(graph.layers, graph.tensors, boards, "balanced", **common)
    finally:
        searching.close()
    if state.plan.gap > 1e-9:
        state.notes.append(f"the search's fronts were cut: no plan is faster than {state.plan.fps_bound:.1f} fps, "
                           f"this one reaches {state.plan.fps:.1f} ({100 * state.plan.gap:.1f}% below that bound)")
    return state


def step_export(state: BuildState, cfg: BuildConfig, progress: Progress) -> BuildState:
    """Write the bundle: sub-models, programs, FINN configs, manifest."""
    source = {"file": Path(cfg.model).name, "sha256": sha256_file(Path(cfg.model))}
    with ProgressBar("exporting", len(state.plan.partitions), unit="partitions") as bar:
        started = [0]

        def counting(message: str) -> None:  # write_bundle says "writing partition K: ..." as it starts each one
            if message.startswith("writing partition "):
                bar.set(started[0])  # the ones before it are written
                started[0] += 1
            progress(message)

        state.manifest = write_bundle(state.model, state.graph, state.plan, cfg.output, source, counting)
        bar.set(bar.total)
    progress(f"wrote {state.manifest}")
    return state


def step_finn(state: BuildState, cfg: BuildConfig, progress: Progress) -> BuildState:
    """Run FINN: to bitstreams where FINN and Vivado are installed, or only to its estimates."""
    from splitter.finn import finn_status, run_builds

    if cfg.finn == "no":
        return state
    if cfg.finn == "estimates":
        from splitter.finn.estimates import run_estimates

        state.finn_estimates = run_estimates(state.manifest.parent, None, cfg.finn_jobs, log=progress)
        mismatches = [f"partition {r.index}: {m}" for r in state.finn_estimates for m in r.comparison["mismatches"]]
        if mismatches:
            raise FinnsplitError("FINN's estimates disagree with the plan:\n  " + "\n  ".join(mismatches))
        return state
    status = finn_status()
    if not status.available:
        if cfg.finn == "yes":
            raise FinnsplitError(f"--finn yes: FINN is not usable here: {status.why}")
        why = status.why.split(";")[0]
        state.notes.append(f"FINN with Vivado not found ({why}): bitstreams not built; inside FINN's docker run "
                           f"`finnsplit finn-build {cfg.output}`; FINN's estimates without Vivado: "
                           f"`finnsplit finn-build {cfg.output} --estimates-only` (docs/finn.md)")
        return state
    state.bitfiles = run_builds(state.manifest.parent, None, progress)
    return state


STEPS: list[tuple[str, Callable[[BuildState, BuildConfig, Progress], BuildState]]] = [
    ("lower", step_lower),
    ("plan", step_plan),
    ("export", step_export),
    ("finn", step_finn),
]


def build(cfg: BuildConfig, progress: Progress = lambda _: None, steps: list | None = None) -> BuildState:
    """Run `steps` (default: all of STEPS) in order."""
    if cfg.finn not in FINN_MODES:
        raise FinnsplitError(f"--finn {cfg.finn!r}: expected one of {', '.join(FINN_MODES)}")
    state = BuildState()
    for _, step in steps or STEPS:
        state = step(state, cfg, progress)
    return state


class SearchBar:
    """The balanced search's probes (`plan(on_probe=...)`) on a bar; a new bar for each pass (front limit)."""

    def __init__(self) -> None:
        """No bar until the search reports."""
        self.bar: ProgressBar | None = None
        self.passes = 0
        self.began = time.monotonic()  # the current pass's start

    def __call__(self, done: int, total: int) -> None:
        """`done` of `total` probes of the current pass are finished."""
        if self.bar is None or done < self.bar.done or total != self.bar.total:
            self.close()
            self.passes += 1
            self.bar = ProgressBar("planning" + (f", pass {self.passes}" if self.passes > 1 else ""), total,
                                   unit="searches", start=self.began)
        self.bar.set(done)

    def close(self) -> None:
        """End the current bar's line."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.began = time.monotonic()


def _describe(boards: list[Board]) -> str:
    counts: dict[str, int] = {}
    for b in boards:
        counts[b.name] = counts.get(b.name, 0) + 1
    return ", ".join(f"{n} x {name}" for name, n in counts.items())

"""`finnsplit calibrate`: FINN report files in FINN's layout, fitted factors, the file, the cost model's term."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.calibrate import calibrate
from core.errors import FinnsplitError
from splitter.boards import BUILTIN_DIR, known_boards, load_board
from splitter.build import BuildConfig, BuildState, build
from splitter.cost import Resources, layer_cost, partition_resources
from splitter.cost.calibration import (
    Calibration,
    CalibrationFileError,
    Factor,
    Sample,
    calibration_path,
    fit,
    read_calibration,
    to_json,
    write_calibration,
)
from splitter.cost.model import CORRECTIONS
from splitter.cost.reports import MixedBoardsError, ReportError, UnknownNodeError
from splitter.partition import plan

# Per-node post-synthesis amounts the reports say, as multiples of the prediction: LUT (1 + k) x on
# the k-th node of a partition (so the fit must be a ratio of sums, not a mean of ratios), FF 3 x,
# BRAM18 2 x (all as RAMB36, which FINN's report counts apart), DSP 1 x.
FF_RATIO, BRAM_RATIO = 3, 2


@pytest.fixture(scope="module")
def boards_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A board directory with a copy of zedboard.yaml and a smaller "tinyzed" that TFC needs two of."""
    directory = tmp_path_factory.mktemp("boards")
    text = (BUILTIN_DIR / "zedboard.yaml").read_text()
    (directory / "zedboard.yaml").write_text(text)
    tiny = text.replace("name: zedboard", "name: tinyzed").replace("  lut: 53200 ", "  lut: 10500 ")
    assert tiny != text
    (directory / "tinyzed.yaml").write_text(tiny)
    return directory


@pytest.fixture(scope="module")
def tfc(tmp_path_factory: pytest.TempPathFactory, boards_dir: Path) -> tuple[Path, BuildState]:
    """The TFC zoo model built for two tinyzed boards (two partitions, FINN not run): (bundle, state)."""
    from splitter.zoo import export

    root = tmp_path_factory.mktemp("tfc")
    export("tfc-w2a2", root / "tfc.onnx", seed=0)
    state = build(BuildConfig(model=str(root / "tfc.onnx"), output=str(root / "bundle"),
                              boards=f"{boards_dir / 'tinyzed.yaml'}:2", finn="no", thresholds="embedded"))
    assert len(state.plan.partitions) == 2
    return root / "bundle", state


def manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def predicted(entry: dict) -> Resources:
    """finn + corrections (but an earlier calibration's) of one manifest layer, as the test reads the manifest."""
    f = entry["finn"]
    total = Resources(lut=f["LUT"], bram18=f["BRAM_18K"], uram=f["URAM"], dsp=f["DSP"])
    for name, amounts in entry["corrections"].items():
        if name != "calibration":
            total = total + Resources.from_mapping(amounts)
    return total


def lut_factor(bundle: Path, impl: str = "MVAU_hls") -> float:
    """The LUT factor write_reports makes for `impl`: sum of (1 + k) x prediction over sum of predictions."""
    layers = [(k, e) for part in manifest(bundle)["partitions"] for k, e in enumerate(part["predicted"]["layers"])
              if e["impl"] == impl]
    return sum((1 + k) * predicted(e).lut for k, e in layers) / sum(predicted(e).lut for _, e in layers)


def post_synth_entry(lut: float, ff: float, bram18: float, dsp: float) -> dict:
    """One instance row as FINN's post_synth_res returns it (Zynq: no URAM column)."""
    return {"LUT": lut, "SRL": 0, "FF": ff, "BRAM_36K": bram18 / 2, "BRAM_18K": 0, "DSP": dsp}


def write_reports(bundle: Path) -> None:
    """finn_output/report/ of every partition in FINN's layout, post-synthesis at the ratios above."""
    for part in manifest(bundle)["partitions"]:
        report = bundle / part["dir"] / "finn_output" / "report"
        report.mkdir(parents=True, exist_ok=True)
        layers = part["predicted"]["layers"]
        estimates = {e["node"]: {"BRAM_18K": e["finn"]["BRAM_18K"], "BRAM_efficiency": 1, "LUT": e["finn"]["LUT"],
                                 "URAM": 0, "URAM_efficiency": 1, "DSP": e["finn"]["DSP"]} for e in layers}
        estimates["total"] = {k: sum(e[k] for e in estimates.values()) for k in ("BRAM_18K", "LUT", "URAM", "DSP")}
        (report / "estimate_layer_resources.json").write_text(json.dumps(estimates, indent=2))
        # ZynqBuild names kernel nodes StreamingDataflowPartition_1_<node>; IODMAs sit in their own partitions
        post = {"(top)": post_synth_entry(20000, 25000, 40, 200),
                "IODMA_hls_0": post_synth_entry(1500, 2000, 2, 0),
                "StreamingDataflowPartition_1_StreamingFIFO_rtl_0": post_synth_entry(40, 60, 0, 0)}
        for k, entry in enumerate(layers):
            p = predicted(entry)
            post[f"StreamingDataflowPartition_1_{entry['node']}"] = post_synth_entry(
                (1 + k) * p.lut, FF_RATIO * p.ff, BRAM_RATIO * p.bram18, p.dsp)
        (report / "post_synth_resources.json").write_text(json.dumps(post, indent=2))


@pytest.fixture
def reported(tfc: tuple[Path, BuildState], tmp_path: Path) -> Path:
    """A copy of the TFC bundle with FINN's reports written into each partition."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tfc[0], bundle)
    write_reports(bundle)
    return bundle


def run(*args: str) -> tuple[str, BaseException | None]:
    result = CliRunner().invoke(calibrate, list(args))
    return result.output, result.exception


def test_shipped_boards_carry_no_calibration() -> None:
    assert all(load_board(name).calibration is None for name in known_boards())
    assert "calibration" in CORRECTIONS


def test_fit_is_a_ratio_of_sums_skipping_zero_predictions() -> None:
    samples = [
        Sample("MVAU_hls", "MVAU_hls_0", Resources(lut=100, dsp=4), {"lut": 150, "dsp": 4, "bram18": 2}),
        Sample("MVAU_hls", "MVAU_hls_1", Resources(lut=300), {"lut": 300, "dsp": 9}),  # DSP predicted 0: skipped
        Sample("Thresholding_rtl", "Thresholding_rtl_0", Resources(lut=50, bram18=2), {"lut": 80, "bram18": 1}),
    ]
    got = {(f.impl, f.resource): (f.factor, f.samples, f.predicted, f.post_synth) for f in fit(samples)}
    assert got == {
        ("MVAU_hls", "lut"): (450 / 400, 2, 400, 450),  # not the mean ratio (1.5 + 1.0) / 2
        ("MVAU_hls", "dsp"): (1.0, 1, 4, 4),
        ("Thresholding_rtl", "lut"): (80 / 50, 1, 50, 80),
        ("Thresholding_rtl", "bram18"): (0.5, 1, 2, 1),
    }


def test_calibrate_a_bundle_fits_the_factors(reported: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.calibration.json"
    output, exc = run(str(reported), "--output", str(out))
    assert exc is None, output
    everything = [e for part in manifest(reported)["partitions"] for e in part["predicted"]["layers"]]
    assert len({e["node"] for e in everything}) < len(everything)  # node names repeat across the two partitions
    layers = [e for e in everything if e["impl"] == "MVAU_hls"]
    lut = lut_factor(reported)
    cal = read_calibration(out)
    assert cal.board == "tinyzed" and cal.basis == "finnsplit" and len(cal.sources) == 2
    hls = {f.resource: f.samples for f in cal.factors if f.impl == "MVAU_hls"}
    assert hls == {"lut": len(layers), "ff": len(layers), "bram18": len(layers), "dsp": len(layers)}
    assert cal.factor("MVAU_hls", "lut") == pytest.approx(lut, rel=1e-12)
    assert cal.factor("MVAU_hls", "ff") == pytest.approx(FF_RATIO, rel=1e-12)
    assert cal.factor("MVAU_hls", "bram18") == pytest.approx(BRAM_RATIO, rel=1e-12)
    assert cal.factor("MVAU_hls", "dsp") == pytest.approx(1.0, rel=1e-12)
    assert cal.factor("MVAU_hls", "uram") is None  # predicted 0 everywhere
    assert "MVAU_hls" in output and f"{lut:.4f}" in output and f"wrote {out}" in output


def test_dry_run_writes_nothing(reported: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.calibration.json"
    output, exc = run(str(reported / "partition-0"), str(reported / "partition-1" / "finn_output"),
                      "--output", str(out), "--dry-run")
    assert exc is None, output
    assert "dry run: would write" in output and not out.exists()


def test_calibration_file_round_trips(tmp_path: Path) -> None:
    cal = Calibration("zedboard", "finnsplit", (Factor("MVAU_hls", "lut", 1.25, 3, 400.0, 500.0),
                                                 Factor("MVAU_hls", "dsp", 0.5, 1, 4.0, 2.0)),
                      ("a/post_synth_resources.json",), "2025-01-01T00:00:00Z")
    path = write_calibration(cal, tmp_path / "sub" / "zedboard.calibration.json")
    assert read_calibration(path) == cal
    data = json.loads(path.read_text())
    assert data["format"] == "finnsplit-calibration" and data["version"] == 1 and "skipped" in data["note"]
    assert data["factors"]["MVAU_hls"]["lut"] == {"factor": 1.25, "samples": 3, "predicted": 400.0,
                                                  "post_synth": 500.0}


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d.update(version=2), "version"),
    (lambda d: d.pop("board"), "board"),
    (lambda d: d.update(basis="vivado"), "basis"),
    (lambda d: d["factors"]["MVAU_hls"]["lut"].update(factor="big"), "factors.MVAU_hls.lut.factor"),
    (lambda d: d["factors"]["MVAU_hls"].update(lutram={"factor": 1, "samples": 1}), "factors.MVAU_hls.lutram"),
])
def test_malformed_calibration_files_name_the_field(tmp_path: Path, change, field: str) -> None:
    cal = Calibration("zedboard", "finnsplit", (Factor("MVAU_hls", "lut", 1.25, 3, 400.0, 500.0),), (), "now")
    data = to_json(cal)
    change(data)
    path = tmp_path / "c.calibration.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationFileError, match=f"field '{field}'") as info:
        read_calibration(path)
    assert str(path) in str(info.value) and "expected" in str(info.value)
    path.write_text("{not json")
    with pytest.raises(CalibrationFileError, match="expected JSON"):
        read_calibration(path)


def test_load_board_picks_up_the_calibration(reported: Path, boards_dir: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "boards"
    shutil.copytree(boards_dir, directory)
    monkeypatch.setenv("FINNSPLIT_BOARD_PATH", str(directory))
    assert load_board("tinyzed").calibration is None
    output, exc = run(str(reported))  # default: beside the board file
    assert exc is None, output
    path = directory / "tinyzed.calibration.json"
    assert path == calibration_path(load_board("tinyzed").path) and f"wrote {path}" in output
    board = load_board("tinyzed")
    assert board.calibration == read_calibration(path)
    assert load_board(directory / "tinyzed.yaml").calibration == board.calibration  # by path as well
    hash(board)  # Boards stay hashable with a calibration
    # a calibration of another board beside a board file is refused
    shutil.copy(path, directory / "zedboard.calibration.json")
    with pytest.raises(CalibrationFileError, match=r"field 'board'.*found 'tinyzed'"):
        load_board("zedboard")


def test_layer_cost_adds_exactly_the_calibration_term(tfc: tuple[Path, BuildState]) -> None:
    _, state = tfc
    board = state.plan.partitions[0].board
    factors = (Factor("MVAU_hls", "lut", 1.5, 1, 1, 1), Factor("MVAU_hls", "dsp", 0.5, 1, 1, 1))
    calibrated = dataclasses.replace(board, calibration=Calibration(board.name, "finnsplit", factors))
    for p in state.plan.partitions:
        for layer, folding in zip(state.graph.layers[p.start:p.stop], p.foldings, strict=True):
            before = layer_cost(layer, folding, board, state.graph.tensors)
            after = layer_cost(layer, folding, calibrated, state.graph.tensors)
            if before.impl != "MVAU_hls":  # the plan may build a layer as MVAU_rtl: no factors for it
                assert after == before
                continue
            assert before.correction("calibration") == Resources()
            assert after.corrections[:-1] == before.corrections and after.finn == before.finn
            assert after.corrections[-1] == ("calibration", Resources(lut=0.5 * before.resources.lut,
                                                                      dsp=-0.5 * before.resources.dsp))
            assert after.resources.lut == pytest.approx(1.5 * before.resources.lut)
    # basis "finn": the factor scales FINN's own estimate, which then replaces the corrections
    finn_based = dataclasses.replace(board, calibration=Calibration(board.name, "finn", factors[:1]))
    p = state.plan.partitions[0]
    after = layer_cost(state.graph.layers[p.start], p.foldings[0], finn_based, state.graph.tensors)
    assert after.resources.lut == pytest.approx(1.5 * after.finn.lut)
    # an impl without factors gets no term
    other = dataclasses.replace(board, calibration=Calibration(board.name, "finnsplit",
                                                               (Factor("VVAU_hls", "lut", 2.0, 1, 1, 1),)))
    assert layer_cost(state.graph.layers[p.start], p.foldings[0], other, state.graph.tensors).correction(
        "calibration") == Resources()


def test_a_plan_with_a_lut_factor_of_two_uses_more_lut(tfc: tuple[Path, BuildState]) -> None:
    _, state = tfc
    zed = load_board("zedboard")
    cal = Calibration("zedboard", "finnsplit", (Factor("MVAU_hls", "lut", 2.0, 1, 1, 1),))
    doubled = dataclasses.replace(zed, calibration=cal)
    layers, tensors = state.graph.layers, state.graph.tensors
    plain, more = (plan(layers, tensors, [b], "greedy").partitions[0] for b in (zed, doubled))
    assert more.foldings == plain.foldings
    assert more.resources.lut > plain.resources.lut
    layer_lut = sum(c.resources.lut for c in plain.costs if c.impl == "MVAU_hls")
    assert more.resources.lut == pytest.approx(plain.resources.lut + layer_lut)
    # the balanced planner sees the calibrated costs too
    best = plan(layers, tensors, [doubled], "balanced").partitions[0]
    same = [layer_cost(x, f, zed, tensors) for x, f in zip(layers, best.foldings, strict=True)]
    assert best.resources.lut == pytest.approx(partition_resources(same, zed).lut + sum(
        n.resources.lut for c in same for n in c.nodes if n.impl == "MVAU_hls"))


def test_bare_finn_reports_fit_against_finns_estimates(reported: Path, tmp_path: Path) -> None:
    finn_out = tmp_path / "finn_out"
    shutil.copytree(reported / "partition-0" / "finn_output", finn_out)
    out = tmp_path / "c.json"
    output, exc = run(str(finn_out), "--output", str(out))
    assert isinstance(exc, MixedBoardsError) and "--board" in str(exc)
    output, exc = run(str(finn_out / "report"), "--board", "zedboard", "--output", str(out))
    assert exc is None, output
    cal = read_calibration(out)
    layers = manifest(reported)["partitions"][0]["predicted"]["layers"]
    post = json.loads((finn_out / "report" / "post_synth_resources.json").read_text())
    measured = sum(post[f"StreamingDataflowPartition_1_{e['node']}"]["LUT"] for e in layers)
    assert cal.basis == "finn" and cal.board == "zedboard"
    assert cal.factor("MVAU_hls", "lut") == pytest.approx(measured / sum(e["finn"]["LUT"] for e in layers))
    assert cal.factor("MVAU_hls", "ff") is None  # FINN estimates no FFs: nothing to scale


def test_report_errors(reported: Path, tfc: tuple[Path, BuildState], tmp_path: Path) -> None:
    # no post-synthesis report anywhere
    _, exc = run(str(tfc[0]))
    assert isinstance(exc, ReportError) and "post_synth_resources.json" in str(exc) and "none in" in str(exc)
    _, exc = run(str(tmp_path))
    assert isinstance(exc, ReportError) and "manifest.json (bundle)" in str(exc)
    report = reported / "partition-1" / "finn_output" / "report" / "post_synth_resources.json"
    # a node the plan does not have
    post = json.loads(report.read_text())
    post["StreamingDataflowPartition_1_MVAU_hls_9"] = post_synth_entry(1, 1, 0, 0)
    report.write_text(json.dumps(post))
    _, exc = run(str(reported), "--dry-run")
    assert isinstance(exc, UnknownNodeError) and exc.node == "StreamingDataflowPartition_1_MVAU_hls_9"
    assert str(report) in str(exc) and "manifest.json" in str(exc)
    # a malformed amount, then malformed JSON
    post.pop("StreamingDataflowPartition_1_MVAU_hls_9")
    node = next(n for n in post if "MVAU" in n)
    post[node]["LUT"] = "many"
    report.write_text(json.dumps(post))
    _, exc = run(str(reported), "--dry-run")
    assert isinstance(exc, ReportError) and f"'{node}.LUT'" in str(exc) and "'many'" in str(exc)
    report.write_text("{")
    _, exc = run(str(reported), "--dry-run")
    assert isinstance(exc, ReportError) and str(report) in str(exc) and "invalid JSON" in str(exc)
    assert isinstance(exc, FinnsplitError)  # main() prints these without a traceback


def test_reports_of_two_boards_need_board(reported: Path, tfc: tuple[Path, BuildState], boards_dir: Path,
                                          tmp_path: Path) -> None:
    model = tfc[0].parent / "tfc.onnx"
    boards = f"{boards_dir / 'zedboard.yaml'}:1"
    state = build(BuildConfig(model=str(model), output=str(tmp_path / "zed"), boards=boards, finn="no"))
    other = state.manifest.parent
    write_reports(other)
    _, exc = run(str(reported), str(other), "--dry-run")
    assert isinstance(exc, MixedBoardsError)
    assert "tinyzed" in str(exc) and "zedboard" in str(exc) and "--board" in str(exc)
    out = tmp_path / "pooled.json"
    output, exc = run(str(reported), str(other), "--board", str(boards_dir / "tinyzed.yaml"), "--output", str(out))
    assert exc is None, output
    assert "is of board zedboard" in output and read_calibration(out).board == "tinyzed"


def test_recalibrating_a_calibrated_plan_fits_against_the_uncalibrated_cost(
        tfc: tuple[Path, BuildState], boards_dir: Path, tmp_path: Path) -> None:
    directory = tmp_path / "boards"
    shutil.copytree(boards_dir, directory)
    old = Calibration("tinyzed", "finnsplit", (Factor("MVAU_hls", "lut", 2.0, 1, 1, 1),))
    write_calibration(old, directory / "tinyzed.calibration.json")
    state = build(BuildConfig(model=str(tfc[0].parent / "tfc.onnx"), output=str(tmp_path / "b"),
                              boards=f"{directory / 'tinyzed.yaml'}:2", finn="no", thresholds="embedded"))
    bundle = state.manifest.parent
    layers = [e for part in manifest(bundle)["partitions"] for e in part["predicted"]["layers"]]
    assert all("calibration" in e["corrections"] for e in layers if e["impl"] == "MVAU_hls")  # the old factor
    write_reports(bundle)
    output, exc = run(str(bundle), "--output", str(tmp_path / "new.json"))
    assert exc is None, output
    # relative to the cost before calibration, not to the doubled one (that would halve the factor)
    assert read_calibration(tmp_path / "new.json").factor("MVAU_hls", "lut") == pytest.approx(lut_factor(bundle))

"""Golden baselines: FINN v0.10.1's own per-layer estimates of zoo partitions (hls4ml style).

Each file in tests/data/finn_golden/ holds, per partition of one zoo model split for one board list,
the layer range, every layer's folding (the cost model's Folding: PE, SIMD, memory, implementation)
and, per FINN node the layer becomes, FINN's estimate_layer_cycles / estimate_layer_resources, as
FINN's estimate flow reported them. Made by running this tier:

    .venv/bin/python tests/finn_golden.py            # rewrites tests/data/finn_golden/*.json

The tests compare the cost model with them without FINN (test_finn_golden.py), and FINN today with
them (a changed FINN environment shows up as a diff). Tolerances are per metric, relative.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

GOLDEN_DIR = Path(__file__).parent / "data" / "finn_golden"
# (zoo model, board list): Zynq-7000 and Zynq UltraScale+, every layer type of the zoo
CASES = [
    ("mobilenet-v1-w4a4", "zedboard:6"),
    ("mobilenet-v1-w4a4", "zcu104:2"),
    ("cnv-w2a2", "zedboard:2"),
    ("cnv-w2a2", "kv260:1"),
    ("tfc-w2a2", "pynq-z2:1"),
]
METRICS = ("cycles", "LUT", "BRAM_18K", "URAM", "DSP")
# FINN's term of the cost model implements FINN's own formulas, so every tolerance is 0; a metric
# that needs slack gets it here with the reason beside it.
TOLERANCE = {"cycles": 0.0, "LUT": 0.0, "BRAM_18K": 0.0, "URAM": 0.0, "DSP": 0.0}


def golden_path(model: str, boards: str) -> Path:
    """Where the baseline of `model` split for `boards` lives."""
    return GOLDEN_DIR / f"{model}_{boards.replace(':', '-').replace(',', '_')}.json"


def folding_of(entry: dict):
    """The cost model's Folding recorded in a baseline."""
    from splitter.cost import Folding

    return Folding(**entry)


def within(metric: str, got: float, want: float) -> bool:
    """True when `got` is within the metric's relative tolerance of `want`."""
    return abs(got - want) <= TOLERANCE[metric] * max(abs(want), 1.0) + 1e-9


def from_bundle(bundle: Path, plan, model: str, boards: str) -> dict:
    """The baseline of a bundle (and its plan) whose partitions went through FINN's estimate flow."""
    import dataclasses

    manifest = json.loads((bundle / "manifest.json").read_text())
    parts = []
    for part, planned in zip(manifest["partitions"], plan.partitions, strict=True):
        out = bundle / part["dir"] / "finn_estimates"
        cycles = json.loads((out / "report" / "estimate_layer_cycles.json").read_text())
        res = json.loads((out / "report" / "estimate_layer_resources.json").read_text())
        nodes = iter(part["predicted"]["layers"])
        layers = []
        for name, folding, cost in zip(planned.layer_names, planned.foldings, planned.costs, strict=True):
            entries = [next(nodes) for _ in cost.nodes]
            assert all(e["layer"] == name for e in entries)
            layers.append({"layer": name, "folding": dataclasses.asdict(folding), "nodes": [
                {"node": e["node"], "cycles": cycles[e["node"]], **{k: res[e["node"]][k] for k in METRICS[1:]}}
                for e in entries]})
        parts.append({"index": part["index"], "board": part["board"], "start": planned.start, "stop": planned.stop,
                      "layers": layers})
    finn = manifest["partitions"][0]["finn_estimates"]["finn_version"]
    return {"model": model, "seed": 0, "boards": boards, "finn_version": finn, "tolerance": TOLERANCE,
            "partitions": parts}


def make(model: str, boards: str, zoo_dir: Path, work: Path) -> dict:
    """Export, build and run FINN's estimate flow; return the baseline."""
    from splitter.build import BuildConfig, build
    from splitter.finn.estimates import run_estimates
    from splitter.zoo import export

    onnx_path = zoo_dir / f"{model}.onnx"
    if not onnx_path.is_file():
        export(model, onnx_path, seed=0)
    bundle = work / f"{model}_{boards}"
    state = build(BuildConfig(model=str(onnx_path), output=str(bundle), boards=boards, finn="no"))
    run_estimates(bundle, jobs=2, log=print)
    return from_bundle(bundle, state.plan, model, boards)


def main() -> int:
    """Rewrite every baseline from the real FINN."""
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for model, boards in CASES:
            golden = make(model, boards, Path(tmp), Path(tmp))
            golden_path(model, boards).write_text(json.dumps(golden, indent=1) + "\n")
            print(f"wrote {golden_path(model, boards)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())

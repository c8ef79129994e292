"""Human-readable tables of a plan (the `finnsplit build` summary and benchmarks)."""

from __future__ import annotations

from splitter.partition import Plan


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def format_plan(plan: Plan) -> str:
    """Per-board table (layers, LUT/BRAM/DSP %, cycles, fps, bytes out, watts) and the pipeline line."""
    rows = plan.rows()
    width = max(len("layers"), *(len(str(r["layers"])) for r in rows))
    lines = [f"  {'#':>2} {'board':<10} {'x':>2} {'layers':<{width}} {'LUT%':>5} {'BRAM%':>6} {'DSP%':>5} "
             f"{'cycles':>9} {'fps':>9} {'bytes out':>9} {'W':>5}"]
    for r in rows:
        lines.append(f"  {r['partition']:>2} {r['board']:<10} {r['replicas']:>2} {r['layers']:<{width}} "
                     f"{r['lut_pct']:5.1f} {r['bram_pct']:6.1f} {r['dsp_pct']:5.1f} {r['cycles']:>9,} "
                     f"{r['fps']:9.1f} {r['bytes_out']:>9,} {r['power_w']:5.2f}")
    unused = f"; {_plural(len(plan.unused_boards), 'board')} unused" if plan.unused_boards else ""
    lines.append(f"  pipeline: {plan.fps:.1f} fps predicted, limited by {plan.limited_by}; "
                 f"{_plural(plan.boards_used, 'board')}, {plan.power_w:.2f} W, {plan.fps / plan.power_w:.2f} fps/W"
                 f"{unused}")
    return "\n".join(lines)


def format_finn_estimates(results: list, verified_frames: int = 0) -> str:
    """Per partition: FINN's max cycles and resources beside the plan's (FINN term; corrections apart)."""
    lines = [f"  {'#':>2} {'FINN max cycles':>15} {'plan':>9} {'fps (FINN)':>10}  {'LUT FINN/plan':>15} "
             f"{'BRAM18':>11} {'URAM':>7} {'DSP':>9}  {'corrections (plan)':<24} agreement"]
    for r in sorted(results, key=lambda r: r.index):
        perf = r.summary["reports"]["estimate_network_performance"]
        total = r.summary["reports"]["estimate_layer_resources"].get("total", {})
        plan = r.comparison.get("plan_finn_terms", {})
        corrections: dict[str, float] = {}
        for layer in r.comparison.get("layers", []):
            for name, res in layer.get("corrections", {}).items():
                corrections[name] = corrections.get(name, 0.0) + res.get("lut", 0.0)
        extra = ", ".join(f"{n} {v:,.0f}" for n, v in sorted(corrections.items()) if n != "ff" and v) or "-"
        mism = r.comparison.get("mismatches", [])
        agree = "exact" if not mism else f"{len(mism)} mismatch(es)"
        pair = {key: f"{total.get(key, 0):,.0f}/{plan.get(key, 0):,.0f}" for key in ("LUT", "BRAM_18K", "URAM", "DSP")}
        lines.append(f"  {r.index:>2} {perf['max_cycles']:>15,} {r.comparison.get('plan_max_cycles', 0):>9,} "
                     f"{perf['estimated_throughput_fps']:>10.1f}  {pair['LUT']:>15} {pair['BRAM_18K']:>11} "
                     f"{pair['URAM']:>7} {pair['DSP']:>9}  {extra:<24.24} {agree}"
                     + (" (skipped: unchanged)" if r.status == "skipped" else ""))
    if verified_frames:
        lines.append(f"  FINN's execution checked on {verified_frames} frame(s) per partition against the executor")
    return "\n".join(lines)

"""Human-readable tables of a plan (the `finnsplit build` summary and benchmarks)."""

from __future__ import annotations

from splitter.partition import Plan


def format_plan(plan: Plan) -> str:
    """Per-board table (layers, LUT/BRAM/DSP %, cycles, fps, bytes out, watts) and the pipeline line."""
    lines = [f"  {'#':>2} {'board':<10} {'x':>2} {'layers':<40} {'LUT%':>5} {'BRAM%':>6} {'DSP%':>5} "
             f"{'cycles':>9} {'fps':>8} {'bytes out':>9} {'W':>5}"]
    for r in plan.rows():
        lines.append(f"  {r['partition']:>2} {r['board']:<10} {r['replicas']:>2} {r['layers']:<40} "
                     f"{r['lut_pct']:5.1f} {r['bram_pct']:6.1f} {r['dsp_pct']:5.1f} {r['cycles']:>9,} "
                     f"{r['fps']:8.1f} {r['bytes_out']:>9,} {r['power_w']:5.2f}")
    unused = f"; {len(plan.unused_boards)} boards unused" if plan.unused_boards else ""
    lines.append(f"  pipeline: {plan.fps:.1f} fps predicted, limited by {plan.limited_by}; "
                 f"{plan.boards_used} boards, {plan.power_w:.2f} W{unused}")
    return "\n".join(lines)

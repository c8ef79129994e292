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
                 f"{_plural(plan.boards_used, 'board')}, {plan.power_w:.2f} W{unused}")
    return "\n".join(lines)

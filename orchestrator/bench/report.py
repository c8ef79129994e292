"""The report of `finnsplit bench`: a table on stdout, bench.json, bench.png and a self-contained bench.html.

The figure follows the reference paper's Fig. 4 (average time per task for one inference on each
board: waiting/receiving, FPGA, sending), with the plan's prediction beside every board, then the
resources per board and measured vs predicted throughput. Formats: docs/bench.md.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from orchestrator.bench.measure import BenchResult, Prediction

COLORS = {"wait": "#1f77b4", "compute": "#ff7f0e", "send": "#2ca02c"}  # the paper's blue, orange, green
# resources in colours of their own, not the times'
RESOURCES = (("lut", "LUT", "#9467bd"), ("bram18", "BRAM18", "#8c564b"), ("dsp", "DSP", "#7f7f7f"))


def _lat(lat: dict[str, float]) -> str:
    return f"p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms, p99 {lat['p99']:.2f} ms"


def summary_lines(r: BenchResult) -> list[str]:
    """Throughput and latency, one line each."""
    return [f"bench {r.bundle}: {r.setup}",
            f"throughput {r.fps:.1f} fps measured, {r.predicted_fps:.1f} fps predicted -> ratio {r.ratio:.3f} "
            f"({r.frames} frames, at most {r.window} in flight; predicted limit: {r.limited_by})",
            f"latency, one frame in flight: {_lat(r.latency_ms)} (predicted {r.predicted_latency_ms:.2f} ms: "
            "each board's transfer in and compute, store and forward)",
            f"latency under load ({r.window} in flight): {_lat(r.loaded_latency_ms)}"]


def table(r: BenchResult) -> str:
    """The summary and one row per board: its time per frame by stage, measured / predicted, and resources."""
    lines = summary_lines(r)
    lines.append("per board, µs per frame (the board's own stats; predicted: bytes / link rate, cycles / clock):")
    lines.append(f"  {'stage':>5} {'board':<10} {'node':<14} {'frames':>7} {'recv':>13} {'buf wait':>8} "
                 f"{'compute':>15} {'send':>13} {'LUT%':>5} {'BRAM%':>5} {'DSP%':>5} {'W':>5}")
    pred = {p.stage: p for p in r.predictions}
    for b in r.boards:
        p = pred[b.stage]
        u = p.utilization_pct
        lines.append(f"  {b.stage:>5} {p.board:<10} {b.node:<14} {b.frames:>7} "
                     f"{b.recv_us:>6.0f}/{p.recv_us:<6.0f} {b.recv_wait_us:>8.0f} "
                     f"{b.compute_us:>7.0f}/{p.compute_us:<7.0f} {b.send_us:>6.0f}/{p.send_us:<6.0f} "
                     f"{u.get('lut', 0):>5.1f} {u.get('bram18', 0):>5.1f} {u.get('dsp', 0):>5.1f} {p.power_w:>5.2f}")
    lines.append(f"  period: {1e6 / r.fps:.0f} µs per frame measured, {1e6 / r.predicted_fps:.0f} predicted")
    return "\n".join(lines)


def figure_png(r: BenchResult) -> bytes:
    """The three panels as a PNG: time per frame per board, resources per board, measured vs predicted."""
    import matplotlib

    matplotlib.use("Agg")  # no display; a file only
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": [3, 2, 1.2]})
    try:
        _times_panel(axes[0], r)
        _resources_panel(axes[1], r.predictions)
        _throughput_panel(axes[2], r)
        fig.suptitle(f"{Path(r.bundle).name}: {r.setup}", fontsize=10)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=110)
        return out.getvalue()
    finally:
        plt.close(fig)


def _times_panel(ax: object, r: BenchResult) -> None:
    pred = {p.stage: p for p in r.predictions}
    labels, x = [], 0.0
    for b in r.boards:
        p = pred[b.stage]
        _stack(ax, x, (b.wait_us, b.compute_us, b.send_us), alpha=1.0)
        _stack(ax, x + 0.38, (p.recv_us, p.compute_us, p.send_us), alpha=0.45, hatch="//")
        labels.append((x + 0.19, b.node))
        x += 1.0
    ax.axhline(1e6 / r.fps, color="black", lw=1, label=f"period measured {1e6 / r.fps:.0f} µs")
    ax.axhline(1e6 / r.predicted_fps, color="black", lw=1, ls="--",
               label=f"period predicted {1e6 / r.predicted_fps:.0f} µs")
    ax.set_xticks([pos for pos, _ in labels], [name for _, name in labels], rotation=30, fontsize=8)
    ax.set_ylabel("µs per frame")
    ax.set_title("time per frame per board: measured (solid) | predicted (hatched)\n"
                 "(a replica of a stage on k boards has k periods per frame)", fontsize=9)
    handles = [_patch(COLORS[k], name) for k, name in
               (("wait", "waiting/receiving"), ("compute", "compute (accelerator)"), ("send", "sending"))]
    ax.legend(handles=[*handles, *ax.get_legend_handles_labels()[0]], fontsize=7, loc="upper right")


def _patch(color: str, label: str) -> object:
    from matplotlib.patches import Patch

    return Patch(color=color, label=label)


def _stack(ax: object, x: float, values: tuple[float, float, float], alpha: float, hatch: str | None = None) -> None:
    bottom = 0.0
    for key, value in zip(("wait", "compute", "send"), values, strict=True):
        ax.bar(x, value, width=0.36, bottom=bottom, color=COLORS[key], alpha=alpha, hatch=hatch,
               edgecolor="white" if hatch is None else COLORS[key])
        bottom += value


def _resources_panel(ax: object, preds: list[Prediction]) -> None:
    width = 0.8 / len(RESOURCES)
    for k, (key, name, color) in enumerate(RESOURCES):
        ax.bar([p.stage + k * width for p in preds], [p.utilization_pct.get(key, 0.0) for p in preds], width=width,
               label=name, color=color)
    ax.set_xticks([p.stage + width for p in preds], [f"{p.stage}\n{p.board}" + (f" x{p.replicas}" if p.replicas > 1
                                                                                 else "") for p in preds], fontsize=8)
    ax.set_ylabel("% of the device (shell included)")
    ax.set_ylim(0, 100)
    ax.set_title("resources per board (the plan)", fontsize=9)
    ax.legend(fontsize=7)


def _throughput_panel(ax: object, r: BenchResult) -> None:
    ax.bar([0, 1], [r.fps, r.predicted_fps], color=["#444444", "#aaaaaa"])
    ax.set_xticks([0, 1], ["measured", "predicted"])
    ax.set_ylabel("frames per second")
    ax.set_title(f"throughput: ratio {r.ratio:.3f}", fontsize=9)
    for x, value in ((0, r.fps), (1, r.predicted_fps)):
        ax.text(x, value, f"{value:.1f}", ha="center", va="bottom", fontsize=8)
    ax.text(0.5, -0.22, f"latency p50 {r.latency_ms['p50']:.1f} ms, p99 {r.latency_ms['p99']:.1f} ms",
            ha="center", transform=ax.transAxes, fontsize=8)


def page(r: BenchResult, png: bytes) -> str:
    """bench.html: the figure inlined, the summary and the per-board table; no external file or script."""
    pred = {p.stage: p for p in r.predictions}
    rows = []
    for b in r.boards:
        p = pred[b.stage]
        u = p.utilization_pct
        cells = [b.stage, p.board, b.node, b.frames, f"{b.recv_us:.0f}", f"{p.recv_us:.0f}", f"{b.recv_wait_us:.0f}",
                 f"{b.compute_us:.0f}", f"{p.compute_us:.0f}", f"{b.send_us:.0f}", f"{p.send_us:.0f}",
                 f"{u.get('lut', 0):.1f}", f"{u.get('bram18', 0):.1f}", f"{u.get('dsp', 0):.1f}", f"{p.power_w:.2f}"]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    head = ["stage", "board", "node", "frames", "recv µs", "pred.", "buffer wait µs", "compute µs", "pred.",
            "send µs", "pred.", "LUT %", "BRAM %", "DSP %", "W"]
    summary = "".join(f"<p>{html.escape(line)}</p>" for line in summary_lines(r))
    image = base64.b64encode(png).decode()
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>finnsplit bench: {html.escape(Path(r.bundle).name)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}th{{background:#eee}}img{{max-width:100%}}</style>
</head><body><h1>finnsplit bench</h1>{summary}
<img alt="time per frame per board, resources per board, measured vs predicted throughput"
 src="data:image/png;base64,{image}">
<h2>Per board, per frame (the board's own statistics beside the plan's prediction)</h2>
<table><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>{"".join(rows)}</table>
<p>Period: {1e6 / r.fps:.0f} µs per frame measured, {1e6 / r.predicted_fps:.0f} µs predicted.
Predicted recv and send: the boundary's packed bytes over the board's link rate; compute: the slowest
layer's cycles over the clock. The same data: bench.json.</p>
</body></html>
"""


def write(r: BenchResult, directory: str | Path) -> list[Path]:
    """bench.json, bench.png and bench.html in `directory` (created); returns their paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    png = figure_png(r)
    paths = [out / "bench.json", out / "bench.png", out / "bench.html"]
    paths[0].write_text(json.dumps(r.to_json(), indent=2) + "\n")
    paths[1].write_bytes(png)
    paths[2].write_text(page(r, png))
    return paths


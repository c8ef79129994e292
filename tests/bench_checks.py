"""What every `finnsplit bench` report must hold (tests of bench on virtual boards and fleets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.manifest import load_manifest


def check_report(stdout: str, report: Path, bundle: Path, frames: int, nodes: list[str]) -> dict:
    """The table, bench.json, bench.png and bench.html agree and cover every board; returns bench.json."""
    manifest = load_manifest(bundle)
    data = json.loads((report / "bench.json").read_text())
    assert data["frames"] == frames
    assert sorted(b["node"] for b in data["boards"]) == sorted(nodes)  # a fleet's planner picks the boards
    assert [b["stage"] for b in data["boards"]] == [p.index for p in manifest.partitions]
    assert all(b["frames"] == frames for b in data["boards"])  # each board's stats cover exactly these frames
    assert all(b["compute_us"] > 0 and b["recv_us"] > 0 and b["send_us"] > 0 for b in data["boards"])
    assert [p["stage"] for p in data["predictions"]] == [p.index for p in manifest.partitions]
    assert data["predicted_fps"] == manifest.plan.fps
    assert data["ratio"] == pytest.approx(data["fps"] / data["predicted_fps"])
    lat = data["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert f"throughput {data['fps']:.1f} fps measured, {data['predicted_fps']:.1f} fps predicted" in stdout
    assert f"p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms, p99 {lat['p99']:.2f} ms" in stdout
    for node in nodes:
        assert f" {node} " in stdout
    assert (report / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (report / "bench.html").read_text()
    assert "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained
    assert all(f"<td>{node}</td>" in page for node in nodes)
    return data

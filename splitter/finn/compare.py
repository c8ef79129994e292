"""FINN's graph and estimates against the plan the bundle records (docs/finn.md#what-is-compared).

Standard library only. Input: a partition's manifest prediction (its "predicted" layers: FINN node name,
implementation, cycles and FINN's term of the cost model), FINN's summary from splitter.finn.worker
and the partition's folding_config.json. Every difference is a line in "mismatches".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.manifest.schema import plain

RESOURCE_KEYS = ("LUT", "BRAM_18K", "URAM", "DSP")
TOLERANCE = 1e-6  # FINN's estimates and the cost model's FINN term are the same formulas


def compare_with_plan(predicted: Mapping[str, Any], summary: dict[str, Any], folding: dict[str, Any]) -> dict[str, Any]:
    """Per-layer figures of FINN and of the plan (a partition's `predicted`), and the mismatches (none: they agree)."""
    planned = predicted.get("layers", ())
    nodes = [n for n in summary.get("nodes", []) if str(n.get("domain", "")).startswith("finn.custom_op")]
    reports = summary.get("reports", {})
    cycles = reports.get("estimate_layer_cycles") or {}
    resources = reports.get("estimate_layer_resources") or {}
    mismatches = list(summary.get("attribute_errors", [])) + _layer_set(planned, nodes) + _folding(folding, nodes)
    by_name = {n["name"]: n for n in nodes}
    layers = []
    for entry in planned:
        node = entry["node"]
        if node not in by_name:
            continue
        finn_res = {k: resources.get(node, {}).get(k, 0) for k in RESOURCE_KEYS}
        layers.append({"node": node, "layer": entry["layer"], "finn_cycles": cycles.get(node),
                       "plan_cycles": entry["cycles"], "finn": finn_res, "plan": plain(entry["finn"]),
                       "corrections": plain(entry.get("corrections", {}))})
        if cycles.get(node) != entry["cycles"]:
            mismatches.append(f"{node}: FINN estimates {cycles.get(node)} cycles, the plan {entry['cycles']}")
        for key in RESOURCE_KEYS:
            if abs(float(finn_res[key]) - float(entry["finn"].get(key, 0))) > TOLERANCE:
                mismatches.append(f"{node}: FINN estimates {key} {finn_res[key]}, the plan's FINN term "
                                  f"{entry['finn'].get(key, 0)}")
    plan_terms = {k: sum(float(e["finn"].get(k, 0)) for e in planned) for k in RESOURCE_KEYS}
    return {
        "plan_max_cycles": max((e["cycles"] for e in planned), default=0),
        "plan_finn_terms": plan_terms,
        "layers": layers,
        "mismatches": mismatches,
    }


def _layer_set(planned: Sequence[Mapping[str, Any]], nodes: list[dict[str, Any]]) -> list[str]:
    """FINN's nodes, in order, are the plan's: same names, same specialized op types."""
    out = []
    plan_names = [e["node"] for e in planned]
    finn_names = [n["name"] for n in nodes]
    for node in nodes:
        if node["name"] not in plan_names:
            out.append(f"FINN's graph has {node['name']} ({node['op_type']}), which the plan did not cost")
    for entry in planned:
        if entry["node"] not in finn_names:
            out.append(f"the plan costs {entry['node']} ({entry['impl']}), which FINN's graph lacks")
    for entry in planned:
        node = next((n for n in nodes if n["name"] == entry["node"]), None)
        if node is not None and node["op_type"] != entry["impl"]:
            out.append(f"{entry['node']}: FINN built {node['op_type']}, the plan costed {entry['impl']}")
    common = [n for n in finn_names if n in plan_names]
    if not out and common != [n for n in plan_names if n in finn_names]:
        out.append(f"FINN's node order {common} differs from the plan's")
    return out


def _folding(folding: dict[str, Any], nodes: list[dict[str, Any]]) -> list[str]:
    """Every folding entry names a FINN node, and FINN's node has the entry's values afterwards."""
    out = []
    by_name = {n["name"]: n for n in nodes}
    for name, entry in folding.items():
        if name == "Defaults":
            continue
        node = by_name.get(name)
        if node is None:
            out.append(f"folding entry {name} names no node of FINN's graph (FINN ignores it)")
            continue
        attrs = node.get("attrs", {})
        for key, value in entry.items():
            if key not in attrs:
                out.append(f"{name}: FINN's {node['op_type']} has no attribute {key} (folding entry ignored)")
            elif attrs[key] != value:
                out.append(f"{name}: FINN has {key}={attrs[key]!r} after applying the folding, the plan {value!r}")
    return out

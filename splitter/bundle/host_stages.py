"""The host's stages in the manifest: ops before the first board and after the last (docs/bundle.md#manifest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.manifest import file_entry
from splitter.graph import DataflowGraph

OUTPUT_STAGE_FILE = "host/output_stage.onnx"


def add_host_stages(graph: DataflowGraph, root: Path, entry: dict[str, Any]) -> None:
    """Record in `entry` (the manifest's "host") the input stage's ops and shift, and write the output stage."""
    iq = graph.input_quant
    if iq is not None and iq.kind == "onnx":
        entry["input"]["ops"] = list(iq.ops)
    if iq is not None and (iq.factor != 1 or iq.shift):  # a mean of whole pixels shifts with factor 1 (x - 128)
        entry["input"]["factor"] = iq.factor
        entry["input"]["shift"] = list(iq.shift)
    stage = graph.output_stage
    if stage is None:
        return
    path = root / OUTPUT_STAGE_FILE
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(stage.model)
    entry["files"]["output_stage"] = file_entry(root, path)
    entry["output"]["stage"] = {"input": stage.input, "shape": list(stage.input_shape), "ops": list(stage.ops)}

"""The host's stages in the manifest: ops before the first board and after the last (docs/bundle.md#manifest)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from core.manifest import FileEntry, HostInput, HostOutput, HostStage, file_entry
from splitter.graph import DataflowGraph

OUTPUT_STAGE_FILE = "host/output_stage.onnx"


def host_stages(graph: DataflowGraph, root: Path, host_input: HostInput, host_output: HostOutput,
                files: dict[str, FileEntry]) -> tuple[HostInput, HostOutput]:
    """`host_input` with the input stage's ops and shift, `host_output` with the output stage (written, in `files`)."""
    iq = graph.input_quant
    if iq is not None and iq.kind == "onnx":
        host_input = dataclasses.replace(host_input, ops=tuple(iq.ops))
    if iq is not None and (iq.factor != 1 or iq.shift):  # a mean of whole pixels shifts with factor 1 (x - 128)
        host_input = dataclasses.replace(host_input, factor=iq.factor, shift=tuple(iq.shift))
    stage = graph.output_stage
    if stage is None:
        return host_input, host_output
    path = root / OUTPUT_STAGE_FILE
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(stage.model)
    files["output_stage"] = file_entry(root, path)
    return host_input, dataclasses.replace(host_output, stage=HostStage(stage.input, tuple(stage.input_shape),
                                                                        tuple(stage.ops)))

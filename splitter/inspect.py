"""The dataflow layer table of `finnsplit inspect`: shapes, datatypes, MACs and weight bits."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from splitter.graph import DataflowGraph, Layer, dtype_attr


@dataclass(frozen=True)
class LayerRow:
    """One row of the layer table."""

    index: int
    name: str
    op_type: str
    in_shape: tuple[int, ...]
    in_dtype: str
    out_shape: tuple[int, ...]
    out_dtype: str
    macs: int
    weight_bits: int


def layer_macs(layer: Layer, out_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates per frame of an MVAU or VVAU (0 for other layers)."""
    pixels = int(np.prod(out_shape[:-1]))
    if layer.op_type == "MVAU":
        return int(layer.attr("MW")) * int(layer.attr("MH")) * pixels
    if layer.op_type == "VVAU":
        kh, kw = layer.attr("Kernel")
        return int(layer.attr("Channels")) * kh * kw * pixels
    return 0


def layer_weight_bits(layer: Layer) -> int:
    """Bits of weight memory of a layer (weights x weight datatype width)."""
    if "weights" not in layer.params:
        return 0
    return int(layer.params["weights"].size) * dtype_attr(layer, "weightDataType").bitwidth


def rows(graph: DataflowGraph) -> list[LayerRow]:
    """The table rows of `graph`."""
    out = []
    for index, layer in enumerate(graph.layers):
        src, dst = graph.tensors[layer.input], graph.tensors[layer.output]
        out.append(
            LayerRow(
                index,
                layer.name,
                layer.op_type,
                src.shape[1:],
                src.dtype.name,
                dst.shape[1:],
                dst.dtype.name,
                layer_macs(layer, dst.shape),
                layer_weight_bits(layer),
            )
        )
    return out


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def format_table(graph: DataflowGraph) -> str:
    """The layer table as text, with a summary line."""
    table = rows(graph)
    header = (
        f"{'#':>3}  {'layer':<30} {'input':>14} {'in dt':>7} {'output':>14} {'out dt':>7} "
        f"{'MACs':>13} {'weight bits':>12}"
    )
    lines = [header, "-" * len(header)]
    for r in table:
        lines.append(
            f"{r.index:>3}  {r.name:<30} {_dims(r.in_shape):>14} {r.in_dtype:>7} {_dims(r.out_shape):>14} "
            f"{r.out_dtype:>7} {r.macs:>13,} {r.weight_bits:>12,}"
        )
    counts = Counter(r.op_type for r in table)
    total_macs = sum(r.macs for r in table)
    total_bits = sum(r.weight_bits for r in table)
    lines.append("-" * len(header))
    lines.append(f"{len(table)} layers: " + ", ".join(f"{n} {op}" for op, n in sorted(counts.items())))
    lines.append(f"total {total_macs:,} MACs per frame, {total_bits:,} weight bits ({total_bits / 8 / 1024:,.1f} KiB)")
    lines += host_lines(graph)
    lines += [f"note: {note}" for note in graph.notes]
    return "\n".join(lines)


def host_lines(graph: DataflowGraph) -> list[str]:
    """What the host does before the first board and after the last (inspect and build print these)."""
    lines = []
    iq = graph.input_quant
    if iq is not None:
        how = f"declared {iq.dtype.name} x {iq.scale:.6g}" + (f", mean {iq.mean}, std {iq.std}" if iq.mean else "")
        if iq.factor != 1 or iq.shift:
            how += (f"; sent as x * {iq.factor} - {list(iq.shift)} ({graph.input.dtype.name}), so the padded first "
                    "convolution is exact")
        if iq.kind == "onnx":
            how = (f"model's own input quantizer ({', '.join(iq.ops)}) -> {iq.dtype.name} (scale {iq.scale:.6g}), "
                   "run on the host")
        lines.append(f"input: {how}")
    out = graph.output
    tail = "indices (LabelSelect)" if graph.output_affine is None else "float = integer x scale + bias on the host"
    if graph.output_stage is not None:
        tail += f", then {', '.join(graph.output_stage.ops)} on the host (onnxruntime, float32)"
    lines.append(f"output: {out.dtype.name} {_dims(out.shape[1:])}, {tail}")
    return lines

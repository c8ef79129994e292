"""Branching and joining dataflow: FINN's DuplicateStreams and AddStreams (docs/lowering.md#residual-networks).

A quantized tensor read by several nodes becomes a `DuplicateStreams` layer with one output stream
per reader. An `Add` of two computed tensors (a residual join) becomes an `AddStreams` layer: FINN adds
integers, so both branches must already hold their values on one integer grid. That is what FINN's
streamlining reaches when both branches end in quantizers of one scale (brevitas' shared quantizer
at the join, as `brevitas_examples`' ResNets use it): each branch's last quantizer is folded into
that branch's thresholds (an MVAU's, or a standalone `Thresholding` requantizing the skip), so the
branches' integers a and b have one step s, the Add is the integer a + b of step s, and the
activation after it is a `Thresholding` on a + b.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from splitter.datatypes import DataType, smallest_datatype
from splitter.errors import UnsupportedNodeError
from splitter.lowering.cursor import Cursor

if TYPE_CHECKING:
    from splitter.lowering.lower import Lowering

JOIN_OPS = ("Add",)
RESIDUAL_UNQUANTIZED = ("a branch into a residual join must end in a quantizer, one for both branches "
                        "(brevitas: one QuantReLU / QuantIdentity applied to both before the add): FINN adds integers")


def is_join(lw: Lowering, node: onnx.NodeProto) -> bool:
    """True for an elementwise op whose inputs are all computed tensors (a residual join)."""
    if node.op_type not in ("Add", "Sub", "Mul", "Div"):
        return False
    dynamic = [name for name in node.input if name and lw.view.const(name) is None]
    return len(dynamic) > 1


def duplicate(lw: Lowering, cur: Cursor, readers: int) -> list[Cursor]:
    """A DuplicateStreams layer copying `cur` to `readers` streams; one cursor per stream, in order."""
    _, *vectors, channels = cur.shape
    out = lw.emit(
        "DuplicateStreams", cur,
        {"NumChannels": channels, "PE": 1, "NumOutputStreams": readers, "inputDataType": cur.dtype.name,
         "numInputVectors": tuple(vectors)},
        cur.shape, cur.dtype, outputs=readers,
    )
    layer = lw.layers[-1]
    cursors = [replace(cur, tensor=name) for name in (out, *layer.extra_outputs)]
    for branch in cursors:
        lw.record(branch)
    return cursors


def add_output_dtype(dtype: DataType) -> DataType:
    """AddStreams' output datatype, as FINN's AddStreams.get_output_datatype derives it."""
    return smallest_datatype(2 * dtype.min, 0) if dtype.signed else smallest_datatype(0, 2 * dtype.max)


def join(lw: Lowering, node: onnx.NodeProto, first: Cursor, second: Cursor) -> Cursor:
    """An AddStreams layer adding the integers of two branches that share one integer grid."""
    if node.op_type not in JOIN_OPS:
        raise UnsupportedNodeError(node.name, node.op_type, "both inputs are computed tensors; of such joins "
                                   "only a residual Add has a dataflow layer (FINN's AddStreams)")
    a, b = (first, second) if node.input[0] == first.onnx else (second, first)
    problem = _misaligned(a, b)
    if problem:
        raise UnsupportedNodeError(node.name, node.op_type, f"{problem}; FINN's AddStreams adds integers of one "
                                   "scale and datatype: quantize both branches with one shared quantizer (brevitas: "
                                   "the same QuantReLU / QuantIdentity module before the add)")
    out_dtype = add_output_dtype(a.dtype)
    _, *vectors, channels = a.shape
    out = lw.emit(
        "AddStreams", a,
        {"NumChannels": channels, "PE": 1, "inputDataType": a.dtype.name, "numInputVectors": tuple(vectors)},
        a.shape, out_dtype, source=(node.name,), extra_inputs=(b.tensor,),
    )
    nxt = replace(a, onnx=node.output[0], tensor=out, dtype=out_dtype)
    lw.record(nxt)
    return nxt


def _misaligned(a: Cursor, b: Cursor) -> str:
    """Why two branch tensors cannot be added as integers ('' when they can)."""
    if a.shape != b.shape or a.rank != b.rank or a.flattened_from != b.flattened_from:
        return f"the branches have shapes {a.shape} and {b.shape}"
    if a.bipolar or b.bipolar or np.any(a.offset) or np.any(b.offset):
        return "a branch's integer 0 is not the real 0 (a bipolar or mean-shifted tensor)"
    if not np.array_equal(a.scale, b.scale):
        return (f"the branches have different scales (e.g. {float(a.scale.flat[0]):.6g} and "
                f"{float(b.scale.flat[0]):.6g})")
    if a.dtype != b.dtype:
        return f"the branches have datatypes {a.dtype.name} and {b.dtype.name}"
    return ""

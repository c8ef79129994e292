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

from core.datatypes import DataType, smallest_datatype
from core.errors import UnsupportedNodeError
from splitter.graph import Layer, TensorSpec, pair
from splitter.lowering.cursor import Cursor

if TYPE_CHECKING:
    from splitter.lowering.emitter import Emitter

JOIN_OPS = ("Add",)
RESIDUAL_UNQUANTIZED = ("a branch into a residual join must end in a quantizer, one for both branches "
                        "(brevitas: one QuantReLU / QuantIdentity applied to both before the add): FINN adds integers")


def is_join(lw: Emitter, node: onnx.NodeProto) -> bool:
    """True for an elementwise op whose inputs are all computed tensors (a residual join)."""
    if node.op_type not in ("Add", "Sub", "Mul", "Div"):
        return False
    dynamic = [name for name in node.input if name and lw.view.const(name) is None]
    return len(dynamic) > 1


def duplicate(lw: Emitter, cur: Cursor, readers: int) -> list[Cursor]:
    """A DuplicateStreams layer copying `cur` to `readers` streams; one cursor per stream, in order."""
    *vectors, channels = cur.shape  # FINN's numInputVectors: every axis but the channels, batch included
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


def join(lw: Emitter, node: onnx.NodeProto, first: Cursor, second: Cursor) -> Cursor:
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
    *vectors, channels = a.shape
    depths = buffer_pixels(lw.layers, lw.tensors, (a.tensor, b.tensor))
    out = lw.emit(
        "AddStreams", a,
        {"NumChannels": channels, "PE": 1, "inputDataType": a.dtype.name, "numInputVectors": tuple(vectors),
         "inFIFOPixels": depths},
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


def buffer_pixels(layers: list[Layer], tensors: dict[str, TensorSpec], inputs: tuple[str, ...]) -> tuple[int, ...]:
    """Pixels each input of a join must buffer so that its fork never waits on a full stream (deadlock).

    The fork (DuplicateStreams) feeds both branches at once; a branch with sliding windows needs rows
    of the fork's tensor before its first output, the other branch meanwhile runs ahead, and what it
    produced waits at the join. A branch takes fork pixel P only once it has emitted every output
    that needs less (FINN's sliding windows buffer exactly their window), while the join can have
    consumed only the outputs both branches can make from pixels before P: branch k's FIFO must hold
    max over P of (#outputs of k needing < P) - (#join outputs needing < P) pixels
    (docs/cost-model.md#residual-branches). (0, 0) when the inputs do not lead back to one DuplicateStreams.
    """
    producer = {out: layer for layer in layers for out in layer.outputs}
    needs = [_need(name, producer, tensors) for name in inputs]
    if any(n is None for n in needs) or len({fork for fork, _ in needs}) != 1:  # type: ignore[misc]
        return (0,) * len(inputs)
    flat = [np.maximum.accumulate(n.reshape(-1)) for _, n in needs]  # type: ignore[union-attr]
    sent = np.max(np.stack(flat), axis=0)
    pixels = np.arange(int(sent.max()) + 1)
    joined = np.searchsorted(sent, pixels, side="left")
    return tuple(max(0, int(np.max(np.searchsorted(f, pixels, side="left") - joined))) for f in flat)


def _need(tensor: str, producer: dict[str, Layer], tensors: dict[str, TensorSpec]):
    """(fork layer name, last fork pixel (row-major index, -1: none) each pixel of `tensor` needs), or None."""
    layer = producer.get(tensor)
    if layer is None:
        return None
    if layer.op_type == "DuplicateStreams":
        _, h, w, _ = tensors[layer.input].shape
        return layer.name, np.arange(h * w).reshape(h, w)
    parts = [_need(name, producer, tensors) for name in layer.inputs]
    if any(p is None for p in parts) or len({p[0] for p in parts}) != 1:  # type: ignore[index]
        return None
    fork = parts[0][0]  # type: ignore[index]
    upstream = np.max(np.stack([p[1] for p in parts]), axis=0)  # type: ignore[index]
    index = _last_input(layer, tensors[layer.input].shape, tensors[layer.output].shape)
    return fork, np.where(index < 0, -1, upstream.reshape(-1)[np.maximum(index, 0)])


def _last_input(layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
    """For each output pixel (oh, ow), the row-major index of the last input pixel it needs (-1: none)."""
    _, h, w, _ = in_shape
    _, oh, ow, _ = out_shape
    r, c = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    op = layer.op_type
    if op == "FMPadding":
        top, left, _, _ = (int(p) for p in layer.attr("Padding"))
        row, col = r - top, np.clip(c - left, -1, w - 1)
        return np.where(row < 0, -1, np.where(row >= h, h * w - 1, row * w + col))
    if op == "ConvolutionInputGenerator":
        (kh, kw), (sh, sw) = pair(layer.attr("ConvKernelDim")), pair(layer.attr("Stride"))
        dh, dw = pair(layer.attrs.get("Dilation", (1, 1)))
        return (r * sh + (kh - 1) * dh) * w + c * sw + (kw - 1) * dw
    if op == "StreamingMaxPool":
        kh, kw = pair(layer.attr("PoolDim"))
        return (r * kh + kh - 1) * w + c * kw + kw - 1
    if (oh, ow) != (h, w):  # global pooling, a flattened input: the whole map
        return np.full((oh, ow), h * w - 1)
    return r * w + c

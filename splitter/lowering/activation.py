"""Elementwise ops and a Quant directly on an integer tensor: a standalone `Thresholding` layer.

When no Quant follows, the float ops run on the host as the output affine and the walk ends.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from core.errors import UnsupportedNodeError
from splitter.lowering.cursor import Cursor, store
from splitter.lowering.elementwise import Activation, derive_thresholds
from splitter.lowering.host_stages import affine_of_elementwise, collect_elementwise
from splitter.lowering.onnx_view import per_channel
from splitter.lowering.residual import RESIDUAL_UNQUANTIZED, is_join

if TYPE_CHECKING:
    from splitter.lowering.emitter import Emitter


def standalone_activation(lw: Emitter, node: onnx.NodeProto, cur: Cursor) -> Cursor:
    """Elementwise ops and a Quant directly on an integer tensor: a Thresholding layer."""
    ops, end = collect_elementwise(lw.view, cur.onnx, node)
    if end is not None and end.op_type not in ("Quant", "BipolarQuant") and end.name not in lw.tail \
            and is_join(lw, end):
        raise UnsupportedNodeError(end.name, end.op_type, RESIDUAL_UNQUANTIZED)
    if end is None or end.op_type not in ("Quant", "BipolarQuant"):
        scale, bias = affine_of_elementwise(ops, cur.scale, cur.offset, node.name)
        if end is not None and end.name not in lw.tail:
            raise UnsupportedNodeError(end.name, end.op_type, "follows float elementwise ops without a quantizer")
        if end is not None:  # after the last quantized layer: the host runs the rest (Softmax, ...)
            lw.finish_on_host(next(i for i in end.input if i and lw.view.const(i) is None), scale, bias)
        else:
            lw.finish(scale, bias)
        return cur
    quant = lw.view.quant_params(end)
    channels = cur.channels
    qscale = per_channel(quant.scale, channels, cur.rank, end.name).astype(np.float32)
    act = Activation(cur.scale, cur.offset, ops, quant, qscale)
    lo = np.full(channels, cur.dtype.min)
    hi = np.full(channels, cur.dtype.max)
    thresholds, sign, act_val = derive_thresholds(act, lo, hi)
    if np.any(sign < 0):
        raise UnsupportedNodeError(
            end.name, "Quant", "a decreasing activation without a preceding layer to absorb the sign"
        )
    out = lw.emit(
        "Thresholding",
        cur,
        {
            "NumChannels": channels,
            "PE": 1,
            "numSteps": thresholds.shape[1],
            "inputDataType": cur.dtype.name,
            "outputDataType": quant.dtype.name,
            "ActVal": int(act_val),
            "numInputVectors": 1,
        },
        cur.shape,
        quant.dtype,
        {"thresholds": store(thresholds)},
        (node.name, end.name),
    )
    step, offset = quant.code(qscale)
    nxt = replace(cur, onnx=end.output[0], tensor=out, scale=step, offset=offset, dtype=quant.dtype,
                  bipolar=quant.bipolar)
    lw.record(nxt)
    return nxt

"""Pooling on integers: `MaxPool` (exact, positive scales preserve order) and brevitas' truncating
`AveragePool` (parameters read by lowering/avgpool.py, brevitas 0.10 and 0.13 exports)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from core.errors import UnsupportedNodeError
from splitter.lowering.avgpool import trunc_avgpool
from splitter.lowering.cursor import Cursor
from splitter.lowering.onnx_view import attributes
from splitter.lowering.window import sliding_window

if TYPE_CHECKING:
    from splitter.lowering.emitter import Emitter


def maxpool(lw: Emitter, node: onnx.NodeProto, cur: Cursor) -> Cursor:
    """MaxPool on integers (exact: positive scales preserve order)."""
    attrs = attributes(node)
    kernel = tuple(attrs["kernel_shape"])
    strides = tuple(attrs.get("strides", kernel))
    # exact for any positive step and offset per channel (a bipolar code, a declared mean): max commutes
    if any(attrs.get("pads", [0, 0, 0, 0])) or int(attrs.get("ceil_mode", 0)):
        raise UnsupportedNodeError(node.name, "MaxPool", "padding or ceil_mode")
    _, height, width, channels = cur.shape
    oh, ow = (height - kernel[0]) // strides[0] + 1, (width - kernel[1]) // strides[1] + 1
    if kernel == strides:
        op_type, window = "StreamingMaxPool", cur
        pool_attrs = {
            "ImgDim": (height, width),
            "PoolDim": kernel,
            "NumChannels": channels,
            "PE": 1,
            "dataType": cur.dtype.name,
            "CeilMode": 0,
        }
    else:
        op_type = "Pool"
        window = sliding_window(lw, cur, kernel, strides, (oh, ow), (node.name,))
        pool_attrs = _pool_attrs("MaxPool", kernel, channels, cur.dtype.name, cur.dtype.name, 0, 0)
    out = lw.emit(op_type, window, pool_attrs, (1, oh, ow, channels), cur.dtype, source=(node.name,))
    nxt = replace(cur, onnx=node.output[0], tensor=out, shape=(1, oh, ow, channels))
    lw.record(nxt)
    return nxt


def avgpool(lw: Emitter, node: onnx.NodeProto, cur: Cursor) -> Cursor:
    """AveragePool [-> Mul] -> Trunc (brevitas TruncAvgPool2d, 0.10 and 0.13 exports)."""
    kernel, strides, out_dims, trunc, out_dtype, out_scale, shift, acc_dtype = trunc_avgpool(lw.view, node, cur)
    window = sliding_window(lw, cur, kernel, strides, out_dims, (node.name,))
    channels = cur.channels
    out = lw.emit(
        "Pool",
        window,
        _pool_attrs("QuantAvgPool", kernel, channels, cur.dtype.name, out_dtype.name, acc_dtype.bitwidth, shift),
        (1, *out_dims, channels),
        out_dtype,
        source=(node.name, trunc.name),
    )
    nxt = replace(
        cur,
        onnx=trunc.output[0],
        tensor=out,
        shape=(1, *out_dims, channels),
        dtype=out_dtype,
        scale=np.full(channels, out_scale),
    )
    lw.record(nxt)
    return nxt


def _pool_attrs(function: str, kernel, channels: int, in_type: str, out_type: str, accum_bits: int, shift: int) -> dict:
    """FINN's Pool attributes (the layer after a depthwise sliding window)."""
    return {
        "Function": function,
        "KernelSize": kernel,
        "Channels": channels,
        "PE": 1,
        "InputDataType": in_type,
        "OutputDataType": out_type,
        "AccumBits": accum_bits,
        "Shift": shift,
        "BatchSize": 1,
    }

"""brevitas TruncAvgPool2d: AveragePool [-> Mul(k*k)] -> Trunc, as exported by brevitas 0.10 and 0.13.

brevitas 0.13 exports AveragePool -> Trunc with scale = input scale / (KH*KW) and an output scale
(qonnx Trunc v2, 6 inputs). brevitas 0.10's TorchScript export multiplies the average back to a sum
first (AveragePool -> Mul(KH*KW) -> Trunc, qonnx Trunc v1, 5 inputs). Both mean: integer window sum
S, then floor(S / 2^shift); v2 also clamps to the output bit width.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx

from core.datatypes import DataType, datatype, smallest_datatype
from core.errors import UnsupportedNodeError
from splitter.lowering.onnx_view import OnnxView, attributes

if TYPE_CHECKING:
    from splitter.lowering.cursor import Cursor


def trunc_avgpool(view: OnnxView, node: onnx.NodeProto, cur: Cursor) -> tuple:
    """Parameters of a truncating average pool starting at AveragePool `node` on cursor `cur`."""
    attrs = attributes(node)
    kernel = tuple(int(k) for k in attrs["kernel_shape"])
    strides = tuple(int(s) for s in attrs.get("strides", kernel))
    if any(attrs.get("pads", [0, 0, 0, 0])) or int(attrs.get("ceil_mode", 0)):
        raise UnsupportedNodeError(node.name, "AveragePool", "padding or ceil_mode")
    if not np.all(cur.scale == cur.scale[0]) or np.any(cur.offset):
        raise UnsupportedNodeError(node.name, "AveragePool", "input must have one per-tensor scale")
    _, height, width, _channels = cur.shape
    out_dims = ((height - kernel[0]) // strides[0] + 1, (width - kernel[1]) // strides[1] + 1)
    area = kernel[0] * kernel[1]
    multiplier = 1.0
    trunc = view.single_consumer(node.output[0])
    if trunc is not None and trunc.op_type == "Mul":
        const = view.const(trunc.input[1] if trunc.input[0] == node.output[0] else trunc.input[0])
        if const is None or np.size(const) != 1:
            raise UnsupportedNodeError(trunc.name, "Mul", "after AveragePool must multiply by a constant")
        multiplier = float(np.asarray(const).reshape(-1)[0])
        trunc = view.single_consumer(trunc.output[0])
    if trunc is None or trunc.op_type != "Trunc":
        raise UnsupportedNodeError(
            node.name,
            "AveragePool",
            "an unquantized average pool (brevitas TruncAvgPool2d exports AveragePool followed by Trunc)",
        )
    consts = [view.const(name) for name in trunc.input[1:]]
    if any(c is None for c in consts):
        raise UnsupportedNodeError(trunc.name, "Trunc", "all parameters must be constants")
    t_attrs = attributes(trunc)
    if str(t_attrs.get("rounding_mode", "FLOOR")).upper() != "FLOOR":
        raise UnsupportedNodeError(trunc.name, "Trunc", f"rounding mode {t_attrs.get('rounding_mode')} (FLOOR only)")
    scale = float(np.asarray(consts[0]).reshape(-1)[0])
    if np.any(np.asarray(consts[1]) != 0):
        raise UnsupportedNodeError(trunc.name, "Trunc", "non-zero zero point")
    # Trunc first rounds x / scale to an integer; that integer must be the window sum S.
    per_step = float(cur.scale[0]) * multiplier / area / scale
    if abs(per_step - 1.0) > 1e-4:
        raise UnsupportedNodeError(
            trunc.name, "Trunc", f"its scale does not make x/scale the integer window sum (ratio {per_step:.6g})"
        )
    s_lo, s_hi = area * min(cur.dtype.min, 0), area * cur.dtype.max
    acc_dtype = smallest_datatype(s_lo, s_hi)
    if len(trunc.input) >= 6:  # qonnx Trunc v2: (x, scale, zeropt, in_bw, out_scale, out_bw)
        out_scale = float(np.asarray(consts[3]).reshape(-1)[0])
        out_bits = int(np.asarray(consts[4]).reshape(-1)[0])
        shift = round(np.log2(out_scale / scale))
        signed = bool(t_attrs.get("signed", 1))
        narrow = bool(t_attrs.get("narrow", 0))
        out_dtype: DataType = datatype(f"{'INT' if signed else 'UINT'}{out_bits}")
        if narrow and signed:
            out_dtype = DataType(out_dtype.name, out_bits, True, out_dtype.min + 1, out_dtype.max)
    else:  # v1: (x, scale, zeropt, in_bw, out_bw); no clamp, output keeps the input scale
        shift = int(np.asarray(consts[2]).reshape(-1)[0]) - int(np.asarray(consts[3]).reshape(-1)[0])
        out_scale = scale
        out_dtype = smallest_datatype(s_lo >> shift, s_hi >> shift)
    if shift < 0:
        raise UnsupportedNodeError(trunc.name, "Trunc", f"negative truncation of {shift} bits")
    return kernel, strides, out_dims, trunc, out_dtype, out_scale, shift, acc_dtype

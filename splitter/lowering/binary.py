"""Binarized layers: FINN's XNOR-popcount MVAU (docs/lowering.md#binarized-networks).

A BipolarQuant activation (values -s, +s) travels as its BINARY code b (value = s * (2b - 1)),
as FINN's ConvertBipolarMatMulToXnorPopcount makes the MultiThreshold before an XNOR layer emit
BINARY. When such an input meets bipolar weights the layer becomes FINN's MVAU with
binaryXnorMode=1: weights stored as BINARY (w + 1) / 2, and the accumulator is the popcount
p = #{i : x_i == w_i} in [0, K], whose real value is s_in * s_w * (2p - K). Thresholds are found
on p (FINN's thresholds after absorbing ConvertBipolarMatMulToXnorPopcount's Mul(2), Add(-K)).
Bipolar weights after a multi-bit input need nothing special: they are the integers -1 and +1
(FINN's step_minimize_bit_width stores them as INT2, and so does the lowering).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx

from core.errors import UnsupportedNodeError
from splitter.lowering.cursor import Cursor
from splitter.lowering.weights import bipolar_weights

if TYPE_CHECKING:
    from splitter.lowering.emitter import ComputeLayer
    from splitter.lowering.onnx_view import OnnxView


def binary_form(view: OnnxView, node: onnx.NodeProto, cur: Cursor, layer: ComputeLayer) -> ComputeLayer:
    """The XNOR form of `layer` when its input is a bipolar activation; unchanged otherwise."""
    if not cur.bipolar:
        return layer
    if layer.op_type != "MVAU" or not bipolar_weights(view, node):
        raise UnsupportedNodeError(
            node.name, node.op_type,
            "a bipolar (BipolarQuant) activation feeds a layer with multi-bit or depthwise weights; FINN's MVAU "
            "reads bipolar activations only in XNOR mode, with bipolar (BipolarQuant) weights")
    k = layer.weights.shape[0]
    # layer.alpha = weight scale * cursor step, and the step of a BINARY code is twice its scale
    attrs = {**layer.attrs, "binaryXnorMode": 1}
    weights = (layer.weights + 1) // 2
    return layer._replace(weights=weights, beta=-k * layer.alpha / 2, attrs=attrs, xnor=True)


def popcount_range(layer: ComputeLayer) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel bounds of an XNOR layer's popcount: [0, K]."""
    k, channels = layer.weights.shape
    return np.zeros(channels, dtype=np.int64), np.full(channels, k, dtype=np.int64)


def flip_decreasing(weights: np.ndarray, thresholds: np.ndarray, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binary weights and popcount thresholds with each decreasing channel (sign -1) mirrored.

    derive_thresholds gives thresholds on -p for such a channel. Inverting its binary weights turns
    p into K - p, and -p >= T exactly when K - p >= T + K.
    """
    k = weights.shape[0]
    flip = sign < 0
    return np.where(flip[None, :], 1 - weights, weights), np.where(flip[:, None], thresholds + k, thresholds)

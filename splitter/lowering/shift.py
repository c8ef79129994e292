"""A padded first convolution after a declared mean subtraction, lowered exactly (docs/lowering.md#input-quantization).

FINN's FMPadding pads with integer 0, the ONNX model pads with 0.0. With a declared input
(x * scale - mean[c]) / std the real 0 lies at x = mean[c] / scale (123.675 for ImageNet's red
channel at scale 1/255), which no pixel value holds. So the host sends x' = D * x - K[c] instead of
x, with D the smallest integer making every D * mean[c] / scale a whole number K[c] (D = 200 for
ImageNet's means at 1/255): x' is 0 exactly where the real value is 0, x' * scale / (D * std) is the
real value, and the padding and the convolution are exact. The price is a wider first tensor
(INT16 for ImageNet's UINT8 pixels). Means that are not such rationals (denominator above
MAX_DENOMINATOR) are refused. Only the model input has a declared mean; an offset elsewhere (a
bipolar code) before a padded convolution is refused by the caller.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from math import lcm

import numpy as np

from core.datatypes import smallest_datatype
from core.errors import UnsupportedNodeError
from splitter.graph import InputQuant
from splitter.lowering.cursor import Cursor

MAX_DENOMINATOR = 1024
_TOLERANCE = 1e-9  # relative: how close D * mean / scale must be to a whole number


def shift_declared_input(iq: InputQuant, cur: Cursor, node_name: str) -> tuple[InputQuant, Cursor]:
    """The declared input re-based so its integer 0 is the real 0: (input quantization, cursor)."""
    ratio = -np.asarray(cur.offset, dtype=np.float64) / np.asarray(cur.scale, dtype=np.float64)
    factor = _common_denominator(ratio)
    if factor is None:
        raise UnsupportedNodeError(
            node_name, "Conv",
            f"padding after an input mean subtraction: the real 0.0 lies at the pixel values "
            f"{ratio.round(6).tolist()}, which no integer scaling up to {MAX_DENOMINATOR} makes whole; pad in the "
            "model before the mean subtraction, or use an unpadded first convolution")
    shift = np.rint(ratio * factor).astype(np.int64)
    dtype = smallest_datatype(cur.dtype.min * factor - int(shift.max()), cur.dtype.max * factor - int(shift.min()))
    shifted = replace(cur, scale=cur.scale / factor, offset=np.zeros(cur.channels), dtype=dtype)
    return replace(iq, factor=factor, shift=tuple(int(k) for k in shift)), shifted


def _common_denominator(ratio: np.ndarray) -> int | None:
    """Smallest D <= MAX_DENOMINATOR with D * ratio[c] whole for every c, else None."""
    denominator = 1
    for value in ratio:
        frac = Fraction(float(value)).limit_denominator(MAX_DENOMINATOR)
        if abs(float(frac) - value) > _TOLERANCE * max(1.0, abs(float(value))):
            return None
        denominator = lcm(denominator, frac.denominator)
        if denominator > MAX_DENOMINATOR:
            return None
    return denominator

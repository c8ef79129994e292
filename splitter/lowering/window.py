"""The layers that turn an image stream into windows: `FMPadding` and `ConvolutionInputGenerator`.

Shared by convolutions (lowering/compute.py) and pooling (lowering/pooling.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from splitter.lowering.cursor import Cursor

if TYPE_CHECKING:
    from splitter.lowering.emitter import Emitter


def padding(lw: Emitter, cur: Cursor, pads, source: tuple[str, ...]) -> Cursor:
    """Emit an FMPadding for ONNX `pads` (top, left, bottom, right); no layer when they are all 0."""
    if not any(pads):
        return cur
    _, height, width, channels = cur.shape
    top, left, bottom, right = pads[0], pads[1], pads[2], pads[3]
    shape = (1, height + top + bottom, width + left + right, channels)
    out = lw.emit(
        "FMPadding",
        cur,
        {
            "ImgDim": (height, width),
            "Padding": (top, left, bottom, right),
            "NumChannels": channels,
            "SIMD": 1,
            "inputDataType": cur.dtype.name,
            "numInputVectors": 1,
        },
        shape,
        cur.dtype,
        source=source,
    )
    return replace(cur, tensor=out, shape=shape)


def sliding_window(
    lw: Emitter,
    cur: Cursor,
    kernel,
    strides,
    out_dims,
    source: tuple[str, ...],
    dilations=(1, 1),
    depthwise: bool = True,
) -> Cursor:
    """Emit a sliding window generator; its output holds one (ky, kx, c) window per output pixel."""
    _, height, width, channels = cur.shape
    shape = (1, *out_dims, kernel[0] * kernel[1] * channels)
    out = lw.emit(
        "ConvolutionInputGenerator",
        cur,
        {
            "ConvKernelDim": tuple(kernel),
            "IFMChannels": channels,
            "IFMDim": (height, width),
            "OFMDim": tuple(out_dims),
            "SIMD": 1,
            "Stride": tuple(strides),
            "Dilation": tuple(dilations),
            "depthwise": int(depthwise),
            "parallel_window": 0,
            "inputDataType": cur.dtype.name,
            "outputDataType": cur.dtype.name,
        },
        shape,
        cur.dtype,
        source=source,
    )
    return replace(cur, tensor=out, shape=shape)

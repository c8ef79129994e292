"""What the walker and its pattern handlers pass between them: the `Cursor`, and `store` for params.

A `Cursor` names the ONNX tensor that the current integer dataflow tensor represents
(ONNX value = integer * scale[c] + offset[c]); every handler takes one and returns the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.datatypes import DataType, smallest_storage


@dataclass(frozen=True)
class Cursor:
    """The integer tensor the walk has reached and what it means in the ONNX model."""

    onnx: str
    tensor: str
    scale: np.ndarray  # (C,) real value of one integer step
    offset: np.ndarray  # (C,) real value of integer 0 (non-zero only for a declared input mean)
    dtype: DataType
    shape: tuple[int, ...]  # NHWC dataflow shape
    flattened_from: tuple[int, int, int] | None = None  # (C, H, W) when ONNX flattened an NCHW tensor
    rank: int = 4  # rank of the ONNX tensor (4: NCHW, 2: NC)
    bipolar: bool = False  # BINARY code of a bipolar value: offset = -scale / 2 (lowering/binary.py)

    @property
    def channels(self) -> int:
        """Channel count of the dataflow tensor (its last axis)."""
        return self.shape[-1]


def store(array: np.ndarray) -> np.ndarray:
    """Integer parameters in the narrowest signed storage type."""
    array = np.asarray(array, dtype=np.int64)
    return array.astype(smallest_storage(int(array.min(initial=0)), int(array.max(initial=0))))

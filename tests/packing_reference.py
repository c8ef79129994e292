"""The bit-matrix dense packing core.packing used before its numpy fast paths.

Kept as the reference: tests/core/test_packing.py checks the fast paths against it byte for byte, and
benchmarks/packing.py measures them against it.
"""

from __future__ import annotations

import numpy as np

from core.datatypes import DataType
from core.packing import packed_size


def reference_pack(values: np.ndarray, dtype: DataType) -> bytes:
    """The bit-matrix pack that core.packing used before its numpy fast paths."""
    flat = np.asarray(values).reshape(-1)
    if not dtype.allowed(flat):
        raise ValueError(f"values outside {dtype.name} range [{dtype.min}, {dtype.max}]")
    bits = dtype.bitwidth
    if dtype.is_bipolar:
        codes = (flat > 0).astype(np.uint64)
    else:
        mask = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
        codes = flat.astype(np.int64).astype(np.uint64) & mask
    if bits in (8, 16, 32, 64):
        return codes.astype(f"<u{bits // 8}").tobytes()
    shifts = np.arange(bits, dtype=np.uint64)
    bitmat = ((codes[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bitmat.reshape(-1), bitorder="little").tobytes()


def reference_unpack(data: bytes, dtype: DataType, shape: tuple[int, ...]) -> np.ndarray:
    """The bit-matrix unpack that core.packing used before its numpy fast paths."""
    count = int(np.prod(shape))
    if len(data) != packed_size(count, dtype):
        raise ValueError(f"expected {packed_size(count, dtype)} bytes for {count} x {dtype.name}, got {len(data)}")
    bits = dtype.bitwidth
    if bits in (8, 16, 32, 64):
        kind = "<i" if dtype.signed and not dtype.is_bipolar else "<u"
        values = np.frombuffer(data, dtype=f"{kind}{bits // 8}").astype(np.int64)
    else:
        bitarr = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")[: count * bits]
        weights = np.left_shift(np.uint64(1), np.arange(bits, dtype=np.uint64))
        codes = (bitarr.reshape(count, bits).astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
        values = codes.astype(np.int64)
        if dtype.signed and not dtype.is_bipolar:
            values = np.where(values >= (1 << (bits - 1)), values - (1 << bits), values)
    if dtype.is_bipolar:
        values = np.where(values > 0, 1, -1)
    return values.reshape(shape)

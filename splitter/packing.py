"""Dense bit packing of integer tensors, the wire format between boards (docs/protocol.md).

Element i of the flattened (row-major, NHWC) tensor occupies bits [i*b, (i+1)*b) of a
little-endian bit stream: bit j of the stream is bit (j % 8) of byte j // 8. Values are stored
in b-bit two's complement; BIPOLAR stores -1 as 0 and +1 as 1. The last byte is zero padded.
This layout does not depend on any FPGA folding (unlike FINN's per-word padded packing).
"""

from __future__ import annotations

import numpy as np

from splitter.datatypes import DataType


def packed_size(num_elements: int, dtype: DataType) -> int:
    """Bytes that `num_elements` values of `dtype` occupy when densely packed."""
    return (num_elements * dtype.bitwidth + 7) // 8


def pack(values: np.ndarray, dtype: DataType) -> bytes:
    """Pack integer `values` of `dtype` densely; raises ValueError on an out-of-range value."""
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
    return _pack_bits(codes, bits)


def _pack_bits(codes: np.ndarray, bits: int) -> bytes:
    """Generic path: expand each code to `bits` little-endian bits and pack them 8 per byte."""
    shifts = np.arange(bits, dtype=np.uint64)
    bitmat = ((codes[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bitmat.reshape(-1), bitorder="little").tobytes()


def unpack(data: bytes, dtype: DataType, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of pack: an int64 array of `shape`; raises ValueError on a size mismatch."""
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

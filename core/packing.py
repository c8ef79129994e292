"""Dense bit packing of integer tensors, the wire format between boards (docs/protocol.md).

Element i of the flattened (row-major, NHWC) tensor occupies bits [i*b, (i+1)*b) of a
little-endian bit stream: bit j of the stream is bit (j % 8) of byte j // 8. Values are stored
in b-bit two's complement; BIPOLAR stores -1 as 0 and +1 as 1. The last byte is zero padded.
This layout does not depend on any FPGA folding (unlike FINN's per-word padded packing).

Speed (benchmarks/packing.py): no path expands values into bits. Widths 8, 16, 32 and 64 are a
little-endian cast; 1 is np.packbits. For 2 and 4, the 8/b one-byte codes of an output byte are
read as one little-endian word and shifted into place (`_pack_sub_byte`). Other widths: a group
of g = 8 / gcd(b, 8) values fills exactly g*b/8 whole bytes, so the stream is a (groups, g*b/8)
byte matrix whose every column is a few shifted value columns OR-ed together (`_layout`), in the
narrowest unsigned type holding b bits; no word exceeds 64 bits even where g*b does (b = 9, 11, ...).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from core.datatypes import DataType

if TYPE_CHECKING:
    from core.datatypes import TensorSpec

_BYTE_WIDTHS = (8, 16, 32, 64)  # one value per 1, 2, 4 or 8 bytes: a plain little-endian cast
_SUB_BYTE_WIDTHS = (2, 4)  # 8/b values per byte, combined within one 4- or 2-byte word


def packed_size(num_elements: int, dtype: DataType) -> int:
    """Bytes that `num_elements` values of `dtype` occupy when densely packed."""
    return (num_elements * dtype.bitwidth + 7) // 8


def pack(values: np.ndarray, dtype: DataType) -> bytes:
    """Pack integer `values` of `dtype` densely; raises ValueError on an out-of-range value."""
    flat = np.asarray(values).reshape(-1)
    if not _in_range(flat, dtype):
        raise ValueError(f"values outside {dtype.name} range [{dtype.min}, {dtype.max}]")
    bits = dtype.bitwidth
    if dtype.is_bipolar:
        codes = (flat > 0).astype(np.uint8)
    else:
        if flat.dtype.kind not in "iu":
            flat = flat.astype(np.int64)  # floats and bools truncate as they always did
        # Integer -> unsigned casts wrap modulo 2**width: the low bits are the two's complement code.
        codes = flat.astype(_work_dtype(bits))
        if dtype.min < 0 and bits not in _BYTE_WIDTHS:
            codes &= (1 << bits) - 1
    if bits in _BYTE_WIDTHS:
        return codes.astype(f"<u{bits // 8}", copy=False).tobytes()
    if bits == 1:
        return np.packbits(codes, bitorder="little").tobytes()
    if bits in _SUB_BYTE_WIDTHS:
        return _pack_sub_byte(codes, bits).tobytes()
    return _pack_groups(codes, bits).tobytes()[: packed_size(flat.size, dtype)]


def unpack(data: bytes, dtype: DataType, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of pack: an int64 array of `shape`; raises ValueError on a size mismatch."""
    count = int(np.prod(shape))
    if len(data) != packed_size(count, dtype):
        raise ValueError(f"expected {packed_size(count, dtype)} bytes for {count} x {dtype.name}, got {len(data)}")
    bits = dtype.bitwidth
    raw = np.frombuffer(data, dtype=np.uint8)
    if bits in _BYTE_WIDTHS:
        kind = "<i" if dtype.signed and not dtype.is_bipolar else "<u"
        values = raw.view(f"{kind}{bits // 8}").astype(np.int64)
    else:
        if bits == 1:
            codes = np.unpackbits(raw, count=count, bitorder="little")
        elif bits in _SUB_BYTE_WIDTHS:
            codes = _unpack_sub_byte(raw, bits)[:count]
        else:
            codes = _unpack_groups(raw, bits)[:count]
        if dtype.is_bipolar:
            codes = codes.view(np.int8) * 2 - 1  # 0 -> -1, 1 -> +1, before widening to int64
        elif dtype.signed:
            codes = _sign_extend(codes, bits)
        values = codes.astype(np.int64)
    return values.reshape(shape)


def pack_frame(values: Sequence[np.ndarray], specs: Sequence[TensorSpec]) -> bytes:
    """One frame of several tensors (a cut inside a residual block): each packed densely, in order
    (docs/protocol.md#multi-tensor-frames)."""
    return b"".join(pack(v, spec.dtype) for v, spec in zip(values, specs, strict=True))


def unpack_frame(data: bytes, specs: Sequence[TensorSpec]) -> list[np.ndarray]:
    """The tensors of one frame `pack_frame` wrote (ValueError if the size does not match)."""
    sizes = [packed_size(spec.num_elements, spec.dtype) for spec in specs]
    if len(data) != sum(sizes):
        raise ValueError(f"a frame of {len(data)} bytes, expected {sum(sizes)} for {[s.name for s in specs]}")
    out, offset = [], 0
    for spec, size in zip(specs, sizes, strict=True):
        out.append(unpack(data[offset:offset + size], spec.dtype, spec.shape))
        offset += size
    return out


def _in_range(flat: np.ndarray, dtype: DataType) -> bool:
    """dtype.allowed(flat), in one or two reductions for integer arrays (no boolean temporaries)."""
    if flat.size == 0 or flat.dtype.kind not in "iu":
        return dtype.allowed(flat)
    if dtype.is_bipolar:
        # Integers in [-1, 1] none of which is 0: the same test without two boolean temporaries.
        return int(flat.min()) >= -1 and int(flat.max()) <= 1 and np.count_nonzero(flat) == flat.size
    width = 8 * flat.dtype.itemsize
    if dtype.min == 0 and (flat.dtype.kind == "u" or dtype.max < 1 << (width - 1)):
        # Read as unsigned, a negative value is at least 2**(width-1), above dtype.max: one max() checks both ends.
        return int(flat.view(f"u{flat.dtype.itemsize}").max()) <= dtype.max
    return int(flat.min()) >= dtype.min and int(flat.max()) <= dtype.max


def _work_dtype(bits: int) -> np.dtype:
    """Narrowest unsigned numpy type holding a `bits`-bit code."""
    return np.dtype(f"uint{max(8, 1 << math.ceil(math.log2(bits)))}")


@cache
def _layout(bits: int) -> tuple[int, int, tuple[tuple[tuple[int, int], ...], ...]]:
    """(values per group g, bytes per group, per byte k the (value i, shift) pairs that fill it).

    shift = i*b - 8k: the byte holds value i shifted left by `shift` (right by -shift) in its low 8 bits.
    """
    group = 8 // math.gcd(bits, 8)
    nbytes = group * bits // 8
    columns = []
    for k in range(nbytes):
        first, last = 8 * k // bits, (8 * k + 7) // bits
        columns.append(tuple((i, i * bits - 8 * k) for i in range(first, last + 1)))
    return group, nbytes, tuple(columns)


def _shift(column: np.ndarray, shift: int) -> np.ndarray:
    """column << shift for shift >= 0, else column >> -shift (both stay below the type's width)."""
    return column << shift if shift >= 0 else column >> -shift


def _pack_sub_byte(codes: np.ndarray, bits: int) -> np.ndarray:
    """One byte per 8/bits uint8 codes: code i moves from bit 8i of their word to bit i*bits."""
    per_byte = 8 // bits
    if codes.size % per_byte:
        codes = np.concatenate([codes, np.zeros(per_byte - codes.size % per_byte, np.uint8)])
    word = codes.view(f"<u{per_byte}")
    # Codes are below 2**bits, so what the shifts move past the low byte is dropped by the final cast.
    out = word.copy()
    for i in range(1, per_byte):
        out |= word >> (i * (8 - bits))
    return out.astype(np.uint8)


def _unpack_sub_byte(raw: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of _pack_sub_byte: 8/bits uint8 codes per byte of `raw`."""
    per_byte = 8 // bits
    word = raw.astype(f"<u{per_byte}")
    mask = (1 << bits) - 1
    out = word & mask
    for i in range(1, per_byte):
        out |= (word << (i * (8 - bits))) & (mask << (8 * i))
    return out.view(np.uint8)


def _pack_groups(codes: np.ndarray, bits: int) -> np.ndarray:
    """The (groups, bytes per group) uint8 stream of `codes`; the tail group is zero padded."""
    group, nbytes, columns = _layout(bits)
    groups = -(-codes.size // group)
    if codes.size != groups * group:
        codes = np.concatenate([codes, np.zeros(groups * group - codes.size, codes.dtype)])
    by_value = codes.reshape(groups, group)
    out = np.empty((groups, nbytes), np.uint8)
    for k, parts in enumerate(columns):
        acc = _shift(by_value[:, parts[0][0]], parts[0][1])
        for i, shift in parts[1:]:
            acc |= _shift(by_value[:, i], shift)
        out[:, k] = acc  # keeps the low 8 bits: the unsigned cast wraps
    return out


def _unpack_groups(raw: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned codes of every value slot in `raw`, including the padding slots of the last group."""
    group, nbytes, columns = _layout(bits)
    groups = -(-raw.size // nbytes)
    if raw.size != groups * nbytes:
        raw = np.concatenate([raw, np.zeros(groups * nbytes - raw.size, np.uint8)])
    work = _work_dtype(bits)
    by_byte = raw.reshape(groups, nbytes).astype(work, copy=False)
    parts_of_value: list[list[tuple[int, int]]] = [[] for _ in range(group)]
    for k, parts in enumerate(columns):
        for i, shift in parts:
            parts_of_value[i].append((k, -shift))
    codes = np.empty((groups, group), work)
    mask = work.type((1 << bits) - 1)
    for i, parts in enumerate(parts_of_value):
        acc = _shift(by_byte[:, parts[0][0]], parts[0][1])
        for k, shift in parts[1:]:
            acc |= _shift(by_byte[:, k], shift)
        codes[:, i] = acc & mask
    return codes.reshape(-1)


def _sign_extend(codes: np.ndarray, bits: int) -> np.ndarray:
    """Reinterpret unsigned `bits`-bit codes as two's complement, in the same width as signed."""
    spare = codes.dtype.itemsize * 8 - bits
    signed = (codes << spare).view(f"i{codes.dtype.itemsize}")
    return signed >> spare

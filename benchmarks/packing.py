"""Dense packing throughput: splitter.packing's numpy paths vs the bit-matrix implementation they replaced.

Usage: .venv/bin/python benchmarks/packing.py [--repeat 20]

Frames: a MobileNetV1-w4a4 activation (UINT4 112x112x64, the widest in the network) and the
UINT8 224x224x3 input image, plus a few widths the fast paths treat differently. Everything printed is
measured in this run (best of --repeat); MB/s counts unpacked int64 values (8 bytes each) per second.
The old implementation is copied here verbatim (tests/test_packing.py holds the same copy as its oracle).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from splitter.datatypes import DataType, datatype
from splitter.packing import pack, packed_size, unpack

FRAMES = [
    ("UINT4", (1, 112, 112, 64), "MobileNetV1 activation"),
    ("UINT8", (1, 224, 224, 3), "MobileNetV1 input"),
    ("BIPOLAR", (1, 112, 112, 64), "1 bit, packbits"),
    ("INT2", (1, 112, 112, 64), "divides 8"),
    ("INT3", (1, 112, 112, 64), "generic, 8 values in 3 bytes"),
    ("UINT12", (1, 112, 112, 64), "generic, 2 values in 3 bytes"),
    ("INT17", (1, 56, 56, 64), "generic, 8 values in 17 bytes"),
]


def old_pack(values: np.ndarray, dtype: DataType) -> bytes:
    """The bit-matrix pack that splitter.packing used before its numpy fast paths."""
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


def old_unpack(data: bytes, dtype: DataType, shape: tuple[int, ...]) -> np.ndarray:
    """The bit-matrix unpack that splitter.packing used before its numpy fast paths."""
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


def best_seconds(fn: Callable[[], object], repeat: int) -> float:
    """Fastest of `repeat` timed calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(name: str, shape: tuple[int, ...], repeat: int) -> list[tuple[str, float, float]]:
    """(operation, new seconds, old seconds) for pack and unpack of one frame; checks both agree first."""
    dtype = datatype(name)
    rng = np.random.default_rng(0)
    if dtype.is_bipolar:
        values = rng.choice(np.array([-1, 1]), size=shape)
    else:
        values = rng.integers(dtype.min, dtype.max, size=shape, endpoint=True)
    data = pack(values, dtype)
    if data != old_pack(values, dtype) or not np.array_equal(unpack(data, dtype, shape), values):
        raise SystemExit(f"{name}: new and old packing disagree; fix that before timing anything")
    return [
        ("pack", best_seconds(lambda: pack(values, dtype), repeat),
         best_seconds(lambda: old_pack(values, dtype), repeat)),
        ("unpack", best_seconds(lambda: unpack(data, dtype, shape), repeat),
         best_seconds(lambda: old_unpack(data, dtype, shape), repeat)),
    ]


def main() -> None:
    """Print new vs old time, throughput and speed-up for every frame in FRAMES."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per measurement (best is kept)")
    args = parser.parse_args()
    print(f"numpy {np.__version__}; best of {args.repeat}; MB/s = int64 values (8 B each) per second")
    for name, shape, what in FRAMES:
        count = int(np.prod(shape))
        mbytes = count * 8 / 1e6
        dims = "x".join(str(d) for d in shape[1:])
        print(f"\n{name} {dims} ({count:,} values, {packed_size(count, datatype(name)):,} B packed) - {what}")
        for op, new, old in measure(name, shape, args.repeat):
            print(f"  {op:<6} {name}: new {new * 1e3:7.2f} ms ({mbytes / new:8.0f} MB/s), "
                  f"old {old * 1e3:7.2f} ms ({mbytes / old:7.0f} MB/s), {old / new:5.1f}x")


if __name__ == "__main__":
    main()

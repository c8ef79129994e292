"""Dense packing throughput: core.packing's numpy paths vs the bit-matrix implementation they replaced.

Usage: .venv/bin/python benchmarks/packing.py [--repeat 20]

Frames: a MobileNetV1-w4a4 activation (UINT4 112x112x64, the widest in the network) and the
UINT8 224x224x3 input image, plus a few widths the fast paths treat differently. Everything printed is
measured in this run (best of --repeat); MB/s counts unpacked int64 values (8 bytes each) per second.
The old implementation lives in tests/packing_reference.py (the tests' oracle too).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from packing_reference import reference_pack, reference_unpack

from core.datatypes import datatype
from core.packing import pack, packed_size, unpack

FRAMES = [
    ("UINT4", (1, 112, 112, 64), "MobileNetV1 activation"),
    ("UINT8", (1, 224, 224, 3), "MobileNetV1 input"),
    ("BIPOLAR", (1, 112, 112, 64), "1 bit, packbits"),
    ("INT2", (1, 112, 112, 64), "divides 8"),
    ("INT3", (1, 112, 112, 64), "generic, 8 values in 3 bytes"),
    ("UINT12", (1, 112, 112, 64), "generic, 2 values in 3 bytes"),
    ("INT17", (1, 56, 56, 64), "generic, 8 values in 17 bytes"),
]


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
    if data != reference_pack(values, dtype) or not np.array_equal(unpack(data, dtype, shape), values):
        raise SystemExit(f"{name}: new and old packing disagree; fix that before timing anything")
    return [
        ("pack", best_seconds(lambda: pack(values, dtype), repeat),
         best_seconds(lambda: reference_pack(values, dtype), repeat)),
        ("unpack", best_seconds(lambda: unpack(data, dtype, shape), repeat),
         best_seconds(lambda: reference_unpack(data, dtype, shape), repeat)),
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

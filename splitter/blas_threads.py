"""numpy's OpenBLAS on one thread while a block runs (the fast executor parallelises over frames instead).

On a loaded 2-core machine OpenBLAS's own threads spin while waiting for each other: measured
here, a MobileNetV1 frame through the fast path took 0.72 s with 2 BLAS threads and 0.22 s with
one. numpy has no switch for it; OpenBLAS's C API does (what threadpoolctl calls). The setting is
process-wide, so holders are counted and the first count is restored when the last one leaves.
If numpy's BLAS is not an OpenBLAS this finds, the block runs unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

_lock = threading.Lock()
_holders = 0
_saved = 0


def _openblas() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """(get, set) of the thread count of the OpenBLAS bundled with numpy, or None."""
    for lib in sorted((Path(np.__file__).parent.parent / "numpy.libs").glob("*openblas*.so*")):
        try:
            handle = ctypes.CDLL(str(lib))
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "")):
            get = getattr(handle, f"{prefix}_get_num_threads{suffix}", None)
            put = getattr(handle, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                return get, put
    return None


_API = _openblas()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with numpy's OpenBLAS on one thread (no-op if it cannot be found)."""
    global _holders, _saved
    if _API is None:
        yield
        return
    get, put = _API
    with _lock:
        if _holders == 0:
            _saved = get()
            put(1)
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                put(_saved)

"""The executor's exact fast path: the same integers as splitter.executor, through BLAS float products.

Float arithmetic on integers is exact while every value and every partial sum is an integer of
magnitude below 2**p (p = 24 for float32, 53 for float64): such products and sums round to
themselves, in whatever order and blocking BLAS chooses. Before each matrix or depthwise product
the kernel bounds every partial sum by max|x| * max_j sum_i |w[i, j]| (x: the actual input, w: the
layer's weights) and computes in float32 under 2**24, in float64 under 2**53, and otherwise runs
the int64 reference kernel. `precision_plan` states the same choice from the datatypes alone.
Thresholds become per-channel lookup tables over the accumulator range they separate.

Values travel between layers as exact integers in integer or float arrays; ops without a fast
kernel run the reference kernel, which accepts any of them. Why this is exact, in prose:
docs/program-format.md#exact-fast-path.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from core.datatypes import DataType, smallest_storage
from splitter import kernels as reference
from splitter.blas_threads import one_blas_thread
from splitter.graph import DataflowGraph, Layer, pair

# The exactness limit of each float type: every integer of smaller magnitude is representable.
EXACT_LIMIT = {np.dtype(np.float32): 2**24, np.dtype(np.float64): 2**53}
# Larger threshold tables than this (entries, all channels) are slower than counting.
_TABLE_LIMIT = 2**21


def exact_float(bound: int) -> np.dtype | None:
    """The narrowest float type exact for integers and partial sums up to `bound`, or None."""
    for dtype, limit in EXACT_LIMIT.items():
        if bound < limit:
            return dtype
    return None


def magnitude(x: np.ndarray) -> int:
    """max |x| of an exact-integer array (0 if empty)."""
    if x.size == 0:
        return 0
    return max(abs(int(x.max())), abs(int(x.min())))


def weight_factor(layer: Layer) -> int:
    """Bound on a product's partial sums per unit of max|x|: max over outputs of sum |w| (+ XNOR's constant)."""
    weights = layer.params["weights"].astype(np.int64)
    if layer.op_type == "VVAU":
        return int(np.abs(weights).sum(axis=1).max(initial=0))
    if int(layer.attrs.get("binaryXnorMode", 0)):
        return 2 * weights.shape[0]  # bipolar weights 2w - 1, then + #zeros (at most MW)
    return int(np.abs(weights).sum(axis=0).max(initial=0))


def _dtype_magnitude(dt: DataType) -> int:
    return max(abs(dt.min), abs(dt.max))


def precision_plan(graph: DataflowGraph) -> dict[str, str]:
    """Per MVAU/VVAU: the arithmetic its input datatype allows ("float32", "float64" or "int64")."""
    plan = {}
    for layer in graph.layers:
        if layer.op_type in ("MVAU", "VVAU"):
            dtype = exact_float(_dtype_magnitude(graph.tensors[layer.input].dtype) * weight_factor(layer))
            plan[layer.name] = dtype.name if dtype is not None else "int64"
    return plan


class ThresholdTable:
    """ActVal + #{t : acc >= thresholds[c, t]} as one lookup per value.

    Channel c's table covers lo_c = min_t thr[c, t] - 1 (count 0) to hi_c = max_t thr[c, t]
    (count T); accumulators are clipped into [lo_c, hi_c], which leaves every count unchanged.
    """

    def __init__(self, thresholds: np.ndarray, channels: int, act_val: int):
        """Tables of every channel, concatenated; offsets[c] is where channel c's starts."""
        thr = _per_channel(thresholds, channels)
        self.lo = thr.min(axis=1) - 1
        self.hi = thr.max(axis=1)
        spans = self.hi - self.lo + 1
        self.offsets = np.concatenate([[0], np.cumsum(spans)[:-1]])
        # Channel c's thresholds sit at positions t - lo_c + offsets[c], inside its own segment, so
        # one sorted search counts, at every position, the thresholds of its channel up to there.
        positions = np.sort((thr - self.lo[:, None] + self.offsets[:, None]).ravel())
        entries = np.arange(int(spans.sum()))
        below = np.repeat(np.arange(channels) * thr.shape[1], spans)  # earlier channels' thresholds
        counts = np.searchsorted(positions, entries, side="right") - below + act_val
        self.table = counts.astype(smallest_storage(act_val, act_val + thr.shape[1]))
        self._shift = self.offsets - self.lo
        self._bounds = {dtype: tuple(b.astype(dtype) for b in (self.lo, self.hi, self._shift))
                        for dtype, limit in EXACT_LIMIT.items()
                        if max(int(np.abs(b).max(initial=0)) for b in (self.lo, self.hi, self._shift)) < limit}

    @staticmethod
    def size(thresholds: np.ndarray, channels: int) -> int:
        """Entries a table of these thresholds would hold."""
        thr = _per_channel(thresholds, channels)
        return int((thr.max(axis=1) - thr.min(axis=1) + 2).sum())

    def exact_for(self, dtype: np.dtype) -> bool:
        """True if the index arithmetic is exact in float type `dtype` (bounds below its limit)."""
        return dtype in self._bounds

    def __call__(self, acc: np.ndarray) -> np.ndarray:
        """The activations of exact-integer float accumulators `acc` (channels last; exact_for)."""
        lo, hi, shift = self._bounds[acc.dtype]
        index = np.maximum(acc, lo)
        np.minimum(index, hi, out=index)
        index += shift  # now offsets[c] + (clipped acc - lo_c): an entry of channel c's segment
        return np.take(self.table, index.astype(np.intp), mode="wrap")  # in range: no bound checks


def _per_channel(thresholds: np.ndarray, channels: int) -> np.ndarray:
    thr = np.asarray(thresholds, dtype=np.int64)
    return np.broadcast_to(thr, (channels, thr.shape[1])) if thr.shape[0] == 1 else thr


def _count_thresholds(thresholds: np.ndarray, acc: np.ndarray, act_val: int) -> np.ndarray:
    """ActVal + #{t : acc >= thresholds[c, t]} by one comparison per step (for tables too large)."""
    limit = EXACT_LIMIT[acc.dtype]
    # |acc| < limit: a threshold clipped to +-limit is reached exactly when the original one is
    thr = np.clip(np.asarray(thresholds, dtype=np.int64), -limit, limit)
    thr = _per_channel(thr, acc.shape[-1])
    out = np.full(acc.shape, act_val, dtype=acc.dtype)
    reached = np.empty(acc.shape, dtype=bool)
    for row in np.ascontiguousarray(thr.T.astype(acc.dtype)):
        np.greater_equal(acc, row, out=reached)
        out += reached
    return out


def window_taps(layer: Layer, x: np.ndarray) -> list[np.ndarray]:
    """A sliding window's KH*KW taps as strided views of its input, in (ky, kx) order."""
    kh, kw = pair(layer.attr("ConvKernelDim"))
    sh, sw = pair(layer.attr("Stride"))
    dh, dw = pair(layer.attr("Dilation"))
    oh, ow = pair(layer.attr("OFMDim"))
    return [x[:, ky * dh : ky * dh + (oh - 1) * sh + 1 : sh, kx * dw : kx * dw + (ow - 1) * sw + 1 : sw, :]
            for ky in range(kh) for kx in range(kw)]


def _swg(layer: Layer, x: np.ndarray) -> np.ndarray:
    """Sliding windows written into one preallocated array (the reference concatenates)."""
    taps = window_taps(layer, x)
    out = np.empty((*taps[0].shape[:-1], len(taps), x.shape[-1]), dtype=x.dtype)
    for k, tap in enumerate(taps):
        out[..., k, :] = tap
    return out.reshape(*taps[0].shape[:-1], -1)


class FastExecutor:
    """One graph ready for the fast path: float weights and threshold tables are made once, then reused.

    Calling it gives exactly `splitter.executor.execute(graph, x)` (int64, batch axis first).
    """

    def __init__(self, graph: DataflowGraph, workers: int | None = None):
        """Nothing is converted yet: each layer's floats and tables are made on first use.

        `workers`: threads over the frames of a batch (default: one per CPU).
        """
        self.graph = graph
        self.workers = workers or os.cpu_count() or 1
        self._factors: dict[str, int] = {}
        self._weights: dict[tuple[str, str], np.ndarray] = {}
        self._tables: dict[str, ThresholdTable | None] = {}
        self._last_read = {name: i for i, layer in enumerate(graph.layers) for name in layer.inputs}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The graph's int64 output for integer NHWC input `x`; frames run in parallel threads.

        numpy and BLAS release the GIL inside their loops, so frames on threads use every core;
        BLAS itself runs on one thread meanwhile (splitter.blas_threads says why).
        """
        reference.check_input(self.graph, x)
        x = np.asarray(x)
        with one_blas_thread():
            if len(x) < 2 or self.workers < 2:
                return self._frames(x)
            with ThreadPoolExecutor(min(self.workers, len(x))) as pool:
                return np.concatenate(list(pool.map(self._frames, np.split(x, len(x)))))

    def _frames(self, x: np.ndarray) -> np.ndarray:
        layers = self.graph.layers
        values = {self.graph.input.name: x}
        index = 0
        while index < len(layers):
            layer = layers[index]
            inputs = [values[name] for name in layer.inputs]
            consumed = self._fused_window(index, inputs[0])
            if consumed is not None:
                result, layer = consumed, layers[index + 1]
                self._drop(values, layers[index], index)
                index += 1
            else:
                result = self._run(layer, inputs)
            self._drop(values, layer, index)
            values.update(dict.fromkeys(layer.outputs, result))
            index += 1
        return np.asarray(values[layers[-1].output]).astype(np.int64)

    def _drop(self, values: dict[str, np.ndarray], layer: Layer, index: int) -> None:
        for name in layer.inputs:
            if self._last_read[name] == index:
                values.pop(name, None)

    def _fused_window(self, index: int, x: np.ndarray) -> np.ndarray | None:
        """A sliding window read only by the next layer, a VVAU: the VVAU on the window's taps.

        The window is never materialised (KH*KW times less memory traffic); None if not applicable.
        """
        layers = self.graph.layers
        window = layers[index]
        if window.op_type != "ConvolutionInputGenerator" or index + 1 >= len(layers):
            return None
        consumer = layers[index + 1]
        if consumer.op_type != "VVAU" or consumer.inputs != (window.output,) or window.extra_outputs:
            return None
        if self._last_read[window.output] != index + 1:
            return None
        dtype = self._precision(consumer, magnitude(x))
        if dtype is None:
            return None
        return self._vvau_taps(consumer, window_taps(window, x.astype(dtype, copy=False)), dtype)

    def _run(self, layer: Layer, inputs: list[np.ndarray]) -> np.ndarray:
        result = None
        if layer.op_type == "MVAU":
            result = self._mvau(layer, inputs[0])
        elif layer.op_type == "VVAU":
            dtype = self._precision(layer, magnitude(inputs[0]))
            if dtype is not None:
                channels, taps = layer.params["weights"].shape
                windows = inputs[0].astype(dtype, copy=False).reshape(*inputs[0].shape[:-1], taps, channels)
                result = self._vvau_taps(layer, [windows[..., k, :] for k in range(taps)], dtype)
        elif layer.op_type == "ConvolutionInputGenerator":
            result = _swg(layer, inputs[0])
        return reference.run_layer(layer, *inputs) if result is None else result

    def _precision(self, layer: Layer, x_magnitude: int) -> np.dtype | None:
        if layer.name not in self._factors:
            self._factors[layer.name] = weight_factor(layer)
        return exact_float(x_magnitude * self._factors[layer.name])

    def _float_weights(self, layer: Layer, dtype: np.dtype) -> np.ndarray:
        """MVAU: (MW, MH) (bipolar 2w - 1 in XNOR mode); VVAU: (K, C), each tap's row contiguous."""
        key = (layer.name, dtype.name)
        if key not in self._weights:
            w = layer.params["weights"].astype(np.int64)
            if layer.op_type == "VVAU":
                w = w.T
            elif int(layer.attrs.get("binaryXnorMode", 0)):
                w = 2 * w - 1
            self._weights[key] = np.ascontiguousarray(w.astype(dtype))
        return self._weights[key]

    def _activate(self, layer: Layer, acc: np.ndarray) -> np.ndarray:
        if int(layer.attrs.get("noActivation", 0)):
            return acc
        thresholds = layer.params["thresholds"]
        act_val = int(layer.attrs.get("ActVal", 0))
        if layer.name not in self._tables:
            fits = ThresholdTable.size(thresholds, acc.shape[-1]) <= _TABLE_LIMIT
            self._tables[layer.name] = ThresholdTable(thresholds, acc.shape[-1], act_val) if fits else None
        table = self._tables[layer.name]
        if table is not None and table.exact_for(acc.dtype):
            return table(acc)
        return _count_thresholds(thresholds, acc, act_val)

    def _mvau(self, layer: Layer, x: np.ndarray) -> np.ndarray | None:
        mw = int(layer.attr("MW"))
        vectors = x.reshape(-1, mw) if x.shape[-1] == mw else x.reshape(x.shape[0], -1)
        dtype = self._precision(layer, magnitude(vectors))
        if dtype is None:
            return None
        acc = vectors.astype(dtype) @ self._float_weights(layer, dtype)
        if int(layer.attrs.get("binaryXnorMode", 0)):
            acc += (1 - layer.params["weights"].astype(np.int64)).sum(axis=0).astype(dtype)
        y = self._activate(layer, acc)
        lead = x.shape[:-1] if x.shape[-1] == mw else (x.shape[0], 1, 1)
        return y.reshape(*lead, y.shape[-1])

    def _vvau_taps(self, layer: Layer, taps: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
        """The depthwise product over window taps (each (N, OH, OW, C), of `dtype`), tap by tap."""
        w = self._float_weights(layer, dtype)
        acc = taps[0] * w[0]
        product = np.empty_like(acc)
        for k in range(1, len(taps)):
            np.multiply(taps[k], w[k], out=product)
            acc += product
        return self._activate(layer, acc)

"""The reference kernels: each dataflow layer in int64 numpy, bit-exact (semantics: docs/program-format.md).

splitter/executor.py runs graphs with them, splitter/fast_executor.py falls back to them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from splitter.graph import DataflowGraph, Layer, dtype_attr, pair

# Float64 matrix products are exact while every partial sum stays below 2**53; lowering keeps
# accumulators far narrower, and _matmul checks the bound before taking the fast BLAS path.
_EXACT_FLOAT = 2**53


def _matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    bound = float(np.abs(x).max(initial=0)) * float(np.abs(w).sum(axis=0).max(initial=0))
    if bound < _EXACT_FLOAT:
        return np.rint(x.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
    return x.astype(np.int64) @ w.astype(np.int64)


def multithreshold(acc: np.ndarray, thresholds: np.ndarray, act_val: int) -> np.ndarray:
    """ActVal + number of thresholds of each channel (last axis) that `acc` reaches."""
    thr = np.asarray(thresholds, dtype=np.int64)
    if thr.shape[0] == 1:
        thr = np.broadcast_to(thr, (acc.shape[-1], thr.shape[1]))
    out = np.full(acc.shape, act_val, dtype=np.int64)
    for t in range(thr.shape[1]):
        out += acc >= thr[:, t]
    return out


def _activate(layer: Layer, acc: np.ndarray) -> np.ndarray:
    if int(layer.attrs.get("noActivation", 0)):
        return acc
    return multithreshold(acc, layer.params["thresholds"], int(layer.attrs.get("ActVal", 0)))


def _fmpadding(layer: Layer, x: np.ndarray) -> np.ndarray:
    top, left, bottom, right = (int(p) for p in layer.attr("Padding"))
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def _swg(layer: Layer, x: np.ndarray) -> np.ndarray:
    kh, kw = pair(layer.attr("ConvKernelDim"))
    sh, sw = pair(layer.attr("Stride"))
    dh, dw = pair(layer.attr("Dilation"))
    oh, ow = pair(layer.attr("OFMDim"))
    taps = [
        x[:, ky * dh : ky * dh + (oh - 1) * sh + 1 : sh, kx * dw : kx * dw + (ow - 1) * sw + 1 : sw, :]
        for ky in range(kh)
        for kx in range(kw)
    ]
    return np.concatenate(taps, axis=-1)


def _mvau(layer: Layer, x: np.ndarray) -> np.ndarray:
    if x.shape[-1] != int(layer.attr("MW")):
        x = x.reshape(x.shape[0], 1, 1, -1)  # a flattened (1, H, W, C) input: one vector, NHWC order
    weights = layer.params["weights"]
    if int(layer.attrs.get("binaryXnorMode", 0)):
        return _activate(layer, xnor_popcount(x, weights))
    return _activate(layer, _matmul(x, weights))


def xnor_popcount(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """#{i : x[..., i] == weights[i, j]} for BINARY x and weights (FINN's binaryXnorMode accumulator).

    Equal bits contribute x * w + (1 - x) * (1 - w) = x * (2w - 1) + (1 - w): one matrix product.
    """
    w = weights.astype(np.int64)
    return _matmul(x, 2 * w - 1) + (1 - w).sum(axis=0)


def _vvau(layer: Layer, x: np.ndarray) -> np.ndarray:
    weights = layer.params["weights"].astype(np.int64)  # (C, K)
    channels, taps = weights.shape
    windows = x.reshape(*x.shape[:-1], taps, channels).astype(np.int64)
    acc = np.einsum("...kc,ck->...c", windows, weights)
    return _activate(layer, acc)


def _thresholding(layer: Layer, x: np.ndarray) -> np.ndarray:
    return multithreshold(x.astype(np.int64), layer.params["thresholds"], int(layer.attrs.get("ActVal", 0)))


def _channelwise(layer: Layer, x: np.ndarray) -> np.ndarray:
    param = layer.params["param"].astype(np.int64)
    func = layer.attr("Func")
    if func == "add":
        return x.astype(np.int64) + param
    if func == "mul":
        return x.astype(np.int64) * param
    raise ValueError(f"layer {layer.name}: ChannelwiseOp Func {func!r} is not add or mul")


def _maxpool(layer: Layer, x: np.ndarray) -> np.ndarray:
    kh, kw = pair(layer.attr("PoolDim"))
    n, h, w, c = x.shape
    oh, ow = h // kh, w // kw
    return x[:, : oh * kh, : ow * kw, :].reshape(n, oh, kh, ow, kw, c).max(axis=(2, 4))


def _pool(layer: Layer, x: np.ndarray) -> np.ndarray:
    kh, kw = pair(layer.attr("KernelSize"))
    windows = x.reshape(*x.shape[:-1], kh * kw, -1).astype(np.int64)
    if layer.attr("Function") == "MaxPool":
        return windows.max(axis=-2)
    out_dt = dtype_attr(layer, "OutputDataType")
    total = windows.sum(axis=-2) >> int(layer.attr("Shift"))
    return np.clip(total, out_dt.min, out_dt.max)


def _global_acc_pool(layer: Layer, x: np.ndarray) -> np.ndarray:
    return x.astype(np.int64).sum(axis=(1, 2), keepdims=True)


def _label_select(layer: Layer, x: np.ndarray) -> np.ndarray:
    k = int(layer.attr("K"))
    # Stable sort of the negated values: largest first, ties by lower index.
    order = np.argsort(-x.astype(np.int64), axis=-1, kind="stable")
    return order[..., :k].astype(np.int64)


def _duplicate_streams(layer: Layer, x: np.ndarray) -> np.ndarray:
    return x  # every output stream carries the input


def _add_streams(layer: Layer, x: np.ndarray, *others: np.ndarray) -> np.ndarray:
    total = x.astype(np.int64)
    for other in others:
        total = total + other.astype(np.int64)
    return total


# A kernel takes the layer and its inputs (Layer.inputs order); a layer with several outputs writes
# the one result to each.
KERNELS: dict[str, Callable[..., np.ndarray]] = {
    "FMPadding": _fmpadding,
    "ConvolutionInputGenerator": _swg,
    "MVAU": _mvau,
    "VVAU": _vvau,
    "Thresholding": _thresholding,
    "ChannelwiseOp": _channelwise,
    "StreamingMaxPool": _maxpool,
    "Pool": _pool,
    "GlobalAccPool": _global_acc_pool,
    "LabelSelect": _label_select,
    "DuplicateStreams": _duplicate_streams,
    "AddStreams": _add_streams,
}


def run_layer(layer: Layer, x: np.ndarray, *others: np.ndarray) -> np.ndarray:
    """Execute one layer on integer NHWC arrays (one per input); returns an int64 array."""
    try:
        kernel = KERNELS[layer.op_type]
    except KeyError:
        raise ValueError(f"layer {layer.name}: no executor for op type {layer.op_type}") from None
    if len(others) != len(layer.extra_inputs):
        raise ValueError(f"layer {layer.name}: {1 + len(others)} inputs given, it reads {len(layer.inputs)}")
    return kernel(layer, x, *others)


def check_input(graph: DataflowGraph, x: np.ndarray) -> None:
    """Raise ValueError unless `x` has the graph input's shape (after the batch axis) and datatype."""
    expected = graph.input.shape[1:]
    if tuple(x.shape[1:]) != tuple(expected):
        raise ValueError(f"{graph.name}: input shape {x.shape[1:]} does not match {expected}")
    if not graph.input.dtype.allowed(x):
        raise ValueError(f"{graph.name}: input values outside {graph.input.dtype.name}")

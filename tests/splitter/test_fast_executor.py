"""The executor's fast path (splitter.fast_executor) equals the int64 reference kernels bit for bit.

On every zoo model, and on graphs built at the extremes of their datatypes, where the bound on
partial sums crosses float32's 2**24 and float64's 2**53 and the path must change arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import ZOO
from cpp_fixtures import GraphBuilder, random_input, sorted_thresholds

from splitter.executor import execute
from splitter.fast_executor import FastExecutor, exact_float, precision_plan
from splitter.zoo import MODELS


def _same(graph, frames: np.ndarray) -> np.ndarray:
    fast = FastExecutor(graph)(frames)
    slow = np.concatenate([execute(graph, frame[None], fast=False) for frame in frames])
    assert fast.dtype == np.int64
    assert np.array_equal(fast, slow), f"{graph.name}: fast path differs from the reference"
    return fast


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_zoo_model_is_bit_exact(name: str, zoo_lowered: dict, tmp_path: Path) -> None:
    if name in ZOO:
        graph = zoo_lowered[name][1]
    else:
        from splitter.load import load_and_lower
        from splitter.zoo import export

        graph = load_and_lower(str(export(name, tmp_path / f"{name}.onnx", seed=0)), None, name)[1]
    rng = np.random.default_rng(1)
    frames = random_input(graph, rng)
    dt = graph.input.dtype
    extremes = np.stack([np.full(graph.input.shape[1:], v) for v in (dt.min, dt.max)])
    _same(graph, np.concatenate([frames, extremes]))


def _mvau_graph(in_dtype: str, weights: np.ndarray, *, thresholds: np.ndarray | None = None,
                act_val: int = 0, out_dtype: str = "INT64") -> GraphBuilder:
    mw, mh = weights.shape
    params = {"weights": weights}
    attrs: dict = {"MW": mw, "MH": mh, "noActivation": 1}
    if thresholds is not None:
        params["thresholds"] = thresholds
        attrs.update(noActivation=0, ActVal=act_val)
    return GraphBuilder("mvau", (1, 1, 2, mw), in_dtype).add("MVAU", (1, 1, 2, mh), out_dtype, params, **attrs)


@pytest.mark.parametrize(("in_dtype", "w_value", "mw", "expected"), [
    ("UINT8", 127, 500, "float32"),      # 255 * 127 * 500 < 2**24
    ("UINT8", 127, 520, "float64"),      # 255 * 127 * 520 >= 2**24
    ("INT26", 2**25 - 1, 8, "float64"),  # 2**25 * (2**25 - 1) * 8 just below 2**53
    ("INT26", 2**25 - 1, 9, "int64"),    # above: 9 * (2**25 - 1)**2 is odd, float64 would round it
    ("INT32", -2**31, 1, "int64"),       # a single product of 2**62
])
def test_precision_follows_the_bound(in_dtype: str, w_value: int, mw: int, expected: str) -> None:
    graph = _mvau_graph(in_dtype, np.full((mw, 3), w_value, dtype=np.int64)).build()
    assert precision_plan(graph)["MVAU_0"] == expected
    dt = graph.input.dtype
    _same(graph, np.stack([np.full((1, 2, mw), dt.max), np.full((1, 2, mw), dt.min)]))


def test_float32_would_be_wrong_past_its_bound() -> None:
    # Why the bound matters: one odd step past 2**24 and float32 rounds, float64 does not.
    x = np.append(np.full(520, 255), 1)
    w = np.append(np.full(520, 127), 1)
    exact = 255 * 127 * 520 + 1
    assert exact_float(exact) == np.float64
    assert int(x.astype(np.float64) @ w.astype(np.float64)) == exact
    assert int(x.astype(np.float32) @ w.astype(np.float32)) != exact


@pytest.mark.parametrize("act_val", [0, -8])
def test_thresholds_at_the_extremes(act_val: int) -> None:
    rng = np.random.default_rng(2)
    mw, mh = 300, 6
    weights = rng.integers(-127, 128, size=(mw, mh))
    weights[:, 1] = 127  # channel 1 reaches 255 * 127 * 300 on an all-255 frame
    small = sorted_thresholds(rng, mh, 15, -200_000, 200_000)  # lookup tables
    extreme = small.copy()  # far beyond any accumulator (never / always reached): counted, clipped
    extreme[0] = np.linspace(-2**40, 2**40, 15).astype(np.int64)
    extreme[1, -1] = 255 * 127 * mw  # reached exactly by the largest accumulator
    for thresholds in (small, extreme, small[:1]):
        graph = _mvau_graph("UINT8", weights, thresholds=thresholds, act_val=act_val, out_dtype="INT8").build()
        frames = np.stack([random_input(graph, rng)[0] for _ in range(4)] + [np.full((1, 2, mw), 255)])
        out = _same(graph, frames)
        if thresholds is extreme:
            assert out[-1, 0, 0, 1] == act_val + 15


def test_depthwise_windows_and_pooling_are_exact() -> None:
    rng = np.random.default_rng(3)
    c, k = 8, 3
    thr = sorted_thresholds(rng, c, 7, -4000, 4000)
    weights = rng.integers(-128, 128, size=(c, k * k))
    weights[0] = 127
    graph = (GraphBuilder("dw", (1, 9, 9, c), "INT8")
             .add("FMPadding", (1, 11, 11, c), "INT8", ImgDim=(9, 9), Padding=(1, 1, 1, 1), NumChannels=c)
             .add("ConvolutionInputGenerator", (1, 5, 5, k * k * c), "INT8", IFMDim=(11, 11), OFMDim=(5, 5),
                  ConvKernelDim=(k, k), Stride=(2, 2), Dilation=(1, 1), IFMChannels=c, depthwise=1)
             .add("VVAU", (1, 5, 5, c), "UINT3", {"weights": weights, "thresholds": thr}, Channels=c,
                  Kernel=(k, k), Dim=(5, 5), noActivation=0, ActVal=0)
             .add("ConvolutionInputGenerator", (1, 4, 4, 4 * c), "UINT3", IFMDim=(5, 5), OFMDim=(4, 4),
                  ConvKernelDim=(2, 2), Stride=(1, 1), Dilation=(1, 1), IFMChannels=c, depthwise=0)
             .add("MVAU", (1, 4, 4, 5), "INT16", {"weights": rng.integers(-8, 8, size=(4 * c, 5))},
                  MW=4 * c, MH=5, noActivation=1)
             .add("MVAU", (1, 1, 1, 3), "INT32", {"weights": rng.integers(-8, 8, size=(80, 3))},
                  MW=80, MH=3, noActivation=1)  # flattened input: one vector per frame
             .build())
    frames = np.stack([random_input(graph, rng)[0] for _ in range(3)]
                      + [np.full((9, 9, c), -128), np.full((9, 9, c), 127)])
    _same(graph, frames)


def test_binary_xnor_mvau_is_exact() -> None:
    rng = np.random.default_rng(4)
    weights = rng.integers(0, 2, size=(64, 10))
    thr = sorted_thresholds(rng, 10, 1, 20, 44)
    graph = (GraphBuilder("xnor", (1, 1, 1, 64), "BINARY")
             .add("MVAU", (1, 1, 1, 10), "BINARY", {"weights": weights, "thresholds": thr}, MW=64, MH=10,
                  binaryXnorMode=1, noActivation=0, ActVal=0)
             .add("MVAU", (1, 1, 1, 4), "INT16", {"weights": rng.integers(0, 2, size=(10, 4))}, MW=10, MH=4,
                  binaryXnorMode=1, noActivation=1)
             .build())
    frames = np.stack([random_input(graph, rng)[0] for _ in range(5)] + [np.ones((1, 1, 64), dtype=np.int64)])
    _same(graph, frames)


def test_bad_input_is_refused_like_the_reference() -> None:
    graph = _mvau_graph("UINT4", np.full((8, 2), 3)).build()
    with pytest.raises(ValueError, match="outside UINT4"):
        FastExecutor(graph)(np.full((1, 1, 2, 8), 16))
    with pytest.raises(ValueError, match="shape"):
        FastExecutor(graph)(np.zeros((1, 1, 2, 9), dtype=np.int64))

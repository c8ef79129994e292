"""Binarized layers (docs/lowering.md#binarized-networks): BipolarQuant activations as BINARY codes,
FINN's XNOR-popcount MVAU, bipolar weights after multi-bit inputs, and the program form of XNOR."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx_builder import QONNX, GraphBuilder

from core.errors import UnsupportedNodeError
from splitter import program
from splitter.cost.xnor import finn_xnor_accumulator
from splitter.executor import execute
from splitter.graph import Layer
from splitter.kernels import xnor_popcount
from splitter.lowering import lower_model
from splitter.model_io import dataflow_input, final_output
from splitter.verify import check_layers


def bipolar(b: GraphBuilder, x: str, scale: float = 1.0) -> str:
    return b.node("BipolarQuant", [x, b.const(scale)], QONNX)


def bipolar_weight(b: GraphBuilder, shape: tuple[int, ...], scale: float = 0.5) -> str:
    return bipolar(b, b.const(b.rng.uniform(-1, 1, size=shape)), scale)


def binarized_net() -> tuple:
    """Bipolar input -> XNOR conv (negative gammas) -> maxpool -> flatten -> XNOR gemm -> XNOR gemm, no activation."""
    b = GraphBuilder((1, 3, 8, 8), seed=4)
    x = bipolar(b, "x", 0.25)
    x = b.node("Conv", [x, bipolar_weight(b, (16, 3, 3, 3))], kernel_shape=[3, 3])
    x = bipolar(b, b.batchnorm(x, 16, negative=0.4))
    x = b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = b.node("Flatten", [x])
    x = b.node("Gemm", [x, bipolar_weight(b, (24, 144))], transB=1)
    x = bipolar(b, b.batchnorm(x, 24, negative=0.3), 2.0)
    x = b.node("Gemm", [x, bipolar_weight(b, (10, 24))], transB=1)
    model, graph = lower_model(b.model(b.node("Mul", [x, b.const(0.125)])), "bnn")
    return model, graph


def test_xnor_layers_equal_qonnx_on_every_tensor() -> None:
    model, graph = binarized_net()
    mvaus = [x for x in graph.layers if x.op_type == "MVAU"]
    assert [int(x.attrs["binaryXnorMode"]) for x in mvaus] == [1, 1, 1]
    assert {x.attrs["inputDataType"] for x in mvaus} == {"BINARY"} == {x.attrs["weightDataType"] for x in mvaus}
    assert graph.input.dtype.name == "BINARY" and int(mvaus[-1].attrs["noActivation"]) == 1
    assert set(np.unique(mvaus[0].params["weights"])) <= {0, 1}
    rng = np.random.default_rng(0)
    for _ in range(10):
        raw = rng.uniform(-1, 1, size=(1, 3, 8, 8)).astype(np.float32)
        checks, context = check_layers(graph, model, raw)
        assert len(checks) == 3 and all(c.mismatches == 0 for c in checks), checks
        ours = final_output(graph, execute(graph, dataflow_input(graph, raw)))
        np.testing.assert_allclose(ours, context[graph.onnx_output], rtol=1e-5, atol=1e-6)


def test_the_host_sends_the_binary_code_of_a_bipolar_input() -> None:
    _, graph = binarized_net()
    raw = np.random.default_rng(1).uniform(-1, 1, size=(1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(dataflow_input(graph, raw), (raw >= 0).astype(np.int64).transpose(0, 2, 3, 1))


def test_the_program_form_of_xnor_computes_the_same() -> None:
    """Program format 1 has no XNOR mode: bipolar weights, shifted thresholds, a ChannelwiseOp for the popcount."""
    _, graph = binarized_net()
    back = program.from_bytes(program.to_bytes(graph))
    assert not any(int(x.attrs.get("binaryXnorMode", 0)) for x in back.layers)
    names = [x.name for x in back.layers]
    last = next(i for i, x in enumerate(back.layers) if x.name == "MVAU_2")
    assert names[last + 1] == "MVAU_2_popcount" and back.layers[last + 1].op_type == "ChannelwiseOp"
    assert set(np.unique(back.layers[last].params["weights"])) <= {-1, 1}
    x = np.random.default_rng(2).integers(0, 2, size=graph.input.shape)
    np.testing.assert_array_equal(execute(back, x), execute(graph, x))


def test_xnor_popcount_counts_equal_bits() -> None:
    rng = np.random.default_rng(3)
    x, w = rng.integers(0, 2, size=(2, 5, 37)), rng.integers(0, 2, size=(37, 6))
    want = (x[..., :, None] == w[None, None, :, :]).sum(axis=-2)
    np.testing.assert_array_equal(xnor_popcount(x, w), want)


def test_finn_accumulator_of_an_xnor_layer() -> None:
    """FINN's minimize_accumulator_width: range of x . (2w - 1) over BINARY x, not the popcount's [0, MW]."""
    weights = np.zeros((1000, 3), dtype=np.int64)
    weights[:700, 0] = 1  # column 0: 700 ones, 300 zeros; column 1: all zeros; column 2: 400 ones
    weights[:400, 2] = 1
    layer = Layer("MVAU", "m", "i", "o", {"binaryXnorMode": 1}, {"weights": weights})
    assert finn_xnor_accumulator(layer, runtime_writeable=False).name == "INT11"  # [-1000, 700]
    weights[:, 1] = 1
    assert finn_xnor_accumulator(layer, runtime_writeable=False).name == "INT11"  # [-600, 1000]: 1000 needs 11
    assert finn_xnor_accumulator(layer, runtime_writeable=True).name == "UINT10"  # [0, MW]


def test_bipolar_weights_after_a_multi_bit_input_are_plain_integers() -> None:
    b = GraphBuilder((1, 3, 6, 6), seed=6)
    x = b.quant("x", 1 / 64, 8, signed=True)
    x = b.node("Conv", [x, bipolar_weight(b, (8, 3, 3, 3))], kernel_shape=[3, 3])
    model, graph = lower_model(b.model(bipolar(b, b.batchnorm(x, 8))), "first")
    mvau = next(x for x in graph.layers if x.op_type == "MVAU")
    assert (mvau.attrs["binaryXnorMode"], mvau.attrs["weightDataType"], mvau.attrs["outputDataType"]) == \
        (0, "INT2", "BINARY")  # FINN's step_minimize_bit_width makes BIPOLAR weights INT2 as well
    raw = np.random.default_rng(7).uniform(-1, 1, size=(1, 3, 6, 6)).astype(np.float32)
    checks, _ = check_layers(graph, model, raw)
    assert checks and all(c.mismatches == 0 for c in checks)


def test_a_bipolar_activation_into_multi_bit_weights_is_refused() -> None:
    b = GraphBuilder((1, 3, 6, 6))
    x = b.node("Conv", [bipolar(b, "x"), b.qweight((4, 3, 3, 3), 4)], kernel_shape=[3, 3])
    with pytest.raises(UnsupportedNodeError, match="only in XNOR mode"):
        lower_model(b.model(b.quant(x, 0.1, 4, signed=False)), "mixed")

"""Lowering of each supported pattern on tiny graphs, executed before and after, compared exactly."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from qonnx_builder import GraphBuilder

from core.datatypes import datatype
from core.errors import InputQuantizationRequired, UnsupportedNodeError
from splitter.executor import execute
from splitter.lowering import InputSpec, lower
from splitter.model_io import dataflow_input, final_output
from splitter.verify import check_layers


def assert_equivalent(model, graph, shape, inputs: int = 8, integer_input: bool = False) -> None:
    """Every referenced tensor exact (near-ties audited) and the final output equal, on random inputs."""
    rng = np.random.default_rng(0)
    for _ in range(inputs):
        raw = rng.integers(0, 256, size=shape) if integer_input else rng.random(shape, dtype=np.float32)
        checks, context = check_layers(graph, model, raw)
        assert checks
        for check in checks:
            assert check.mismatches == 0, check
        ours = final_output(graph, execute(graph, dataflow_input(graph, raw)))
        reference = context[graph.onnx_output]
        if graph.output_affine is None:
            assert np.array_equal(ours, reference.astype(np.int64))
        else:
            np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)


def ops(graph) -> list[str]:
    """The op types of a graph's layers."""
    return [layer.op_type for layer in graph.layers]


def test_padded_conv_negative_bn_maxpool_depthwise_flatten_gemm_topk() -> None:
    b = GraphBuilder((1, 3, 12, 12), seed=1)
    x = b.quant(b.node("Sub", [b.node("Mul", ["x", b.const(2.0)]), b.const(1.0)]), 2.0**-7, 8, signed=True)
    x = b.node("Conv", [x, b.qweight((8, 3, 3, 3), 4)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    act_scale = np.linspace(0.08, 0.15, 8).reshape(1, 8, 1, 1)  # per channel: fine before a depthwise conv
    x = b.quant(b.node("Relu", [b.batchnorm(x, 8, negative=0.4)]), act_scale, 4, signed=False)
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])  # kernel != stride: SWG + Pool
    x = b.node("Conv", [x, b.qweight((8, 1, 3, 3), 4), b.const(np.linspace(-0.3, 0.3, 8))], kernel_shape=[3, 3],
               pads=[1, 1, 1, 1], strides=[2, 2], group=8)
    x = b.quant(b.batchnorm(x, 8), 0.12, 3, signed=True)
    x = b.node("Flatten", [x], axis=1)  # 8 x 3 x 3 NCHW -> 72: the MVAU rows are reordered to NHWC
    weights = b.qweight((10, 72), 4, per_channel_axis=None)
    bias_scale = float(b.last_scale) * 0.12  # brevitas Int32Bias: input scale x weight scale
    bias = b.quant(b.const(np.arange(-5, 5) * 3 * bias_scale), bias_scale, 16, signed=True)
    x = b.node("Gemm", [x, weights, bias], transB=1)
    k = b.const(np.array([3]), np.int64)
    b.node("TopK", [x, k], outputs=2, axis=-1)
    model = b.model(b.nodes[-1].output[1], onnx.TensorProto.INT64)
    graph = lower(model, "t")
    assert ops(graph) == ["FMPadding", "ConvolutionInputGenerator", "MVAU", "ConvolutionInputGenerator", "Pool",
                          "FMPadding", "ConvolutionInputGenerator", "VVAU", "MVAU", "ChannelwiseOp", "LabelSelect"]
    assert graph.input_quant.kind == "onnx"
    assert_equivalent(model, graph, (1, 3, 12, 12))


def test_standalone_thresholding_and_unpadded_stride() -> None:
    b = GraphBuilder((1, 4, 8, 8), seed=2)
    x = b.quant("x", 0.05, 8, signed=False)
    x = b.node("Mul", [x, b.const(np.array([1.0, -0.5, 2.0, 0.7]).reshape(1, 4, 1, 1))])
    x = b.quant(b.node("Add", [x, b.const(0.3)]), 0.25, 4, signed=True)  # Quant -> Mul -> Add -> Quant
    x = b.node("Conv", [x, b.qweight((6, 4, 1, 1), 3)], kernel_shape=[1, 1], strides=[2, 2])
    model = b.model(b.quant(b.node("Relu", [x]), 0.3, 2, signed=False))
    with pytest.raises(UnsupportedNodeError, match="decreasing"):
        lower(model, "t")  # channel 1 has a negative scale and nothing upstream absorbs the sign


def test_thresholding_layer() -> None:
    b = GraphBuilder((1, 4, 5, 5), seed=3)
    x = b.quant("x", 0.05, 8, signed=False)
    x = b.quant(b.node("Add", [b.node("Mul", [x, b.const(np.array([1.0, 0.5, 2.0, 0.7]).reshape(1, 4, 1, 1))]),
                               b.const(-0.4)]), 0.25, 4, signed=True)
    x = b.node("Conv", [x, b.qweight((6, 4, 1, 1), 3)], kernel_shape=[1, 1], strides=[2, 2])
    model = b.model(b.quant(b.node("Relu", [x]), 0.3, 2, signed=False))
    graph = lower(model, "t")
    assert ops(graph) == ["Thresholding", "ConvolutionInputGenerator", "MVAU"]
    assert_equivalent(model, graph, (1, 4, 5, 5))


@pytest.mark.parametrize("form", ["brevitas-0.13", "brevitas-0.10"])
def test_truncating_average_pool_both_export_forms(form: str) -> None:
    b = GraphBuilder((1, 4, 8, 8), seed=4)
    scale = 0.07
    x = b.quant("x", scale, 4, signed=False)
    pooled = b.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    if form == "brevitas-0.13":  # qonnx Trunc v2: scale already divided by the pool area
        x = b.node("Trunc", [pooled, b.const(scale / 4), b.const(0.0), b.const(6.0), b.const(scale), b.const(4.0)],
                   domain="qonnx.custom_op.general", rounding_mode="FLOOR", signed=0, narrow=0)
    else:  # brevitas 0.10 TorchScript export: AveragePool -> Mul(k*k) -> Trunc v1, domain onnx.brevitas
        summed = b.node("Mul", [pooled, b.const(4.0)])
        x = b.node("Trunc", [summed, b.const(scale), b.const(0.0), b.const(6.0), b.const(4.0)],
                   domain="onnx.brevitas", rounding_mode="FLOOR")
    x = b.node("Conv", [x, b.qweight((3, 4, 1, 1), 4)], kernel_shape=[1, 1])
    model = b.model(x)
    if form == "brevitas-0.10":
        model.opset_import.append(onnx.helper.make_opsetid("onnx.brevitas", 1))
    graph = lower(model, "t")
    assert ops(graph) == ["ConvolutionInputGenerator", "Pool", "MVAU"]
    assert graph.layers[1].attrs["Shift"] == 2
    assert graph.output_affine is not None
    assert_equivalent(model, graph, (1, 4, 8, 8))


def test_declared_input_with_mean_on_unpadded_conv() -> None:
    b = GraphBuilder((1, 3, 9, 9), seed=5)
    x = b.node("Conv", ["x", b.qweight((5, 3, 3, 3), 8)], kernel_shape=[3, 3], strides=[2, 2])
    model = b.model(b.quant(b.node("Relu", [b.batchnorm(x, 5)]), 0.2, 4, signed=False))
    spec = InputSpec(datatype("UINT8"), 1 / 256, (0.5, 0.25, 0.75), 0.5)  # dyadic: float32 input is exact
    graph = lower(model, "t", spec)
    assert graph.input.dtype.name == "UINT8"
    assert_equivalent(model, graph, (1, 3, 9, 9), integer_input=True)


def test_float_input_without_quantizer_asks_for_input_options() -> None:
    b = GraphBuilder((1, 3, 9, 9))
    x = b.node("Conv", ["x", b.qweight((5, 3, 3, 3), 8)], kernel_shape=[3, 3])
    model = b.model(b.quant(x, 0.2, 4, signed=False))
    with pytest.raises(InputQuantizationRequired, match=r"--input-dtype UINT8 --input-scale 1/255"):
        lower(model, "t")


def test_mean_with_padded_first_conv_is_exact() -> None:
    """ImageNet's means at 1/255: the host sends 200 x - K[c] (INT16), so FMPadding's 0 is the model's 0.0."""
    b = GraphBuilder((1, 3, 9, 9), seed=3)
    x = b.node("Conv", ["x", b.qweight((5, 3, 3, 3), 8)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    model = b.model(b.quant(b.node("Relu", [b.batchnorm(x, 5)]), 0.2, 4, signed=False))
    spec = InputSpec(datatype("UINT8"), 1 / 255, (0.485, 0.456, 0.406), 0.226)
    graph = lower(model, "t", spec)
    assert ops(graph)[:3] == ["FMPadding", "ConvolutionInputGenerator", "MVAU"]
    iq = graph.input_quant
    assert (iq.factor, iq.shift) == (200, (24735, 23256, 20706))  # 200 * mean / (1/255)
    assert graph.input.dtype.name == "INT16" and graph.layers[0].attrs["inputDataType"] == "INT16"
    raw = np.random.default_rng(1).integers(0, 256, size=(1, 3, 9, 9))
    sent = dataflow_input(graph, raw)
    np.testing.assert_array_equal(sent, (raw * 200 - np.array(iq.shift)[None, :, None, None]).transpose(0, 2, 3, 1))
    # real 0.0 at an integer: pixel 123.675 does not exist, but 200 * 123.675 - 24735 = 0 does
    assert_equivalent(model, graph, (1, 3, 9, 9), integer_input=True)


def test_mean_that_is_no_small_fraction_of_the_scale_is_refused() -> None:
    b = GraphBuilder((1, 3, 9, 9))
    x = b.node("Conv", ["x", b.qweight((5, 3, 3, 3), 8)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    model = b.model(b.quant(x, 0.2, 4, signed=False))
    with pytest.raises(UnsupportedNodeError, match="padding after an input mean subtraction"):
        lower(model, "t", InputSpec(datatype("UINT8"), 1 / 255, (0.123456789,), 0.25))


def test_residual_add_names_the_node() -> None:
    b = GraphBuilder((1, 4, 6, 6))
    x = b.quant("x", 0.1, 4, signed=False)
    y = b.node("Conv", [x, b.qweight((4, 4, 1, 1), 4)], kernel_shape=[1, 1])
    y = b.quant(y, 0.15, 4, signed=False)  # not the skip's scale: no integer add (tests/splitter/test_residual.py)
    model = b.model(b.node("Add", [x, y]))
    with pytest.raises(UnsupportedNodeError, match=r"different scales.*shared quantizer") as info:
        lower(model, "t")
    assert info.value.op_type == "Add"


def test_unknown_operation_names_node_and_op_type() -> None:
    b = GraphBuilder((1, 4, 6, 6))
    x = b.quant(b.node("Sigmoid", [b.quant("x", 0.1, 4, signed=False)]), 0.1, 4, signed=False)
    model = b.model(b.node("Conv", [x, b.qweight((3, 4, 1, 1), 4)], kernel_shape=[1, 1]))
    with pytest.raises(UnsupportedNodeError, match=r"'Sigmoid_\d+' \(op type Sigmoid\)"):
        lower(model, "t")


def test_grouped_convolution_is_refused() -> None:
    b = GraphBuilder((1, 4, 6, 6))
    x = b.quant("x", 0.1, 4, signed=False)
    x = b.node("Conv", [x, b.qweight((4, 2, 1, 1), 4)], kernel_shape=[1, 1], group=2)
    model = b.model(b.quant(x, 0.1, 4, signed=False))
    with pytest.raises(UnsupportedNodeError, match="group=2"):
        lower(model, "t")

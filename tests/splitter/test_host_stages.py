"""Host stages (docs/lowering.md#host-stages): float ops before the first quantizer and after the last
layer run on the host with onnxruntime; recorded in the bundle and run by the orchestrator's host."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx_chain import chain_output, whole_model_output
from qonnx_builder import GraphBuilder

from core.datatypes import datatype
from core.manifest import load_manifest
from splitter.build import BuildConfig, build
from splitter.bundle.submodel import sub_models
from splitter.executor import execute
from splitter.inspect import format_table
from splitter.lowering import InputSpec, lower_model
from splitter.model_io import dataflow_input, final_output
from splitter.verify import reference_context


def small_net(head: str | None, tail: str | None, float_head: bool = False) -> onnx.ModelProto:
    """[head op ->] Quant -> Conv -> BN -> ReLU -> Quant -> Flatten -> Gemm [-> float Gemm] [-> tail op]."""
    b = GraphBuilder((1, 3, 3, 3), seed=11)  # a 1x1 map before Flatten, as FINN needs
    x = b.node(head, ["x"]) if head else "x"
    x = b.quant(x, 1 / 32, 8, signed=True)
    x = b.node("Conv", [x, b.qweight((4, 3, 3, 3), 4)], kernel_shape=[3, 3])
    x = b.quant(b.node("Relu", [b.batchnorm(x, 4)]), 0.25, 4, signed=False)
    x = b.node("Gemm", [b.node("Flatten", [x]), b.qweight((10, 4), 4)], transB=1)
    if float_head:
        x = b.node("Gemm", [x, b.const(b.rng.uniform(-1, 1, (5, 10))), b.const(b.rng.uniform(-1, 1, 5))], transB=1)
    return b.model(b.node(tail, [x], axis=-1) if tail else x)


def outputs_agree(model: onnx.ModelProto, graph, count: int = 6) -> None:
    rng = np.random.default_rng(5)
    for _ in range(count):
        raw = rng.uniform(-1, 1, size=(1, 3, 3, 3)).astype(np.float32)
        ours = final_output(graph, execute(graph, dataflow_input(graph, raw)))
        want = reference_context(model, raw)[graph.onnx_output]
        np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6)


def test_softmax_after_the_last_layer_runs_on_the_host() -> None:
    model, graph = lower_model(small_net(None, "Softmax"), "sm")
    assert graph.output_stage is not None and graph.output_stage.ops == ("Softmax",)
    assert [x.op_type for x in graph.layers][-1] == "MVAU"
    outputs_agree(model, graph)
    assert "then Softmax on the host (onnxruntime, float32)" in format_table(graph)


def test_a_float_classifier_head_runs_on_the_host() -> None:
    model, graph = lower_model(small_net(None, None, float_head=True), "head")
    assert graph.output_stage.ops == ("Gemm",)
    outputs_agree(model, graph)


def test_float_preprocessing_runs_on_the_host() -> None:
    model, graph = lower_model(small_net("Abs", None), "pre")
    assert graph.input_quant.kind == "onnx" and graph.input_quant.ops == ("Abs", "Quant")
    outputs_agree(model, graph)
    assert "model's own input quantizer (Abs, Quant)" in format_table(graph)


def test_the_bundle_records_and_runs_the_host_stages(tmp_path: Path) -> None:
    from orchestrator.dataplane.bundle_io import finish_output, prepare_input

    path = tmp_path / "sm.onnx"
    onnx.save(small_net("Abs", "Softmax"), str(path))
    build(BuildConfig(model=str(path), output=str(tmp_path / "b"), boards="1", finn="no"))
    manifest = load_manifest(tmp_path / "b")
    host = manifest.host
    assert host.input.ops == ("Abs", "Quant")
    assert host.output.stage is not None and host.output.stage.ops == ("Softmax",) and "output_stage" in host.files
    model, graph = lower_model(onnx.load(str(path)), "sm")
    raw = np.random.default_rng(8).uniform(-1, 1, size=(1, 3, 3, 3)).astype(np.float32)
    y = execute(graph, prepare_input(manifest, tmp_path / "b", raw))
    np.testing.assert_array_equal(finish_output(manifest, y, tmp_path / "b"), final_output(graph, y))
    np.testing.assert_allclose(finish_output(manifest, y, tmp_path / "b"), whole_model_output(model, graph, raw),
                               rtol=1e-5, atol=1e-6)


def test_padded_first_convolution_after_a_mean_cuts_into_exact_sub_models() -> None:
    """The host's x * 200 - K, the sub-model's head back to the pixels, then the model's own preprocessing."""
    b = GraphBuilder((1, 3, 8, 8), seed=2)
    x = b.node("Conv", ["x", b.qweight((6, 3, 3, 3), 8)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    x = b.quant(b.node("Relu", [b.batchnorm(x, 6)]), 0.25, 4, signed=False)
    x = b.node("Conv", [x, b.qweight((6, 6, 3, 3), 4)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    x = b.quant(b.node("Relu", [b.batchnorm(x, 6)]), 0.25, 4, signed=False)
    spec = InputSpec(datatype("UINT8"), 1 / 255, (0.485, 0.456, 0.406), 0.226)
    model, graph = lower_model(b.model(x), "padded", spec)
    assert graph.input_quant.factor == 200 and graph.input.dtype.name == "INT16"
    cut = next(i for i, x in enumerate(graph.layers) if i and x.op_type == "FMPadding")
    subs = sub_models(model, graph, [cut])
    for seed in range(3):
        raw = np.random.default_rng(seed).integers(0, 256, size=(1, 3, 8, 8)).astype(np.float32)
        np.testing.assert_array_equal(chain_output(subs, graph, raw)[-1], whole_model_output(model, graph, raw))

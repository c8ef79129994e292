"""A partition as FINN's HW-layer graph: FINN's own custom ops carrying finnsplit's integer parameters.

FINN's build flow starts from this graph, so it need not re-streamline what finnsplit already
lowered exactly: every node is one of FINN v0.10.1's generic HW ops (domain
finn.custom_op.fpgadataflow, before step_specialize_layers) with FINN's attribute names and kinds,
every tensor carries its FINN datatype, and `preferred_impl_style` says which variant (HLS or RTL)
the plan costed. Why each choice is made: docs/finn.md#the-hw-layer-graph.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from core.datatypes import threshold_datatype
from core.errors import FinnsplitError
from splitter.cost import Folding, LayerCost
from splitter.cost.branch import join_fifo_depths
from splitter.cost.compute import accumulator_layer, threshold_layer
from splitter.graph import DataflowGraph, Layer, TensorSpec, dtype_attr, pair

DOMAIN = "finn.custom_op.fpgadataflow"
OPSET = 11  # FINN's HW graphs are opset 11 (qonnx_make_model); the ops here are all custom
IR_VERSION = 8  # onnx 1.17 (FINN's pin) reads IR 8..10; onnxruntime 1.18 runs IR 8

# FINN v0.10.1 attribute kinds per generic HW op (each op's get_nodeattr_types); only these are written.
_COMMON = {"backend": "s", "preferred_impl_style": "s"}
ATTR_KINDS: dict[str, dict[str, str]] = {
    "MVAU": {"PE": "i", "SIMD": "i", "MW": "i", "MH": "i", "resType": "s", "ActVal": "i", "inputDataType": "s",
             "weightDataType": "s", "outputDataType": "s", "accDataType": "s", "binaryXnorMode": "i",
             "noActivation": "i", "numInputVectors": "ints", "mem_mode": "s", "ram_style": "s",
             "ram_style_thresholds": "s", "runtime_writeable_weights": "i"},
    "VVAU": {"PE": "i", "SIMD": "i", "Dim": "ints", "Channels": "i", "Kernel": "ints", "resType": "s", "ActVal": "i",
             "inputDataType": "s", "weightDataType": "s", "outputDataType": "s", "accDataType": "s",
             "noActivation": "i", "mem_mode": "s", "runtime_writeable_weights": "i", "ram_style": "s"},
    "Thresholding": {"PE": "i", "NumChannels": "i", "numSteps": "i", "inputDataType": "s", "weightDataType": "s",
                     "outputDataType": "s", "numInputVectors": "ints", "ActVal": "i"},
    "ConvolutionInputGenerator": {"ConvKernelDim": "ints", "IFMChannels": "i", "IFMDim": "ints", "OFMDim": "ints",
                                  "SIMD": "i", "Stride": "ints", "Dilation": "ints", "inputDataType": "s",
                                  "outputDataType": "s", "depthwise": "i", "ram_style": "s",
                                  "parallel_window": "i"},
    "FMPadding": {"ImgDim": "ints", "Padding": "ints", "NumChannels": "i", "SIMD": "i", "inputDataType": "s",
                  "numInputVectors": "i"},
    "StreamingMaxPool": {"ImgDim": "ints", "PoolDim": "ints", "NumChannels": "i", "PE": "i", "CeilMode": "i",
                         "dataType": "s"},
    "Pool": {"Channels": "i", "PE": "i", "KernelSize": "ints", "Function": "s", "OutImgDims": "ints",
             "InputDataType": "s", "OutputDataType": "s", "AccumBits": "i", "BatchSize": "i"},
    "ChannelwiseOp": {"Func": "s", "PE": "i", "NumChannels": "i", "ram_style": "s", "inputDataType": "s",
                      "paramDataType": "s", "outputDataType": "s", "numInputVectors": "ints"},
    "GlobalAccPool": {"NumChannels": "i", "PE": "i", "inputDataType": "s", "numInputVectors": "ints"},
    "LabelSelect": {"Labels": "i", "PE": "i", "K": "i", "inputDataType": "s", "outputDataType": "s",
                    "numInputVectors": "ints"},
    "DuplicateStreams": {"NumChannels": "i", "PE": "i", "NumOutputStreams": "i", "inputDataType": "s",
                         "numInputVectors": "ints"},
    "AddStreams": {"NumChannels": "i", "PE": "i", "inputDataType": "s", "numInputVectors": "ints",
                   "inFIFODepths": "ints"},
}
# Parameter inputs of each op, in FINN's input order after the data input.
PARAM_INPUTS = {"MVAU": ("weights", "thresholds"), "VVAU": ("weights", "thresholds"),
                "Thresholding": ("thresholds",), "ChannelwiseOp": ("param",)}


class FinnExportError(FinnsplitError):
    """A layer that FINN v0.10.1's HW ops cannot express as finnsplit lowered it."""

    def __init__(self, layer: Layer, why: str) -> None:
        super().__init__(f"layer {layer.name} ({layer.op_type}) cannot be written as a FINN HW layer: {why}")
        self.layer_name = layer.name


def finn_hw_model(piece: DataflowGraph, foldings: Sequence[Folding], costs: Sequence[LayerCost]) -> onnx.ModelProto:
    """FINN's HW-layer graph of one partition, each layer built as the plan costed it (`foldings`, `costs`)."""
    nodes, inits, annotations = [], [], {spec.name: spec.dtype.name for spec in piece.inputs}
    tensors = dict(piece.tensors)
    expanded = [x for layer, f in zip(piece.layers, foldings, strict=True) for x in _finn_layers(layer, f, tensors)]
    impls = [node.impl for cost in costs for node in cost.nodes]
    if len(impls) != len(expanded):
        raise FinnExportError(piece.layers[0], f"the plan costs {len(impls)} FINN nodes, its layers make "
                              f"{len(expanded)}")
    for layer, impl in zip(expanded, impls, strict=True):
        node, params = _node(layer, impl, tensors)
        nodes.append(node)
        for name, (array, dtype) in params.items():
            inits.append(numpy_helper.from_array(array.astype(np.float32), name))
            annotations[name] = dtype
        annotations.update({out: tensors[out].dtype.name for out in layer.outputs})
    # a cut inside a residual block: one graph input / output per crossing tensor, in boundary order
    outputs = {spec.name for spec in piece.outputs}
    inner = [_info(tensors[out]) for x in expanded for out in x.outputs if out not in outputs]
    graph = helper.make_graph(nodes, piece.name, [_info(spec) for spec in piece.inputs],
                              [_info(spec) for spec in piece.outputs], inits, value_info=inner)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="finnsplit")
    model.ir_version = IR_VERSION
    for tensor, dtype in annotations.items():
        ann = onnx.TensorAnnotation(tensor_name=tensor)
        ann.quant_parameter_tensor_names.append(onnx.StringStringEntryProto(key="finn_datatype", value=dtype))
        if tensor in {spec.name for spec in piece.inputs}:
            # qonnx's InferDataLayouts otherwise assumes a 4D graph input is NCHW; FINN's HW layers are NHWC
            ann.quant_parameter_tensor_names.append(
                onnx.StringStringEntryProto(key="tensor_layout", value=str(list("NHWC"))))
        model.graph.quantization_annotation.append(ann)
    return model


def _finn_layers(layer: Layer, f: Folding, tensors: dict[str, TensorSpec]) -> list[Layer]:
    """The FINN nodes of one layer: itself, or its accumulator layer and a Thresholding (standalone thresholds)."""
    if not f.standalone:
        return [layer]
    out = tensors[layer.output]
    acc = accumulator_layer(layer)
    acc = dataclasses.replace(acc, output=f"{layer.output}_acc")
    tensors[acc.output] = TensorSpec(acc.output, out.shape, dtype_attr(layer, "accDataType"))
    return [acc, threshold_layer(layer, f, out.shape)]


def _info(spec: TensorSpec) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(spec.name, TensorProto.FLOAT, list(spec.shape))


def _node(layer: Layer, impl: str, tensors: Mapping[str, TensorSpec]) -> tuple[onnx.NodeProto, dict]:
    """The FINN node of `layer` and its parameter initializers {name: (array, FINN datatype)}."""
    if layer.op_type not in ATTR_KINDS:
        raise FinnExportError(layer, "FINN v0.10.1 has no generic HW op of this type")
    src, dst = tensors[layer.input], tensors[layer.output]
    attrs = {**{k: v for k, v in layer.attrs.items() if k in ATTR_KINDS[layer.op_type]},
             **_derived(layer, src, dst)}
    params = _params(layer, src)
    style = impl.rsplit("_", 1)[-1] if impl.startswith(layer.op_type + "_") else ""
    if style not in ("hls", "rtl"):
        raise FinnExportError(layer, f"the plan's implementation {impl!r} is not {layer.op_type}_hls or _rtl")
    kinds = ATTR_KINDS[layer.op_type]
    node_attrs = {k: _attr_value(layer, k, kinds[k], v) for k, v in attrs.items()}
    params_in = [f"{layer.name}_{p}" for p in PARAM_INPUTS.get(layer.op_type, ()) if p in layer.params]
    node = helper.make_node(layer.op_type, [*layer.inputs, *params_in], list(layer.outputs), name=layer.name,
                            domain=DOMAIN,
                            backend="fpgadataflow", preferred_impl_style=style, **node_attrs)
    return node, {f"{layer.name}_{k}": v for k, v in params.items()}


def _attr_value(layer: Layer, key: str, kind: str, value: object) -> object:
    if kind == "ints":
        return [int(v) for v in (value if isinstance(value, tuple | list) else (value,))]
    if kind == "i":
        if isinstance(value, tuple | list):
            raise FinnExportError(layer, f"attribute {key}={value} must be one integer in FINN")
        return int(value)
    return str(value)


def _vectors(shape: tuple[int, ...]) -> list[int]:
    return [int(d) for d in shape[:-1]]


def _derived(layer: Layer, src: TensorSpec, dst: TensorSpec) -> dict[str, object]:
    """Attributes FINN needs that finnsplit's layer does not state, checked against FINN's semantics."""
    op, a = layer.op_type, layer.attrs
    if op == "MVAU":
        if int(a["MW"]) != src.shape[-1]:
            raise FinnExportError(layer, f"its input {src.shape} is flattened into MW={a['MW']}; FINN's MVAU "
                                  "multiplies the last axis only (FINN removes such flattens only for 1x1 maps)")
        return {"numInputVectors": _vectors(src.shape), "mem_mode": "internal_decoupled"}
    if op == "VVAU":
        return {"mem_mode": "internal_decoupled", "Dim": list(dst.shape[1:3])}
    if op in ("Thresholding", "ChannelwiseOp", "GlobalAccPool", "LabelSelect", "DuplicateStreams"):
        extra: dict[str, object] = {"numInputVectors": _vectors(src.shape)}
        if op == "Thresholding":
            extra["weightDataType"] = threshold_datatype(layer.params["thresholds"], src.dtype).name
        return extra
    if op == "FMPadding":
        return {"numInputVectors": 1}
    if op == "Pool":
        return _pool(layer, src, dst)
    if op == "AddStreams":  # the join's FIFOs (lowering/residual.py buffer_pixels), in words of its PE
        return {"numInputVectors": _vectors(src.shape), "inFIFODepths": list(join_fifo_depths(layer, int(a["PE"])))}
    return {}


def _pool(layer: Layer, src: TensorSpec, dst: TensorSpec) -> dict[str, object]:
    kh, kw = pair(layer.attr("KernelSize"))
    if layer.attrs["Function"] == "QuantAvgPool":
        # FINN's Pool derives the shift from the datatypes: bits of (2^ibits - 1) * k^2 minus obits.
        ibits, obits = src.dtype.bitwidth, dtype_attr(layer, "OutputDataType").bitwidth
        shift = max(0, int((2**ibits - 1) * kh * kw).bit_length() - obits)
        if src.dtype.signed or shift != int(layer.attr("Shift")):
            raise FinnExportError(layer, f"FINN's QuantAvgPool shifts unsigned sums by {shift} bits, the model by "
                                  f"{layer.attr('Shift')} ({src.dtype} input)")
    return {"OutImgDims": list(dst.shape[1:3]), "BatchSize": 1}


def _params(layer: Layer, src: TensorSpec) -> dict[str, tuple[np.ndarray, str]]:
    """Parameter arrays in FINN's layout, with their FINN datatypes."""
    p, op = layer.params, layer.op_type
    out: dict[str, tuple[np.ndarray, str]] = {}
    if "weights" in p:
        weights = p["weights"]
        if op == "VVAU":  # FINN: (Channels, 1, k_h, k_w); ours (Channels, k_h * k_w)
            kh, kw = pair(layer.attr("Kernel"))
            weights = weights.reshape(weights.shape[0], 1, kh, kw)
        out["weights"] = (weights, str(layer.attr("weightDataType")))
    if "thresholds" in p:
        thr = p["thresholds"]
        if op == "Thresholding":
            out["thresholds"] = (thr, threshold_datatype(thr, src.dtype).name)
        else:
            acc = dtype_attr(layer, "accDataType")
            if not acc.allowed(thr):
                raise FinnExportError(layer, f"thresholds in [{thr.min()}, {thr.max()}] exceed accDataType {acc}")
            out["thresholds"] = (thr, acc.name)
    if "param" in p:
        out["param"] = (p["param"], str(layer.attr("paramDataType")))
    return out

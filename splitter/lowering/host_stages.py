"""Host-side parts of a lowered model: the input quantizer and elementwise chains around layers."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from core.errors import LoweringError, UnsupportedNodeError
from splitter.graph import HostStage, InputQuant
from splitter.lowering.elementwise import ELEMENTWISE_OPS, ElementwiseOp
from splitter.lowering.onnx_view import OnnxView, QuantParams, attributes, per_channel, with_shapes

_COMPUTE_OPS = ("Conv", "MatMul", "Gemm")


def collect_elementwise(
    view: OnnxView, tensor: str, first: onnx.NodeProto | None = None
) -> tuple[list[ElementwiseOp], onnx.NodeProto | None]:
    """Elementwise ops with constant operands following `tensor`; returns them and the node that ends them.

    `first`: the node reading `tensor` where the ops start (needed when `tensor` has several readers).
    An elementwise op of two computed tensors (a residual Add) ends them.
    """
    ops: list[ElementwiseOp] = []
    shape = view.shape(tensor)
    channels = shape[1] if len(shape) > 1 else 1
    while True:
        node, first = (first, None) if first is not None else (view.single_consumer(tensor), None)
        if node is None:
            return ops, None
        if node.op_type in ("Identity", "Dropout"):
            tensor = node.output[0]
            continue
        if node.op_type not in ELEMENTWISE_OPS or _two_computed(view, node):
            return ops, node
        ops.append(_epilogue_op(view, node, tensor, channels, len(shape)))
        tensor = node.output[0]


def _two_computed(view: OnnxView, node: onnx.NodeProto) -> bool:
    return node.op_type != "BatchNormalization" and sum(1 for i in node.input if i and view.const(i) is None) > 1


def _epilogue_op(view: OnnxView, node: onnx.NodeProto, tensor: str, channels: int, ndim: int) -> ElementwiseOp:
    if node.op_type == "Relu":
        return ElementwiseOp("Relu")
    if node.op_type == "BatchNormalization":
        consts = [view.const(name) for name in node.input[1:5]]
        if any(c is None for c in consts) or node.input[0] != tensor:
            raise UnsupportedNodeError(node.name, node.op_type, "parameters must be constants")
        epsilon = float(attributes(node).get("epsilon", 1e-5))
        vectors = tuple(np.broadcast_to(np.asarray(c, np.float32).reshape(-1), (channels,)).copy() for c in consts)
        return ElementwiseOp("BatchNormalization", vectors, epsilon=epsilon)
    other_index = 1 if node.input[0] == tensor else 0
    const = view.const(node.input[other_index])
    if const is None:
        raise UnsupportedNodeError(
            node.name,
            node.op_type,
            "elementwise op with two non-constant inputs (e.g. a residual Add) is not supported yet",
        )
    try:
        vector = per_channel(const, channels, ndim, node.name).astype(np.float32)
    except ValueError as exc:
        raise UnsupportedNodeError(node.name, node.op_type, str(exc)) from None
    return ElementwiseOp(node.op_type, (vector,), const_first=other_index == 0)


def affine_of_elementwise(
    ops: list[ElementwiseOp], alpha: np.ndarray, beta: np.ndarray, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """(scale, bias) per channel such that ops(acc * alpha + beta) = acc * scale + bias, exactly in reals."""
    a = np.asarray(alpha, dtype=np.float64).copy()
    b = np.asarray(beta, dtype=np.float64).copy()
    for op in ops:
        consts = [c.astype(np.float64) for c in op.consts]
        if op.op_type == "Relu" or (op.op_type == "Div" and op.const_first):
            raise UnsupportedNodeError(where, op.op_type, "non-linear op after the last quantizer")
        if op.op_type == "BatchNormalization":
            gamma, shift, mean, var = consts
            k = gamma / np.sqrt(var + op.epsilon)
            a, b = a * k, (b - mean) * k + shift
        elif op.op_type == "Mul":
            a, b = a * consts[0], b * consts[0]
        elif op.op_type == "Div":
            a, b = a / consts[0], b / consts[0]
        elif op.op_type == "Add":
            b = b + consts[0]
        elif op.op_type == "Sub":
            a, b = (-a, consts[0] - b) if op.const_first else (a, b - consts[0])
    return a, b


def build_input_quant(view: OnnxView, input_name: str) -> tuple[InputQuant, str, QuantParams] | None:
    """If the model quantizes its own float input (float ops, then a quantizer), the host part of it.

    Any standard ONNX op before the first quantizer (float preprocessing) runs on the host with it;
    a compute op (Conv, MatMul, Gemm) reached first means the input needs a declared quantization.
    """
    nodes = []
    tensor = input_name
    while True:
        node = view.single_consumer(tensor)
        if node is None or node.op_type in _COMPUTE_OPS or not _runs_on_host(node):
            return None
        nodes.append(node)
        if node.op_type in ("Quant", "BipolarQuant"):
            break
        tensor = node.output[0]
    quant = view.quant_params(nodes[-1])
    if quant.scale.size != 1:
        raise LoweringError(f"input quantizer {nodes[-1].name!r} has a per-channel scale; only per-tensor is supported")
    scale = float(quant.scale.reshape(-1)[0])
    output, extra, extra_inits = nodes[-1].output[0], [], []
    if quant.bipolar:  # the host sends the BINARY code: (value + s) / 2 is 0 or s, exactly in float32
        output = f"{nodes[-1].output[0]}_binary_code"
        extra = [helper.make_node("Add", [nodes[-1].output[0], "host_code_shift"], ["host_code_shifted"]),
                 helper.make_node("Mul", ["host_code_shifted", "host_code_half"], [output])]
        extra_inits = [numpy_helper.from_array(np.float32(scale), "host_code_shift"),
                       numpy_helper.from_array(np.float32(0.5), "host_code_half")]
    used = {name for node in nodes for name in node.input}
    inits = [
        numpy_helper.from_array(np.asarray(view.initializers[n]), n) for n in sorted(used) if n in view.initializers
    ]
    graph = helper.make_graph(
        [*nodes, *extra],
        "host_input_quant",
        [info for info in view.graph.input if info.name == input_name],
        [helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, list(view.shape(nodes[-1].output[0])))],
        inits + extra_inits,
    )
    sub = helper.make_model(graph, opset_imports=list(view.model.opset_import))
    sub.ir_version = view.model.ir_version
    sub = with_shapes(sub)
    ops = tuple(node.op_type for node in nodes)
    return InputQuant("onnx", quant.dtype, scale, model=sub.SerializeToString(), ops=ops), nodes[-1].output[0], quant


def _runs_on_host(node: onnx.NodeProto) -> bool:
    """A standard ONNX op (onnxruntime runs it) or a quantizer (qonnx's executor runs it)."""
    return node.domain in ("", "ai.onnx") or node.op_type in ("Quant", "BipolarQuant")


def build_output_stage(view: OnnxView, tensor: str) -> HostStage:
    """The host's output stage: the model's nodes from float tensor `tensor` to its output, as an ONNX model."""
    g = view.graph
    output = g.output[0]
    producer = {out: node for node in g.node for out in node.output}
    needed: set[int] = set()
    position = {id(node): i for i, node in enumerate(g.node)}
    stack, seen = [output.name], {tensor}
    while stack:
        name = stack.pop()
        if name in seen or not name or view.const(name) is not None:
            continue
        seen.add(name)
        node = producer.get(name)
        if node is None:
            raise LoweringError(f"the model output {output.name!r} depends on {name!r} besides the last board's "
                                f"output {tensor!r}; the host can only run elementwise ops after the last "
                                "quantized layer")
        needed.add(position[id(node)])
        stack.extend(node.input)
    nodes = [g.node[i] for i in sorted(needed)]
    used = {name for node in nodes for name in node.input}
    inits = [init for init in g.initializer if init.name in used]
    consts = [node for node in g.node if node.op_type == "Constant" and node.output[0] in used]
    shape = view.shape(tensor)
    graph = helper.make_graph([*consts, *nodes], "host_output_stage",
                              [helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, list(shape))],
                              [output], inits)
    sub = helper.make_model(graph, opset_imports=list(view.model.opset_import))
    sub.ir_version = view.model.ir_version
    return HostStage(sub.SerializeToString(), tensor, tuple(shape), tuple(node.op_type for node in nodes))

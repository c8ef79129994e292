"""QONNX sub-models: the original model cut at partition boundaries, one per board.

A sub-model starts at the boundary tensor's integer values (annotated with their FINN datatype)
followed by a Mul by the boundary's quantization scale, which recreates exactly the float tensor
the original model computes there (a Quant node outputs integer * scale in float32); it ends with
a Div by the next boundary's scale and a Round, so it outputs integers again. Chained, the
sub-models reproduce the whole model bit for bit. FINN absorbs the head Mul into the first
thresholds and leaves the tail Div and Round to the host (docs/bundle.md#qonnx-sub-models).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from core.errors import FinnsplitError
from splitter.graph import DataflowGraph
from splitter.lowering.onnx_view import graph_input, with_shapes


class SubModelError(FinnsplitError):
    """The original model cannot be cut where the plan asks."""


@dataclass(frozen=True)
class Boundary:
    """A cut between boards: the dataflow tensor and where its values live in the ONNX model."""

    tensor: str  # dataflow tensor name; also the sub-models' input/output name
    onnx_name: str
    scale: np.ndarray  # float64, broadcastable to the ONNX tensor: integer = (value - offset) / scale
    dtype_name: str
    offset: np.ndarray | None = None  # a bipolar activation's BINARY code: value = integer * scale + offset


def boundary(graph: DataflowGraph, tensor: str) -> Boundary:
    """The boundary at dataflow tensor `tensor` (SubModelError if the ONNX model has no such tensor)."""
    ref = graph.reference.get(tensor)
    if ref is None:
        raise SubModelError(
            f"cannot cut {graph.name} at {tensor}: the QONNX model has no tensor holding its values "
            "(e.g. an accumulator inside a fused layer); choose another cut"
        )
    return Boundary(tensor, ref.onnx_name, ref.scale, graph.tensors[tensor].dtype.name, ref.offset)


def sub_models(model: onnx.ModelProto, graph: DataflowGraph, cuts: Sequence[int]) -> list[onnx.ModelProto]:
    """One QONNX model per partition of `graph.layers` cut before each layer index in `cuts`.

    A cut inside a residual block carries several tensors: the sub-models on either side have one
    graph input / output per tensor, in boundary order (`DataflowGraph.live_tensors`,
    docs/bundle.md#multi-tensor-boundaries).
    """
    if list(cuts) != sorted(set(cuts)) or any(not 0 < i < len(graph.layers) for i in cuts):
        raise SubModelError(
            f"cut points {list(cuts)} are out of order or out of range: expected increasing layer indices "
            f"between 1 and {len(graph.layers) - 1}"
        )
    shaped = with_shapes(model)
    bounds = [_cut_boundaries(graph, i) for i in cuts]
    first = _first_boundary(graph)
    edges = [None if first is None else [first], *bounds, None]
    return [
        _sub_model(shaped, graph, k, edges[k], edges[k + 1])
        for k in range(len(edges) - 1)
    ]


def _cut_boundaries(graph: DataflowGraph, index: int) -> list[Boundary]:
    """The boundaries of every tensor crossing the cut before layers[index], in boundary order."""
    bounds = [boundary(graph, name) for name in graph.live_tensors(index)]
    onnx_names = [b.onnx_name for b in bounds]
    if len(set(onnx_names)) != len(onnx_names):
        raise SubModelError(f"cannot cut {graph.name} before {graph.layers[index].name}: two of the tensors "
                            f"crossing it ({[b.tensor for b in bounds]}) are one QONNX tensor; choose another cut")
    return bounds


def _first_boundary(graph: DataflowGraph) -> Boundary | None:
    """The first sub-model's integer input (None: the host's declared input, see _declared_head)."""
    iq = graph.input_quant
    if iq is not None and iq.kind == "declared":
        return None
    return boundary(graph, graph.input.name)


def _sub_model(
    model: onnx.ModelProto, graph: DataflowGraph, index: int, starts: list[Boundary] | None,
    stops: list[Boundary] | None,
) -> onnx.ModelProto:
    """Nodes between `starts` (None: the model input) and `stops` (None: the model output)."""
    g = model.graph
    model_input = graph_input(model)
    begins = [b.onnx_name for b in starts] if starts else [model_input.name]
    ends = [b.onnx_name for b in stops] if stops else [g.output[0].name]
    nodes = _between(g, begins, ends, f"{graph.name} partition {index}")
    shapes = _shape_table(model)
    heads = [_scale_head(b, shapes[b.onnx_name]) for b in starts] if starts else \
        [_declared_head(graph, model_input, shapes[begins[0]])]
    tails = [_scale_tail(b, shapes[b.onnx_name]) for b in stops] if stops else [([], [], g.output[0])]
    used = {name for node in nodes for name in node.input}
    inits = [init for init in g.initializer if init.name in used]
    kept = {o for node in nodes for o in node.output} - set(ends)
    infos = [vi for vi in g.value_info if vi.name in kept]
    sub_graph = helper.make_graph(
        [n for h in heads for n in h[0]] + nodes + [n for t in tails for n in t[0]], f"{graph.name}_p{index}",
        [h[2] for h in heads], [t[2] for t in tails],
        inits + [i for h in heads for i in h[1]] + [i for t in tails for i in t[1]], value_info=infos,
    )
    sub = helper.make_model(sub_graph, opset_imports=list(model.opset_import))
    sub.ir_version = model.ir_version
    sub = with_shapes(sub)
    _annotate(sub, graph, starts, stops)
    return sub


def _between(g: onnx.GraphProto, begins: list[str], ends: list[str], what: str) -> list[onnx.NodeProto]:
    """The nodes computing `ends` from `begins` and constants, in the model's order."""
    producer = {out: node for node in g.node for out in node.output}
    constants = {init.name for init in g.initializer}
    needed: set[int] = set()
    stack = list(ends)
    seen = set(begins)
    position = {id(node): i for i, node in enumerate(g.node)}
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor in constants or not tensor:
            continue
        seen.add(tensor)
        node = producer.get(tensor)
        if node is None:
            raise SubModelError(f"{what}: {ends} depend on graph input {tensor!r} besides the cut at {begins}")
        needed.add(position[id(node)])
        stack.extend(node.input)
    read = {name for i in needed for name in g.node[i].input}
    unread = [b for b in begins if b not in read and b not in ends]
    if unread:
        raise SubModelError(f"{what}: {ends} do not depend on {unread}")
    return [g.node[i] for i in sorted(needed)]


def _shape_table(model: onnx.ModelProto) -> dict[str, list[int]]:
    infos = [*model.graph.value_info, *model.graph.input, *model.graph.output]
    return {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in infos}


def _const(name: str, value: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _scale_head(start: Boundary, shape: list[int]):
    """Integer input -> Mul(scale) [-> Add(offset)] -> the original float tensor."""
    scale = f"{start.tensor}_scale"
    if start.offset is None:
        node = helper.make_node("Mul", [start.tensor, scale], [start.onnx_name], name=f"{start.tensor}_dequant")
        info = helper.make_tensor_value_info(start.tensor, TensorProto.FLOAT, shape)
        return [node], [_const(scale, start.scale)], info
    # a bipolar code b: b * 2s - s is exactly -s or +s in float32
    scaled, offset = f"{start.tensor}_scaled", f"{start.tensor}_offset"
    nodes = [helper.make_node("Mul", [start.tensor, scale], [scaled], name=f"{start.tensor}_dequant"),
             helper.make_node("Add", [scaled, offset], [start.onnx_name], name=f"{start.tensor}_shift")]
    info = helper.make_tensor_value_info(start.tensor, TensorProto.FLOAT, shape)
    return nodes, [_const(scale, start.scale), _const(offset, start.offset)], info


def _declared_head(graph: DataflowGraph, model_input: onnx.ValueInfoProto, shape: list[int]):
    """Raw integer pixels -> (x * scale - mean) / std, as splitter.model_io.model_float_input computes it."""
    iq = graph.input_quant
    name = graph.input.name
    nodes, inits, current = [], [], name
    steps = []
    if iq.shift:  # the first board's x * factor - shift back to the pixels x, exactly (integers below 2**24)
        steps += [("Add", "shift", np.asarray(iq.shift, dtype=np.float32).reshape(1, -1, 1, 1)),
                  ("Div", "factor", np.float32(iq.factor))]
    steps.append(("Mul", "scale", np.float32(iq.scale)))
    if iq.mean:
        steps.append(("Sub", "mean", np.asarray(iq.mean, dtype=np.float32).reshape(1, -1, 1, 1)))
    steps.append(("Div", "std", np.float32(iq.std)))
    for i, (op, what, value) in enumerate(steps):
        out = model_input.name if i == len(steps) - 1 else f"{name}_{what}ed"
        nodes.append(helper.make_node(op, [current, f"{name}_{what}"], [out], name=f"preprocess_{what}"))
        inits.append(_const(f"{name}_{what}", value))
        current = out
    return nodes, inits, helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _scale_tail(stop: Boundary, shape: list[int]):
    """The original float tensor -> Div(scale) -> Round -> integer output.

    The Quant node computed the tensor as integer * scale in float32, so the quotient can be one
    ulp off the integer (15.000001); Round restores it exactly. FINN leaves both ops to the host.
    """
    scale = f"{stop.tensor}_outscale"
    divided = f"{stop.tensor}_unrounded"
    source, nodes, inits = stop.onnx_name, [], [_const(scale, stop.scale)]
    if stop.offset is not None:  # a bipolar value -s / +s: minus the offset -s gives 0 / 2s exactly
        source = f"{stop.tensor}_unshifted"
        nodes.append(helper.make_node("Sub", [stop.onnx_name, f"{stop.tensor}_outoffset"], [source],
                                      name=f"{stop.tensor}_unshift"))
        inits.append(_const(f"{stop.tensor}_outoffset", stop.offset))
    nodes += [
        helper.make_node("Div", [source, scale], [divided], name=f"{stop.tensor}_descale"),
        helper.make_node("Round", [divided], [stop.tensor], name=f"{stop.tensor}_round"),
    ]
    info = helper.make_tensor_value_info(stop.tensor, TensorProto.FLOAT, shape)
    return nodes, inits, info


def _annotate(sub: onnx.ModelProto, graph: DataflowGraph, starts: list[Boundary] | None,
              stops: list[Boundary] | None) -> None:
    """Record the FINN datatypes of the integer inputs and outputs (qonnx quantization annotations)."""
    annotations = [(b.tensor, b.dtype_name) for b in starts] if starts else [(graph.input.name,
                                                                              graph.input.dtype.name)]
    annotations += [(b.tensor, b.dtype_name) for b in stops or []]
    for tensor, dtype in annotations:
        ann = onnx.TensorAnnotation(tensor_name=tensor)
        ann.quant_parameter_tensor_names.append(onnx.StringStringEntryProto(key="finn_datatype", value=dtype))
        sub.graph.quantization_annotation.append(ann)

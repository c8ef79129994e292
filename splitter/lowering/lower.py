"""Lower a QONNX model (quantized layers, in order or branching) to FINN-style dataflow layers.

The walk follows the graph from its input. At every step a `Cursor` (lowering/cursor.py) names the
ONNX tensor that the current integer dataflow tensor represents (ONNX value = integer * scale[c] +
offset[c]). `Lowering` holds the walk's state and output (emit, record, start, finish); each pattern
of ONNX nodes is lowered by a handler in its own module (docs/lowering.md):

    compute.py      Conv / MatMul / Gemm with thresholds      (padding and windows: window.py)
    accumulator.py  a compute layer without a quantizer: bias, TopK, the output affine
    activation.py   a standalone Thresholding
    pooling.py      MaxPool, truncating AveragePool           (its parameters: avgpool.py)

Handlers are plain functions `handler(lowering, node, cursor) -> cursor`, looked up in one table
keyed by op_type (`HANDLERS`), rather than mixins of `Lowering`: each handler shows exactly which
parts of the walk it uses (`view`, `emit`, `record`, `finish`), a reader finds a pattern's code
from the table without following a class hierarchy, and the handlers share no hidden state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import onnx

from core.datatypes import DataType
from core.errors import InputQuantizationRequired, LoweringError, UnsupportedNodeError
from splitter.graph import Affine, DataflowGraph, HostStage, InputQuant, Layer, RefTensor, TensorSpec
from splitter.lowering.activation import standalone_activation
from splitter.lowering.compute import compute
from splitter.lowering.cursor import Cursor
from splitter.lowering.elementwise import ELEMENTWISE_OPS
from splitter.lowering.host_stages import build_input_quant, build_output_stage
from splitter.lowering.importer import import_model
from splitter.lowering.onnx_view import OnnxView, per_channel
from splitter.lowering.pooling import avgpool, maxpool
from splitter.lowering.residual import duplicate, is_join, join
from splitter.lowering.shift import shift_declared_input
from splitter.lowering.survey import regions, survey

PASS_THROUGH = ("Identity", "Dropout")
COMPUTE = ("Conv", "MatMul", "Gemm")

__all__ = ["COMPUTE", "HANDLERS", "PASS_THROUGH", "Cursor", "InputSpec", "Lowering", "lower", "lower_model"]


@dataclass(frozen=True)
class InputSpec:
    """A declared input quantization: real input = (x * scale - mean[c]) / std, x of `dtype`."""

    dtype: DataType
    scale: float
    mean: tuple[float, ...] = ()
    std: float = 1.0


class Lowering:
    """One lowering run: emits layers while walking the model."""

    def __init__(self, model: onnx.ModelProto, name: str, input_spec: InputSpec | None) -> None:
        self.view = OnnxView(model)
        self.name = name
        self.input_spec = input_spec
        self.layers: list[Layer] = []
        self.tensors: dict[str, TensorSpec] = {}
        self.reference: dict[str, RefTensor] = {}
        self.counters: dict[str, int] = {}
        self.output_affine = None
        self.input_quant: InputQuant | None = None
        self.output_stage: HostStage | None = None
        self.tail = regions(model).tail  # nodes after the last quantized layer: the host may run them
        self.done = False

    # -- emitting ---------------------------------------------------------------------------
    def emit(
        self,
        op_type: str,
        cur: Cursor,
        attrs: dict,
        out_shape: tuple[int, ...],
        out_dtype: DataType,
        params: dict | None = None,
        source: tuple[str, ...] = (),
        outputs: int = 1,
        extra_inputs: tuple[str, ...] = (),
    ) -> str:
        """Append a layer reading `cur.tensor` (and `extra_inputs`); returns the name of its first output.

        A layer with several `outputs` (DuplicateStreams) writes `<name>_out0`, `<name>_out1`, ...
        """
        index = self.counters.get(op_type, 0)
        self.counters[op_type] = index + 1
        name = f"{op_type}_{index}"
        names = [f"{name}_out"] if outputs == 1 else [f"{name}_out{i}" for i in range(outputs)]
        for out in names:
            self.tensors[out] = TensorSpec(out, tuple(int(d) for d in out_shape), out_dtype)
        self.layers.append(Layer(op_type, name, cur.tensor, names[0], attrs, params or {}, source,
                                 extra_inputs=extra_inputs, extra_outputs=tuple(names[1:])))
        return names[0]

    def record(self, cur: Cursor) -> None:
        """Remember where `cur`'s dataflow tensor appears in the ONNX model (for equivalence checks)."""
        shape = (1, -1, 1, 1) if cur.rank == 4 else (1, -1)
        offset = cur.offset.reshape(shape).astype(np.float64) if np.any(cur.offset) else None
        self.reference[cur.tensor] = RefTensor(cur.onnx, cur.scale.reshape(shape).astype(np.float64), offset)

    def finish(self, scale: np.ndarray | None, bias: np.ndarray | None = None) -> None:
        """End the walk; the host computes the output as integer * scale + bias (None: the integers)."""
        self.output_affine = None if scale is None else Affine(scale.astype(np.float32), bias.astype(np.float32))
        self.done = True

    def finish_on_host(self, tensor: str, scale: np.ndarray, bias: np.ndarray) -> None:
        """End the walk at ONNX tensor `tensor` (= integer * scale + bias); the host runs the rest of the model."""
        self.finish(scale, bias)
        self.output_stage = build_output_stage(self.view, tensor)

    # -- the walk ----------------------------------------------------------------------------
    def run(self) -> DataflowGraph:
        """Walk the whole model; returns the dataflow graph."""
        cur = self.start()
        first = TensorSpec(cur.tensor, cur.shape, cur.dtype)
        self.tensors[first.name] = first
        self.record(cur)
        self.walk(cur)
        if not self.layers:
            raise LoweringError(f"model {self.name!r} has no layers to run on the FPGA")
        return DataflowGraph(
            name=self.name,
            input=self.tensors[first.name],
            layers=self.layers,
            tensors=self.tensors,
            input_quant=self.input_quant,
            output_affine=self.output_affine,
            reference=self.reference,
            onnx_output=self.view.outputs[0],
            output_stage=self.output_stage,
        )

    def walk(self, cur: Cursor) -> None:
        """Follow the dataflow from `cur` to the model output, through branches and joins.

        Depth first: a branch is walked to its join, where it waits for the other branch, so layers
        come out in an order FINN can stream (each layer after all it reads; docs/lowering.md#residual-networks).
        """
        todo: list[tuple[Cursor, onnx.NodeProto | None]] = [(cur, None)]
        waiting: dict[str, Cursor] = {}  # a join's name -> the branch that reached it first
        while todo and not self.done:
            cur, node = todo.pop()
            if node is None:
                readers = self.view.consumers.get(cur.onnx, [])
                if not readers:
                    self.finish_integer(cur)
                    continue
                if len(readers) > 1:
                    streams = duplicate(self, cur, len(readers))
                    todo.extend(reversed(list(zip(streams, readers, strict=True))))
                    continue
                node = readers[0]
            if is_join(self, node):
                if node.name not in waiting:
                    waiting[node.name] = cur
                    continue
                todo.append((join(self, node, waiting.pop(node.name), cur), None))
                continue
            todo.append((self.step(node, cur), None))
        if waiting and not self.done:
            name = next(iter(waiting))
            raise UnsupportedNodeError(name, "Add", "only one of its inputs is reached from the model input")

    def step(self, node: onnx.NodeProto, cur: Cursor) -> Cursor:
        """Lower the pattern starting at `node`; returns the cursor after it."""
        handler = HANDLERS.get(node.op_type)
        if node.name in self.tail and (handler is None or node.op_type in COMPUTE):
            # after the last quantized layer: what no layer maps (Softmax, a float head) runs on the host
            self.finish_on_host(cur.onnx, cur.scale, cur.offset)
            return cur
        if handler is None:
            raise UnsupportedNodeError(node.name, node.op_type, "no dataflow layer implements this operation")
        return handler(self, node, cur)

    def start(self) -> Cursor:
        """Cursor for the model input, quantized by the model itself or by the declared spec."""
        view = self.view
        inputs = [i.name for i in view.graph.input if i.name not in view.initializers]
        if len(inputs) != 1:
            raise LoweringError(f"model must have exactly one input, found {inputs}")
        name = inputs[0]
        shape = view.shape(name)
        spec = self.input_spec
        iq = build_input_quant(view, name)
        if iq is not None:
            self.input_quant, quant_out, quant = iq
            return self.cursor_after_quant(quant_out, quant)
        if spec is None:
            node = view.single_consumer(name)
            what = f"{node.op_type} node {node.name!r}" if node is not None else "the output"
            raise InputQuantizationRequired(
                f"model input {name!r} (float, shape {'x'.join(map(str, shape))}) feeds {what} without a "
                "quantizer; declare how the input is quantized, e.g. --input-dtype UINT8 --input-scale 1/255 "
                "--mean 0.485,0.456,0.406 --std 0.226 (FINN's ImageNet preprocessing), or --input-dtype UINT8 "
                "--input-scale 1/255 for images in [0, 1]"
            )
        return self.declared_input(name, shape, spec)

    def declared_input(self, name: str, shape: tuple[int, ...], spec: InputSpec) -> Cursor:
        """Cursor for a float NCHW input quantized on the host as declared by `spec`."""
        if len(shape) != 4:
            raise LoweringError(f"declared input quantization needs an NCHW image input, {name!r} has shape {shape}")
        channels = shape[1]
        mean = np.zeros(channels) if not spec.mean else np.broadcast_to(np.asarray(spec.mean, float), (channels,))
        self.input_quant = InputQuant("declared", spec.dtype, spec.scale, tuple(float(m) for m in mean), spec.std)
        return Cursor(
            onnx=name,
            tensor="global_in",
            scale=np.full(channels, spec.scale / spec.std),
            offset=-mean / spec.std,
            dtype=spec.dtype,
            shape=(1, shape[2], shape[3], channels),
        )

    def shift_input(self, cur: Cursor, node: onnx.NodeProto) -> Cursor:
        """The declared input re-based so that padding it with integer 0 pads with 0.0 (lowering/shift.py)."""
        iq = self.input_quant
        if cur.tensor != "global_in" or iq is None or iq.kind != "declared":
            raise UnsupportedNodeError(
                node.name, node.op_type, "padding a tensor whose integer 0 is not the real 0 (a bipolar activation): "
                "FINN's FMPadding pads with integer 0")
        self.input_quant, cur = shift_declared_input(iq, cur, node.name)
        self.tensors[cur.tensor] = TensorSpec(cur.tensor, cur.shape, cur.dtype)
        self.record(cur)
        return cur

    def cursor_after_quant(self, onnx_name: str, quant) -> Cursor:
        """Cursor for the integer output of a Quant node reached from the model input."""
        shape = self.view.shape(onnx_name)
        if len(shape) == 4:
            nhwc = (1, shape[2], shape[3], shape[1])
        elif len(shape) == 2:
            nhwc = (1, 1, 1, shape[1])
        else:
            raise LoweringError(f"input tensor {onnx_name!r} has rank {len(shape)}; expected NCHW or NC")
        channels = nhwc[-1]
        step, offset = quant.code(per_channel(quant.scale, channels, len(shape), onnx_name))
        return Cursor(onnx_name, "global_in", step, offset, quant.dtype, nhwc, rank=len(shape), bipolar=quant.bipolar)

    def finish_integer(self, cur: Cursor) -> Cursor:
        """The walk reached the model output on a quantized tensor."""
        self.finish(cur.scale, cur.offset)
        return cur


# -- patterns that emit no layer ---------------------------------------------------------------
def pass_through(lw: Lowering, node: onnx.NodeProto, cur: Cursor) -> Cursor:
    """Identity / Dropout: the same integer tensor under the node's output name."""
    return replace(cur, onnx=node.output[0])


def flatten(lw: Lowering, node: onnx.NodeProto, cur: Cursor) -> Cursor:
    """Reshape/Flatten of an NCHW tensor to (N, C*H*W): no layer, the next MVAU reorders weights."""
    out_shape = lw.view.shape(node.output[0])
    if cur.rank == 2 and len(out_shape) == 2:
        return replace(cur, onnx=node.output[0])
    if cur.rank != 4 or len(out_shape) != 2 or out_shape[1] != int(np.prod(cur.shape[1:])):
        raise UnsupportedNodeError(
            node.name, node.op_type, f"only flattening NCHW to (N, C*H*W) is supported (to {out_shape})"
        )
    _, height, width, channels = cur.shape
    if not np.all(cur.scale == cur.scale[0]) or not np.all(cur.offset == cur.offset[0]):
        raise UnsupportedNodeError(node.name, node.op_type, "flattening a per-channel scaled tensor")
    flat = height * width * channels
    return replace(
        cur,
        onnx=node.output[0],
        rank=2,
        flattened_from=(channels, height, width),
        scale=np.full(flat, cur.scale[0]),
        offset=np.full(flat, cur.offset[0]),
    )


Handler = Callable[[Lowering, onnx.NodeProto, Cursor], Cursor]

# One handler per op_type starting a pattern; any other op is unsupported.
HANDLERS: dict[str, Handler] = {
    **{op: pass_through for op in PASS_THROUGH},
    "Reshape": flatten,
    "Flatten": flatten,
    **{op: compute for op in COMPUTE},
    **{op: standalone_activation for op in (*ELEMENTWISE_OPS, "Quant", "BipolarQuant")},
    "MaxPool": maxpool,
    "AveragePool": avgpool,
}


def lower(model: onnx.ModelProto, name: str = "model", input_spec: InputSpec | None = None) -> DataflowGraph:
    """Lower an imported QONNX model to a dataflow graph (see docs/lowering.md)."""
    return Lowering(model, name, input_spec).run()


def lower_model(
    model: onnx.ModelProto, name: str = "model", input_spec: InputSpec | None = None
) -> tuple[onnx.ModelProto, DataflowGraph]:
    """Import a model as FINN does, report every problem it has at once, and lower it.

    Returns the imported model, which the graph's reference tensors and the sub-models refer to.
    """
    imported = import_model(model, name)
    survey(imported.model, name, input_spec)
    graph = lower(imported.model, name, input_spec)
    return imported.model, replace(graph, notes=(*imported.notes, *graph.notes))

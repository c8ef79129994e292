"""Where each node of an imported model runs, and every problem that stops it lowering, found at once.

The quantized core runs on the boards: from the first quantizer (or compute op with quantized
weights) to the last. What lies before it is the host's input stage, what lies after it the host's
output stage (docs/lowering.md#host-stages); both may use any standard ONNX op, which the host runs
with onnxruntime. Inside the core every op must be one a dataflow layer implements. `survey`
checks the whole graph before the walk starts, so a user hears every unsupported op in one error,
before being asked how the input is quantized (docs/lowering.md#errors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from core.errors import LoweringError

__all__ = ["CORE_OPS", "ModelProblems", "Regions", "regions", "survey"]

QUANTIZERS = ("Quant", "BipolarQuant", "Trunc")
COMPUTE = ("Conv", "MatMul", "Gemm")
# Every op a lowering handler (lowering/lower.py HANDLERS and the patterns it reads) accepts in the core.
CORE_OPS = frozenset({
    *QUANTIZERS, *COMPUTE, "Mul", "Div", "Add", "Sub", "BatchNormalization", "Relu", "MaxPool", "AveragePool",
    "Reshape", "Flatten", "Identity", "Dropout", "TopK",
})
_TWO_INPUT = ("Add", "Sub", "Mul", "Div")
_STANDARD_DOMAINS = ("", "ai.onnx")


class ModelProblems(LoweringError):
    """Every problem of a model that stops it lowering (the list is `problems`)."""

    def __init__(self, name: str, problems: list[str]) -> None:
        lines = "\n  ".join(problems)
        super().__init__(f"model {name!r} cannot be lowered ({len(problems)} problem{'s' * (len(problems) > 1)}):"
                         f"\n  {lines}")
        self.problems = problems


@dataclass(frozen=True)
class Regions:
    """Node names by where they run: before, in, and after the quantized core."""

    head: frozenset[str]
    core: frozenset[str]
    tail: frozenset[str]


def regions(model: onnx.ModelProto) -> Regions:
    """Split an imported model's nodes into the host's input stage, the quantized core and the output stage."""
    return _Graph(model).regions()


def survey(model: onnx.ModelProto, name: str, input_declared: object = None) -> Regions:
    """Regions of the model; raises ModelProblems listing every problem (unsupported ops first)."""
    graph = _Graph(model)
    where = graph.regions()
    if not where.core:
        ops = sorted({n.op_type for n in graph.nodes})
        raise ModelProblems(name, [
            f"no quantized layer to run on the FPGA: none of its {len(graph.nodes)} node(s) ({', '.join(ops)}) is a "
            "quantizer (Quant, BipolarQuant) or a Conv/MatMul/Gemm with quantized weights; export the model with "
            "brevitas' quantized layers (QuantConv2d, QuantLinear, QuantReLU, QuantIdentity)"])
    problems = [*graph.unsupported(where), *graph.structure(where)]
    if problems and input_declared is None and graph.needs_declared_input():
        problems.append("besides: the float input feeds a convolution without a quantizer; declare how it is "
                        "quantized (--input-dtype UINT8 --input-scale 1/255 [--mean ... --std ...])")
    if problems:
        raise ModelProblems(name, problems)
    return where


class _Graph:
    """Producers, consumers and constants of an imported model."""

    def __init__(self, model: onnx.ModelProto) -> None:
        g = model.graph
        self.nodes = list(g.node)
        self.values = {init.name: init for init in g.initializer}
        self.constant = set(self.values)
        params = []
        for node in self.nodes:  # weight quantizers: nodes that read only constants
            if all(not i or i in self.constant for i in node.input):
                self.constant.update(node.output)
                params.append(node.name)
        self.params = set(params)
        self.producer = {out: node for node in self.nodes for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.nodes:
            for inp in self.dynamic_inputs(node):
                self.consumers.setdefault(inp, []).append(node)
        inputs = [i.name for i in g.input if i.name not in self.values]
        self.input = inputs[0] if inputs else ""

    def dynamic_inputs(self, node: onnx.NodeProto) -> list[str]:
        return [i for i in node.input if i and i not in self.constant]

    def is_marker(self, node: onnx.NodeProto) -> bool:
        """A quantizer of activations, or a compute op whose weights are quantized or integers."""
        if node.name in self.params:
            return False
        if node.op_type in QUANTIZERS:
            return True
        return node.op_type in COMPUTE and len(node.input) > 1 and self.quantized_weights(node) is True

    def quantized_weights(self, node: onnx.NodeProto) -> bool | None:
        """True: quantized or integer constant weights; False: float constants; None: not constant."""
        name = node.input[1]
        producer = self.producer.get(name)
        if producer is not None and producer.op_type in ("Quant", "BipolarQuant") and name in self.constant:
            return True
        if name not in self.values:
            return None
        values = numpy_helper.to_array(self.values[name])
        return bool(np.all(values == np.rint(values)))

    def regions(self) -> Regions:
        nodes = [n for n in self.nodes if n.name not in self.params]
        markers = {n.name for n in nodes if self.is_marker(n)}
        below = self._reach(markers, downward=True)
        above = self._reach(markers, downward=False)
        head = {n.name for n in nodes if n.name not in below and n.name not in markers}
        tail = {n.name for n in nodes if n.name in below and n.name not in above and n.name not in markers}
        core = {n.name for n in nodes} - head - tail
        return Regions(frozenset(head), frozenset(core), frozenset(tail))

    def _reach(self, start: set[str], downward: bool) -> set[str]:
        """Names of nodes strictly below (or above) any node in `start`, through dynamic tensors."""
        by_name = {n.name: n for n in self.nodes}
        seen: set[str] = set()
        stack = list(start)
        while stack:
            node = by_name[stack.pop()]
            if downward:
                nxt = [c for out in node.output for c in self.consumers.get(out, [])]
            else:
                nxt = [self.producer[i] for i in self.dynamic_inputs(node) if i in self.producer]
            for other in nxt:
                if other.name not in seen:
                    seen.add(other.name)
                    stack.append(other.name)
        return seen

    def unsupported(self, where: Regions) -> list[str]:
        """Ops no dataflow layer implements in the core, or the host cannot run around it."""
        out = []
        for node in self.nodes:
            what = f"unsupported node {node.name!r} (op type {node.op_type})"
            if node.name in where.core and node.op_type not in CORE_OPS:
                out.append(f"{what}: no dataflow layer implements it, and it lies between quantized layers (the "
                           "host runs float ops only before the first or after the last quantized layer)")
            elif node.name in where.core | where.head and node.op_type in COMPUTE and len(node.input) > 1 \
                    and self.quantized_weights(node) is False:
                out.append(f"{what}: its weights {node.input[1]!r} are float; export it with a weight quantizer "
                           "(brevitas QuantConv2d / QuantLinear)")
            elif (node.name in where.head | where.tail and node.domain not in _STANDARD_DOMAINS
                  and node.op_type not in QUANTIZERS):
                out.append(f"{what}: a custom op (domain {node.domain!r}) outside the quantized layers; the host runs "
                           "only standard ONNX ops there (with onnxruntime)")
        return out

    def structure(self, where: Regions) -> list[str]:
        """Branches in the input stage, and joins in the core other than a residual Add.

        The core may branch at a quantized tensor (DuplicateStreams) and join in an Add (AddStreams,
        lowering/residual.py); the walk names a branch or join it cannot lower.
        """
        out = []
        for tensor, users in self.consumers.items():
            if len(users) > 1 and any(u.name in where.head for u in users):
                names = ", ".join(f"{u.name} ({u.op_type})" for u in users)
                out.append(f"tensor {tensor!r} feeds {len(users)} nodes ({names}) in the host's input stage, which "
                           "is one run of elementwise ops up to the first quantizer")
        for node in self.nodes:
            if node.name in where.core and node.op_type in _TWO_INPUT and node.op_type != "Add" \
                    and len(self.dynamic_inputs(node)) > 1:
                out.append(f"unsupported node {node.name!r} (op type {node.op_type}): both inputs are computed "
                           "tensors; of such joins only a residual Add has a dataflow layer (FINN's AddStreams)")
        return out

    def needs_declared_input(self) -> bool:
        """True when the float input reaches a compute op before any quantizer."""
        tensor = self.input
        while True:
            users = self.consumers.get(tensor, [])
            if len(users) != 1:
                return False
            node = users[0]
            if node.op_type in COMPUTE:
                return True
            if node.op_type in QUANTIZERS:
                return False
            tensor = node.output[0]

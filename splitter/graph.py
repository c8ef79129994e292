"""The dataflow graph: FINN-style layers over integer NHWC tensors.

Layer semantics are specified once, in docs/program-format.md; splitter.executor implements them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.datatypes import DataType, TensorSpec, datatype

Attr = int | str | tuple[int, ...]

# Layers that run on the FPGA, in FINN's names (post-lowering, pre-specialization).
DATAFLOW_OP_TYPES = (
    "FMPadding",
    "ConvolutionInputGenerator",
    "MVAU",
    "VVAU",
    "Thresholding",
    "ChannelwiseOp",
    "StreamingMaxPool",
    "Pool",
    "GlobalAccPool",
    "LabelSelect",
    "DuplicateStreams",
    "AddStreams",
)


@dataclass
class Layer:
    """One dataflow layer: FINN op type, FINN attribute names, integer parameters."""

    op_type: str
    name: str
    input: str
    output: str
    attrs: dict[str, Attr]
    params: dict[str, np.ndarray] = field(default_factory=dict)
    source: tuple[str, ...] = ()  # names of the QONNX nodes this layer implements
    # Branching dataflow: AddStreams' second input, DuplicateStreams' outputs after the first.
    extra_inputs: tuple[str, ...] = ()
    extra_outputs: tuple[str, ...] = ()

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every tensor the layer reads, `input` first."""
        return (self.input, *self.extra_inputs)

    @property
    def outputs(self) -> tuple[str, ...]:
        """Every tensor the layer writes, `output` first."""
        return (self.output, *self.extra_outputs)

    def attr(self, key: str) -> Attr:
        """Attribute `key` (KeyError names the layer if it is missing)."""
        try:
            return self.attrs[key]
        except KeyError:
            raise KeyError(f"layer {self.name} ({self.op_type}) has no attribute {key!r}") from None


def dtype_attr(layer: Layer, key: str) -> DataType:
    """The datatype named by attribute `key` of `layer`."""
    return datatype(str(layer.attr(key)))


def pair(value: object) -> tuple[int, int]:
    """An attribute that is an int or a 2-sequence, as (h, w)."""
    if isinstance(value, int):
        return (value, value)
    seq = tuple(int(v) for v in value)  # type: ignore[union-attr]
    return (seq[0], seq[-1]) if len(seq) in (1, 2) else (seq[0], seq[1])


@dataclass(frozen=True)
class Affine:
    """Host-side float op y = x * scale + bias, broadcast over the last (channel) axis."""

    scale: np.ndarray
    bias: np.ndarray

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Apply in float32, as the reference executes a Mul followed by an Add."""
        return (values.astype(np.float32) * self.scale.astype(np.float32)) + self.bias.astype(np.float32)


@dataclass(frozen=True)
class InputQuant:
    """How the host turns the user's input into the first layer's integer tensor.

    kind "declared": the user's input already is integer `dtype` (e.g. UINT8 pixels) whose real value
    is (x * scale - mean[c]) / std; the first board gets x * factor - shift[c] (unchanged x unless a
    padded first convolution needs the real 0 at integer 0, lowering/shift.py).
    kind "onnx": the model quantizes its float input itself; `model` is the ONNX sub-graph from the
    graph input to that Quant node, which the host runs, dividing its output by `scale`; `ops` are
    its op types (float preprocessing and the quantizer, run with onnxruntime / qonnx).
    """

    kind: str
    dtype: DataType
    scale: float
    mean: tuple[float, ...] = ()
    std: float = 1.0
    model: bytes = b""
    ops: tuple[str, ...] = ()
    factor: int = 1
    shift: tuple[int, ...] = ()


@dataclass(frozen=True)
class HostStage:
    """Float ONNX ops the host runs with onnxruntime after the last board (docs/lowering.md#host-stages).

    `model` is the ONNX sub-graph from tensor `input` (the last board's output as the original model
    holds it, ONNX layout `input_shape`, float = integer x scale + bias) to the model's output.
    """

    model: bytes
    input: str
    input_shape: tuple[int, ...]
    ops: tuple[str, ...]


@dataclass(frozen=True)
class RefTensor:
    """Where a dataflow tensor appears in the original QONNX model, for equivalence checks."""

    onnx_name: str
    scale: np.ndarray  # broadcastable to the ONNX tensor; integer = (onnx value - offset) / scale
    offset: np.ndarray | None = None  # broadcastable like scale; None: 0 (only bipolar values have one)


@dataclass
class DataflowGraph:
    """A lowered model: integer input, its layers in order, and the host-side ops around it."""

    name: str
    input: TensorSpec
    layers: list[Layer]
    tensors: dict[str, TensorSpec]
    input_quant: InputQuant | None = None
    output_affine: Affine | None = None  # integer output -> float output; None for LabelSelect outputs
    reference: dict[str, RefTensor] = field(default_factory=dict)
    onnx_output: str = ""  # name of the original model's output tensor
    output_stage: HostStage | None = None  # float ops after the output affine, run by the host
    notes: tuple[str, ...] = ()  # what the import and lowering did that the user should know
    # A partition cut inside a residual block: every tensor crossing each end, in boundary order
    # (docs/bundle.md#multi-tensor-boundaries); empty: the one `input` / `output`.
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()

    @property
    def output(self) -> TensorSpec:
        """The integer tensor the last layer produces."""
        return self.tensors[self.layers[-1].output] if self.layers else self.input

    @property
    def inputs(self) -> list[TensorSpec]:
        """Every tensor the graph reads from outside, in boundary order (`input` alone if it does not branch)."""
        return [self.tensors[n] for n in self.input_names] if self.input_names else [self.input]

    @property
    def outputs(self) -> list[TensorSpec]:
        """Every tensor the graph hands on, in boundary order (`output` alone if it does not branch)."""
        return [self.tensors[n] for n in self.output_names] if self.output_names else [self.output]

    def layer(self, name: str) -> Layer:
        """The layer called `name`."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r}")

    def live_tensors(self, index: int) -> list[str]:
        """Tensors written before layers[index] (or the graph input) and read by it or a later layer."""
        written = {self.input.name} | {out for layer in self.layers[:index] for out in layer.outputs}
        read = [name for layer in self.layers[index:] for name in layer.inputs]
        return list(dict.fromkeys(name for name in read if name in written))

    def slice(self, start: int, stop: int, name: str) -> DataflowGraph:
        """Layers [start, stop) as a graph of their own (host ops kept only at the ends).

        A cut inside a residual block carries several tensors (`live_tensors`, in that order): the
        slice then has several inputs or outputs (`input_names`, `output_names`). Every tensor entering
        must be read inside the slice (nothing passes a board untouched).
        """
        layers = self.layers[start:stop]
        live = self.live_tensors(start) if start > 0 else [layers[0].input]
        after = self.live_tensors(stop) if stop < len(self.layers) else [layers[-1].output]
        read = {n for layer in layers for n in layer.inputs}
        untouched = [n for n in live if n not in read]
        if untouched:
            raise ValueError(f"{self.name}: layers {layers[0].name}..{layers[-1].name} do not read {untouched}, "
                             "which cross the cut before them; a partition must read every tensor it receives")
        used = set(live) | {out for layer in layers for out in layer.outputs}
        return DataflowGraph(
            name=name,
            input=self.tensors[live[0]],
            layers=layers,
            tensors={k: v for k, v in self.tensors.items() if k in used},
            input_quant=self.input_quant if start == 0 else None,
            output_affine=self.output_affine if stop >= len(self.layers) else None,
            reference={k: v for k, v in self.reference.items() if k in used},
            onnx_output=self.onnx_output if stop >= len(self.layers) else "",
            output_stage=self.output_stage if stop >= len(self.layers) else None,
            input_names=tuple(live) if len(live) > 1 else (),
            output_names=tuple(after) if len(after) > 1 or after != [layers[-1].output] else (),
        )

"""Import a user's QONNX model as FINN does before lowering it (docs/lowering.md#import).

FINN's first build step runs qonnx's cleanup on whatever brevitas exported; so does finnsplit,
with qonnx's own transformations: shape inference, constant folding (quantizers kept),
`FoldTransposeIntoQuantInit` (brevitas 0.10 writes Quant -> Transpose -> MatMul), removal of unused
tensors and of initializers listed as graph inputs. Two of cleanup's passes are replaced so the
result stays the user's model: tensor and node names are kept (errors, the reference and the
sub-models name what the user exported; qonnx's `GiveReadableTensorNames` would rename them all),
and parameters shared by several nodes are copied under names derived from the node (qonnx's
`GiveUniqueParameterTensors` draws random ones). Nodes without a name get one. A symbolic batch
dimension is bound to 1 with a note: the pipeline streams one frame at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from core.errors import LoweringError

__all__ = ["ImportedModel", "import_model"]

# qonnx's cleanup keeps these (FINN's cleanup_model with preserve_qnt_ops=True).
QUANT_OPS = ("Quant", "BipolarQuant", "QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class ImportedModel:
    """A cleaned-up model ready for lowering, and what the import changed that the user should know."""

    model: onnx.ModelProto
    notes: tuple[str, ...] = ()


def import_model(model: onnx.ModelProto, name: str = "model") -> ImportedModel:
    """Check the model's structure, bind a symbolic batch to 1 and run qonnx's cleanup on it."""
    _check_structure(model, name)
    model = onnx.ModelProto.FromString(model.SerializeToString())  # never change the caller's model
    notes = _bind_batch(model, name)
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import RemoveStaticGraphInputs, RemoveUnusedTensors
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    from splitter.lowering.passes import NameUnnamedNodes, UniqueParameterTensors

    wrapper = ModelWrapper(model)
    try:
        for step in (NameUnnamedNodes(), InferShapes(), UniqueParameterTensors(),
                     FoldConstants(exclude_op_types=list(QUANT_OPS)), FoldTransposeIntoQuantInit(),
                     RemoveUnusedTensors(), RemoveStaticGraphInputs(), InferShapes()):
            wrapper = wrapper.transform(step)
    except Exception as exc:  # qonnx and onnxruntime raise many unrelated types for a broken graph
        raise LoweringError(f"model {name!r}: qonnx's cleanup failed ({type(exc).__name__}: {exc})") from None
    return ImportedModel(wrapper.model, tuple(notes))


def _check_structure(model: onnx.ModelProto, name: str) -> None:
    """Refuse what no lowering can start from: no nodes, not exactly one input and one output."""
    graph = model.graph
    if not graph.node:
        raise LoweringError(f"model {name!r} has an empty graph (no nodes): there is nothing to run")
    inits = {init.name for init in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise LoweringError(f"model {name!r} must have exactly one input, it has {len(inputs)}: {inputs}")
    if len(graph.output) != 1:
        outputs = [o.name for o in graph.output]
        raise LoweringError(f"model {name!r} must have exactly one output, it has {len(outputs)}: {outputs}")


def _bind_batch(model: onnx.ModelProto, name: str) -> list[str]:
    """Set a symbolic or unknown batch dimension (axis 0) of the input and output to 1."""
    graph = model.graph
    inits = {init.name for init in graph.initializer}
    notes = []
    for info in [*(i for i in graph.input if i.name not in inits), *graph.output]:
        dims = info.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                continue
            label = repr(dim.dim_param) if dim.HasField("dim_param") else "unknown"
            if axis != 0:
                raise LoweringError(
                    f"model {name!r}: dimension {axis} of {info.name!r} is {label}; finnsplit needs a fixed "
                    "input size (export with a concrete example input and no dynamic axes other than the batch)")
            dim.Clear()
            dim.dim_value = 1
            if info.name not in {o.name for o in graph.output}:
                notes.append(f"the batch dimension of input {info.name!r} is {label}; bound to 1 "
                             "(the boards process one frame at a time)")
    if notes:
        del graph.value_info[:]  # inferred again with the bound batch
    return notes

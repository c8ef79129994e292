"""Held-out bad inputs, run through the real command line: each ends with exit code 2 and a message
that says what is wrong and where, never a traceback (docs/lowering.md#errors)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper
from qonnx_builder import GraphBuilder

FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]


def finnsplit(*args: str) -> subprocess.CompletedProcess:
    """Run finnsplit as a user does; returns the completed process."""
    return subprocess.run([*FINNSPLIT, *args], capture_output=True, text=True, timeout=600)


def refused(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Assert a clean refusal (exit 2, no traceback) whose message holds every needle; returns stderr."""
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in: {result.stderr}"
    return result.stderr


def save(model: onnx.ModelProto, path: Path) -> str:
    onnx.save(model, str(path))
    return str(path)


def with_unary(model: onnx.ModelProto, after: str, op_type: str, name: str) -> None:
    """Insert `op_type` (one input, one output) right after tensor `after`; its users read the new output."""
    out = f"{after}_{op_type.lower()}"
    for node in model.graph.node:
        for i, inp in enumerate(node.input):
            if inp == after:
                node.input[i] = out
    index = next(i for i, n in enumerate(model.graph.node) if after in n.output)
    model.graph.node.insert(index + 1, helper.make_node(op_type, [after], [out], name=name))


def activation_outputs(model: onnx.ModelProto) -> list[str]:
    """Outputs of the activation quantizers (Quant nodes reading a computed tensor), in graph order."""
    inits = {i.name for i in model.graph.initializer}
    return [n.output[0] for n in model.graph.node if n.op_type == "Quant" and n.input[0] not in inits
            and any(n.input[0] in m.output for m in model.graph.node if m.op_type != "Quant")]


def test_a_dynamic_batch_is_bound_to_one_with_a_note(zoo_dir: Path, tmp_path: Path) -> None:
    model = onnx.load(str(zoo_dir / "tfc-w2a2.onnx"))
    for info in (model.graph.input[0], model.graph.output[0]):
        info.type.tensor_type.shape.dim[0].dim_param = "batch"
    del model.graph.value_info[:]
    result = finnsplit("inspect", save(model, tmp_path / "dynamic.onnx"))
    assert result.returncode == 0, result.stderr
    assert "the batch dimension of input 'x' is 'batch'; bound to 1" in result.stdout
    assert "4 layers: 4 MVAU" in result.stdout


def test_a_symbolic_image_size_is_refused(zoo_dir: Path, tmp_path: Path) -> None:
    model = onnx.load(str(zoo_dir / "cnv-w2a2.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    refused(finnsplit("inspect", save(model, tmp_path / "h.onnx")),
            "dimension 2 of 'x' is 'height'", "fixed input size")


def test_every_unsupported_op_is_named_in_one_error(zoo_dir: Path, tmp_path: Path) -> None:
    model = onnx.load(str(zoo_dir / "cnv-w2a2.onnx"))
    acts = activation_outputs(model)
    with_unary(model, acts[1], "Sigmoid", "my_sigmoid")
    with_unary(model, acts[3], "Erf", "my_erf")
    err = refused(finnsplit("build", save(model, tmp_path / "two.onnx"), "--boards", "2", "-o", str(tmp_path / "b")),
                  "2 problems", "unsupported node 'my_sigmoid' (op type Sigmoid)",
                  "unsupported node 'my_erf' (op type Erf)")
    assert "--input-dtype" not in err  # the model quantizes its own input: nothing to declare


def test_unsupported_ops_come_before_the_input_question(zoo_dir: Path, tmp_path: Path) -> None:
    model = onnx.load(str(zoo_dir / "mobilenet-v1-w4a4.onnx"))
    del model.metadata_props[:]  # a float input nobody declared
    with_unary(model, activation_outputs(model)[2], "HardSwish", "my_hardswish")
    err = refused(finnsplit("inspect", save(model, tmp_path / "float.onnx")),
                  "unsupported node 'my_hardswish' (op type HardSwish)", "--input-dtype UINT8")
    assert err.index("my_hardswish") < err.index("--input-dtype")


def test_an_empty_graph(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    model = helper.make_model(helper.make_graph([], "empty", [x], [x]))
    refused(finnsplit("inspect", save(model, tmp_path / "empty.onnx")), "empty graph (no nodes)")


def test_a_float_model_made_only_of_a_softmax(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    model = helper.make_model(helper.make_graph([helper.make_node("Softmax", ["x"], ["y"], name="sm")], "s", [x], [y]))
    err = refused(finnsplit("build", save(model, tmp_path / "softmax.onnx"), "--boards", "1", "-o",
                            str(tmp_path / "b")), "no quantized layer to run on the FPGA", "(Softmax)",
                  "brevitas' quantized layers")
    assert "--input-dtype" not in err


def test_float_weights_are_named(tmp_path: Path) -> None:
    b = GraphBuilder((1, 3, 8, 8))
    x = b.quant("x", 1 / 64, 8, signed=True)
    x = b.node("Conv", [x, b.const(b.rng.uniform(-1, 1, (4, 3, 3, 3)))], kernel_shape=[3, 3])
    model = b.model(b.quant(x, 0.1, 4, signed=False))
    refused(finnsplit("inspect", save(model, tmp_path / "float_weights.onnx")), "(op type Conv)",
            "are float; export it with a weight quantizer")


def test_a_residual_add_is_named(tmp_path: Path) -> None:
    b = GraphBuilder((1, 4, 6, 6))
    x = b.quant("x", 0.1, 4, signed=False)
    # the branches' scales differ (0.1, 0.15): FINN's AddStreams cannot add them as integers
    y = b.quant(b.node("Conv", [x, b.qweight((4, 4, 1, 1), 4)], kernel_shape=[1, 1]), 0.15, 4, signed=False)
    z = b.quant(b.node("Add", [x, y]), 0.2, 4, signed=False)
    model = b.model(b.node("Conv", [z, b.qweight((2, 4, 1, 1), 4)], kernel_shape=[1, 1]))
    refused(finnsplit("inspect", save(model, tmp_path / "residual.onnx")), "(op type Add)",
            "different scales", "shared quantizer")


def test_two_inputs(tmp_path: Path) -> None:
    infos = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("a", "b", "c")]
    model = helper.make_model(helper.make_graph([helper.make_node("Add", ["a", "b"], ["c"], name="add")], "two",
                                                infos[:2], infos[2:]))
    refused(finnsplit("inspect", save(model, tmp_path / "two.onnx")), "must have exactly one input, it has 2")


@pytest.mark.parametrize(("boards", "needle"), [
    ("-1", "--boards -1: need at least one board"),
    ("0", "--boards 0: need at least one board"),
    ("zedboard:-2", "malformed entry 'zedboard:-2'"),
    ("no-such-board", "unknown board 'no-such-board'"),
])
def test_bad_board_counts_and_names(boards: str, needle: str, zoo_dir: Path, tmp_path: Path) -> None:
    err = refused(finnsplit("build", str(zoo_dir / "tfc-w2a2.onnx"), "--boards", boards, "-o", str(tmp_path / "b")),
                  needle)
    assert boards == "no-such-board" or "unknown board" not in err


def test_virtual_on_a_folder_that_is_no_bundle(tmp_path: Path) -> None:
    refused(finnsplit("virtual", str(tmp_path)), "is not a finnsplit bundle")

"""Residual networks: DuplicateStreams / AddStreams lowering on tiny graphs, executed before and after."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from cpp_fixtures import random_input, run_program, server_bin  # noqa: F401 - server_bin is a fixture
from qonnx_builder import GraphBuilder
from test_lowering_patterns import assert_equivalent, ops

from core.errors import ProgramFormatError, UnsupportedNodeError
from core.packing import pack_frame, unpack_frame
from splitter import program
from splitter.executor import execute, execute_boundary
from splitter.folding import cut_allowed
from splitter.lowering import lower
from splitter.model_io import dataflow_input


def conv_bn_act(b: GraphBuilder, x: str, cin: int, cout: int, scale: float, k: int = 3, stride: int = 1,
                relu: bool = True) -> str:
    """QuantConv2d -> BatchNorm -> [Relu] -> Quant (UINT4 after a Relu, else INT4)."""
    pads = [k // 2] * 4
    y = b.node("Conv", [x, b.qweight((cout, cin, k, k), 4)], kernel_shape=[k, k], pads=pads, strides=[stride] * 2)
    y = b.batchnorm(y, cout)
    if relu:
        y = b.node("Relu", [y])
    return b.quant(y, scale, 4, signed=not relu)


def residual_model(skip: str, shared: float = 0.125, out_scale: float = 0.2) -> onnx.ModelProto:
    """x -> block -> Relu/Quant -> 1x1 conv head; `skip`: identity, requant or downsample."""
    b = GraphBuilder((1, 4, 8, 8), seed=5)
    x = b.quant("x", 0.1, 4, signed=False)
    x = conv_bn_act(b, x, 4, 8, shared)  # the block input, quantized with the join's shared scale
    stride = 2 if skip == "downsample" else 1
    y = conv_bn_act(b, x, 8, 8, 0.17, stride=stride)
    y = conv_bn_act(b, y, 8, 8, shared)
    if skip == "identity":
        s = x
    elif skip == "requant":  # the skip requantized onto the shared scale (QuantIdentity on the skip)
        s = b.quant(x, shared, 4, signed=False)
        y = b.quant(b.node("Relu", [b.batchnorm(b.node("Conv", [b.quant(y, 0.2, 4, signed=False),
                                                                 b.qweight((8, 8, 1, 1), 4)], kernel_shape=[1, 1]),
                                                          8)]), shared, 4, signed=False)
    else:  # downsample: 1x1 stride-2 conv on the skip, quantized by the shared quantizer
        s = conv_bn_act(b, x, 8, 8, shared, k=1, stride=2)
    z = b.quant(b.node("Relu", [b.node("Add", [y, s])]), out_scale, 4, signed=False)
    head = b.node("Conv", [z, b.qweight((3, 8, 1, 1), 4)], kernel_shape=[1, 1])
    return b.model(head)


@pytest.mark.parametrize("skip", ["identity", "requant", "downsample"])
def test_residual_block_is_exact(skip: str) -> None:
    model = residual_model(skip)
    graph = lower(model, "t")
    kinds = ops(graph)
    assert kinds.count("DuplicateStreams") == 1 and kinds.count("AddStreams") == 1
    add = graph.layers[kinds.index("AddStreams")]
    assert graph.tensors[add.output].dtype.name == "UINT5"  # FINN: smallest type holding 2 * UINT4.max
    assert kinds[kinds.index("AddStreams") + 1] == "Thresholding"  # the Relu/Quant after the join
    if skip == "requant":
        # the skip's requantization, the main branch's requantization before its 1x1 conv, the join's activation
        assert kinds.count("Thresholding") == 3
    assert_equivalent(model, graph, (1, 4, 8, 8))


def test_layer_order_reads_only_earlier_tensors() -> None:
    graph = lower(residual_model("downsample"), "t")
    written = {graph.input.name}
    for layer in graph.layers:
        assert set(layer.inputs) <= written, layer.name
        written.update(layer.outputs)
    dup = next(x for x in graph.layers if x.op_type == "DuplicateStreams")
    assert len(dup.outputs) == 2 and dup.attrs["NumOutputStreams"] == 2


def test_cuts_inside_a_block_carry_the_skip_and_the_branch() -> None:
    graph = lower(residual_model("identity"), "t")
    kinds = ops(graph)
    dup, add = kinds.index("DuplicateStreams"), kinds.index("AddStreams")
    for index in range(1, len(graph.layers)):
        live = graph.live_tensors(index)
        assert len(live) == (2 if dup < index <= add else 1), (index, live)
    # a board holding only the branch's second convolution would pass the skip on untouched
    inside = [i for i in range(dup + 2, add + 1) if cut_allowed(graph.layers, i)]
    assert len(inside) == 2  # before the second convolution's padding, before the join
    with pytest.raises(ValueError, match="do not read"):
        graph.slice(inside[0], inside[1], "untouched")
    # slices at two-tensor boundaries chain to the whole graph, in boundary order
    x = dataflow_input(graph, np.random.default_rng(1).random((1, 4, 8, 8), dtype=np.float32))
    for cut in inside:
        first, second = graph.slice(0, cut, "a"), graph.slice(cut, len(graph.layers), "b")
        assert [s.name for s in first.outputs] == [s.name for s in second.inputs] == graph.live_tensors(cut)
        assert execute_boundary(second, execute_boundary(first, [x]))[0].tolist() == execute(graph, x).tolist()


@pytest.mark.parametrize("skip", ["identity", "downsample"])
def test_program_format_3_runs_in_the_emulator(skip: str, server_bin: Path, tmp_path: Path) -> None:  # noqa: F811
    """A partition with two inputs and one with two outputs: written as version 3, read back, and run by
    the C++ emulate backend on frames holding both tensors one after another, equal to the executor."""
    graph = lower(residual_model(skip), "t")
    kinds = ops(graph)
    cut = next(i for i in range(kinds.index("DuplicateStreams") + 2, len(kinds))
               if cut_allowed(graph.layers, i) and len(graph.live_tensors(i)) == 2)
    rng = np.random.default_rng(4)
    frames = [random_input(graph, rng) for _ in range(3)]
    first, second = graph.slice(0, cut, "first"), graph.slice(cut, len(graph.layers), "second")
    for piece, inputs in ((first, [[f] for f in frames]),
                          (second, [execute_boundary(first, [f]) for f in frames])):
        data = program.to_bytes(piece)
        assert data.startswith(b"FINNSPLIT-PROGRAM 3\n")
        again = program.from_bytes(data)
        assert [s.name for s in again.inputs] == [s.name for s in piece.inputs]
        assert [s.name for s in again.outputs] == [s.name for s in piece.outputs]
        want = [execute_boundary(piece, xs) for xs in inputs]
        assert all(all(np.array_equal(a, b) for a, b in zip(execute_boundary(again, xs), w, strict=True))
                   for xs, w in zip(inputs, want, strict=True))
        program.write(piece, tmp_path / "p.fsprog")
        (tmp_path / "in.bin").write_bytes(b"".join(pack_frame(xs, piece.inputs) for xs in inputs))
        done = subprocess.run([str(server_bin), "run", "--program", str(tmp_path / "p.fsprog"), "--input",
                               str(tmp_path / "in.bin"), "--output", str(tmp_path / "out.bin")],
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr
        out = (tmp_path / "out.bin").read_bytes()
        size = len(out) // len(inputs)
        for k, w in enumerate(want):
            got = unpack_frame(out[k * size:(k + 1) * size], piece.outputs)
            assert all(np.array_equal(a, b) for a, b in zip(got, w, strict=True))


def test_a_malformed_version_3_program_is_refused() -> None:
    graph = lower(residual_model("identity"), "t")
    cut = next(i for i in range(1, len(graph.layers)) if len(graph.live_tensors(i)) == 2
               and cut_allowed(graph.layers, i))
    data = program.to_bytes(graph.slice(0, cut, "a"))
    with pytest.raises(ProgramFormatError, match="second output line needs program format version 3"):
        program.from_bytes(data.replace(b"FINNSPLIT-PROGRAM 3\n", b"FINNSPLIT-PROGRAM 2\n", 1))
    first_output = next(line for line in data.split(b"\n") if line.startswith(b"output "))
    with pytest.raises(ProgramFormatError, match="are not the tensors written and never read"):
        program.from_bytes(data.replace(first_output, b"input " + first_output[len(b"output"):], 1))  # same length


def test_branches_of_different_scales_are_refused() -> None:
    with pytest.raises(UnsupportedNodeError, match=r"different scales.*shared quantizer") as info:
        lower(_with_scale(residual_model("identity"), 0.13), "t")
    assert info.value.op_type == "Add"


def _with_scale(model: onnx.ModelProto, scale: float) -> onnx.ModelProto:
    """The residual model with the main branch's last quantizer at another scale than the skip's."""
    adds = [n for n in model.graph.node if n.op_type == "Add"]
    main = next(n for n in model.graph.node if n.output[0] == adds[-1].input[0])
    init = next(i for i in model.graph.initializer if i.name == main.input[1])
    init.CopyFrom(onnx.numpy_helper.from_array(np.asarray(scale, np.float32), init.name))
    return model


def test_an_unquantized_branch_is_refused() -> None:
    b = GraphBuilder((1, 4, 6, 6))
    x = b.quant("x", 0.1, 4, signed=False)
    y = b.batchnorm(b.node("Conv", [x, b.qweight((4, 4, 1, 1), 4)], kernel_shape=[1, 1]), 4)
    model = b.model(b.quant(b.node("Add", [x, y]), 0.2, 4, signed=False))
    with pytest.raises(UnsupportedNodeError, match="must end in a quantizer"):
        lower(model, "t")


def test_the_join_may_end_the_model() -> None:
    b = GraphBuilder((1, 4, 6, 6), seed=2)
    x = b.quant("x", 0.1, 4, signed=False)
    y = conv_bn_act(b, x, 4, 4, 0.1, k=1)
    model = b.model(b.node("Add", [x, y]))
    graph = lower(model, "t")
    assert ops(graph) == ["DuplicateStreams", "MVAU", "AddStreams"]
    assert_equivalent(model, graph, (1, 4, 6, 6))


@pytest.mark.parametrize("skip", ["identity", "downsample"])
def test_program_format_2_round_trips_and_runs_in_the_emulator(skip: str, server_bin: Path,  # noqa: F811
                                                              tmp_path: Path) -> None:
    graph = lower(residual_model(skip), "t")
    data = program.to_bytes(graph)
    assert data.startswith(b"FINNSPLIT-PROGRAM 2\n")
    again = program.from_bytes(data)
    assert [x.inputs for x in again.layers] == [x.inputs for x in graph.layers]
    assert [x.outputs for x in again.layers] == [x.outputs for x in graph.layers]
    rng = np.random.default_rng(3)
    frames = [random_input(graph, rng) for _ in range(4)]
    want = [execute(graph, f) for f in frames]
    assert all(np.array_equal(execute(again, f), w) for f, w in zip(frames, want, strict=True))
    got = run_program(server_bin, graph, frames, tmp_path)
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


def test_a_chain_is_still_written_as_version_1() -> None:
    b = GraphBuilder((1, 4, 6, 6), seed=2)
    graph = lower(b.model(conv_bn_act(b, b.quant("x", 0.1, 4, signed=False), 4, 4, 0.1, k=1)), "t")
    assert program.to_bytes(graph).startswith(b"FINNSPLIT-PROGRAM 1\n")


def test_a_malformed_branching_program_is_refused() -> None:
    graph = lower(residual_model("identity"), "t")
    data = program.to_bytes(graph)
    dup = next(x for x in graph.layers if x.op_type == "DuplicateStreams")
    add = next(x for x in graph.layers if x.op_type == "AddStreams")
    edits = [
        (f"out={dup.output},{dup.extra_outputs[0]} ", f"out={dup.output} ", "no earlier layer writes"),
        (f"in={add.input},{add.extra_inputs[0]} ", f"in={add.input},{add.input} ", "another layer already reads"),
    ]
    for old, new, message in edits:
        broken = data.replace(old.encode(), new.ljust(len(old)).encode(), 1)  # same length: blobs stay put
        assert broken != data
        with pytest.raises(ProgramFormatError, match=message):
            program.from_bytes(broken)


def test_branch_layers_cost_what_finn_estimates_plus_the_join_fifos() -> None:
    from splitter.boards import load_board
    from splitter.cost import Folding, layer_cost

    graph = lower(residual_model("identity"), "t")
    dup = next(x for x in graph.layers if x.op_type == "DuplicateStreams")
    add = next(x for x in graph.layers if x.op_type == "AddStreams")
    board = load_board("zedboard")
    for layer in (dup, add):
        for pe in (1, 2, 8):
            cost = layer_cost(layer, Folding(pe=pe), board, graph.tensors)
            assert cost.finn.as_tuple() == (0,) * 6  # FINN v0.10.1 estimates 0 for both
            assert cost.cycles == 8 * 8 * 8 // pe  # numInputVectors x C / PE
    # the identity skip waits while the main branch's two 3x3 windows fill: 2 rows + 2 pixels of 8x8
    assert add.attrs["inFIFOPixels"] == (0, 2 * 8 + 2)
    deep = layer_cost(add, Folding(pe=1), board, graph.tensors).correction("branch_fifo")
    assert deep.lut > 0

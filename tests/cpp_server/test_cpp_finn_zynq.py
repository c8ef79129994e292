"""The finn-zynq backend: FINN's folded packing, and the IODMA register protocol against a simulator.

There is no FPGA here. The IODMAs are simulated: their register blocks and the u-dma-buf buffers are
plain files that the server maps exactly as it maps /dev/uioN and /dev/udmabufN on a board, and a
simulator thread behaves like FINN's IODMAs (finn-facts §3): on ap_start of the input DMA it checks
the protocol (addresses, numReps, output DMA started first), runs the partition with the Python
executor on the unpacked input buffer, writes the FINN-packed result, and raises ap_done/ap_idle.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from cpp_fixtures import (
    GraphBuilder,
    ServerFleet,
    fleet,  # noqa: F401 - fixture
    random_input,
    server_bin,  # noqa: F401 - fixture
    sorted_thresholds,
)
from iodma_simulator import (
    IodmaSimulator,
    finnpy_to_packed_bytearray,
    packed_bytearray_to_finnpy,
)

from core.datatypes import DataType, datatype
from core.packing import pack
from orchestrator.dataplane.client import ChainClient
from splitter import program
from splitter.executor import execute
from splitter.graph import DataflowGraph, TensorSpec


def _random(dtype: DataType, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if dtype.is_bipolar:
        return rng.choice(np.array([-1, 1]), size=shape)
    return rng.integers(dtype.min, dtype.max, size=shape, endpoint=True)


CONVERSIONS = [("UINT4", 8), ("UINT4", 3), ("UINT3", 5), ("INT5", 7), ("BIPOLAR", 12), ("BINARY", 3),
               ("INT8", 3), ("UINT1", 1), ("INT12", 5), ("UINT7", 16), ("INT2", 1), ("UINT16", 3)]


@pytest.mark.parametrize(("name", "word_elems"), CONVERSIONS)
def test_dense_to_finn_packing_matches_finns_reference(name: str, word_elems: int, server_bin: Path,  # noqa: F811
                                                       tmp_path: Path) -> None:
    dtype = datatype(name)
    rng = np.random.default_rng(word_elems * 31 + dtype.bitwidth)
    folded = (1, 3, 2, 4, word_elems)  # FINN's folded shape: (..., fold, SIMD/PE)
    values = _random(dtype, folded, rng)
    count = values.size
    (tmp_path / "dense.bin").write_bytes(pack(values, dtype))
    common = ["--dtype", name, "--count", str(count), "--word-elems", str(word_elems)]
    subprocess.run([str(server_bin), "convert", "--to", "finn", *common, "--input", str(tmp_path / "dense.bin"),
                    "--output", str(tmp_path / "finn.bin")], check=True, timeout=30)
    finn = (tmp_path / "finn.bin").read_bytes()
    assert finn == finnpy_to_packed_bytearray(values, dtype).tobytes()
    np.testing.assert_array_equal(packed_bytearray_to_finnpy(finn, dtype, folded), values)
    subprocess.run([str(server_bin), "convert", "--to", "dense", *common, "--input", str(tmp_path / "finn.bin"),
                    "--output", str(tmp_path / "back.bin")], check=True, timeout=30)
    assert (tmp_path / "back.bin").read_bytes() == pack(values, dtype)


def test_wire_bytes_are_never_more_than_finns_padded_packing() -> None:
    # Dense packing is why the wire format does not follow the FPGA's folding (finn#1647 context).
    for name, word_elems in CONVERSIONS:
        dtype = datatype(name)
        values = np.full((7, word_elems), dtype.max, dtype=np.int64)
        assert len(pack(values, dtype)) <= finnpy_to_packed_bytearray(values, dtype).size


def partition(rng: np.random.Generator) -> DataflowGraph:
    """A partition whose FINN words are padded on both ends (UINT3 x 5 = 15 bits, UINT3 x 3 = 9 bits)."""
    g = GraphBuilder("fpga_part", (1, 4, 4, 10), "UINT3")
    g.add("MVAU", (1, 4, 4, 6), "UINT3",
          {"weights": rng.integers(-4, 4, size=(10, 6)), "thresholds": sorted_thresholds(rng, 6, 7, -40, 40)},
          MW=10, MH=6, SIMD=5, PE=3, noActivation=0, ActVal=0)
    return g.build()


def test_finn_zynq_backend_drives_the_iodma_register_protocol(fleet: ServerFleet, tmp_path: Path) -> None:  # noqa: F811
    rng = np.random.default_rng(9)
    graph = partition(rng)
    sim = IodmaSimulator(tmp_path, graph, in_elems=5, out_elems=3)
    sim.start()
    try:
        path = tmp_path / "part.fsprog"
        program.write(graph, path)  # only its input/output specs are used by finn-zynq
        with ChainClient(graph.input, graph.output) as client:
            server = fleet.start("zed0", client.result_address, "--program", str(path), *sim.server_args())
            client.connect(server.address)
            frames = [random_input(graph, rng) for _ in range(20)]
            results = client.infer_many(frames)
            for frame, got in zip(frames, results, strict=True):
                np.testing.assert_array_equal(got, execute(graph, frame))
            assert server.terminate() == 0
    finally:
        sim.stop()
    assert sim.violations == []
    assert sim.frames == 20


def test_finn_zynq_reports_a_missing_ap_done_and_keeps_serving(fleet: ServerFleet, tmp_path: Path) -> None:  # noqa: F811
    graph = partition(np.random.default_rng(1))
    sim = IodmaSimulator(tmp_path, graph, in_elems=5, out_elems=3)  # never started: ap_done never comes
    path = tmp_path / "part.fsprog"
    program.write(graph, path)
    args = [a if a != "5000" else "200" for a in sim.server_args()]
    with ChainClient(graph.input, graph.output) as client:
        server = fleet.start("zed0", client.result_address, "--program", str(path), *args)
        client.connect(server.address)
        assert client.sender is not None
        client.sender.send(np.zeros(graph.input.shape, dtype=np.int64))
        server.wait_log("output DMA odma0 did not signal ap_done within 200 ms")
        stats = server.stats(lambda s: s["errors"]["accelerator"] == 1)
        assert stats["frames"]["dropped"] == 1
        assert server.proc.poll() is None
    sim.stop()


# ---- boundaries of several tensors: one IODMA per tensor -----------------------------------------


def two_block_graph() -> DataflowGraph:
    """x -> conv -> two residual blocks (identity skips) -> 1x1 conv head, lowered."""
    from qonnx_builder import GraphBuilder as QonnxBuilder

    from splitter.lowering import lower

    b = QonnxBuilder((1, 4, 8, 8), seed=7)

    def conv_bn_act(b: QonnxBuilder, x: str, cin: int, cout: int, scale: float) -> str:
        """QuantConv2d 3x3 -> BatchNorm -> Relu -> UINT4 Quant (as tests/splitter/test_residual.py builds them)."""
        y = b.node("Conv", [x, b.qweight((cout, cin, 3, 3), 4)], kernel_shape=[3, 3], pads=[1] * 4, strides=[1, 1])
        return b.quant(b.node("Relu", [b.batchnorm(y, cout)]), scale, 4, signed=False)

    x = conv_bn_act(b, b.quant("x", 0.1, 4, signed=False), 4, 8, 0.125)
    for _ in range(2):
        y = conv_bn_act(b, conv_bn_act(b, x, 8, 8, 0.17), 8, 8, 0.125)
        x = b.quant(b.node("Relu", [b.node("Add", [y, x])]), 0.125, 4, signed=False)
    return lower(b.model(b.node("Conv", [x, b.qweight((3, 8, 1, 1), 4)], kernel_shape=[1, 1])), "two_blocks")


def three_pieces(graph: DataflowGraph) -> list[DataflowGraph]:
    """Cut inside both blocks: 1 -> 2 tensors, 2 -> 2 (the join of one block, the start of the next), 2 -> 1."""
    from splitter.folding import cut_allowed

    inside = [i for i in range(1, len(graph.layers)) if cut_allowed(graph.layers, i)
              and len(graph.live_tensors(i)) == 2]
    for first in reversed(inside):
        for second in (i for i in inside if i > first):
            try:
                middle = graph.slice(first, second, "middle")
            except ValueError:  # the middle would pass a tensor on untouched
                continue
            if len(middle.inputs) == len(middle.outputs) == 2:
                return [graph.slice(0, first, "head"), middle, graph.slice(second, len(graph.layers), "tail")]
    raise AssertionError(f"no 2 -> 2 partition among the cuts {inside}")


def word_elems(spec: TensorSpec, k: int) -> int:
    """A different FINN word width per tensor: a divisor of its channels, padded words for small ones."""
    divisors = [d for d in range(1, spec.shape[-1] + 1) if spec.shape[-1] % d == 0]
    return divisors[(k * 2 + 1) % len(divisors)]


def run_chain(fleet: ServerFleet, pieces: list[DataflowGraph], frames: list[np.ndarray], tmp_path: Path,  # noqa: F811
              sims: dict[int, IodmaSimulator]) -> list[np.ndarray]:
    """The pieces as a chain of servers: piece k on finn-zynq against sims[k], else emulate."""
    whole_in, whole_out = pieces[0].input, pieces[-1].output
    with ChainClient(whole_in, whole_out) as client:
        hop, servers = client.result_address, []
        for k in reversed(range(len(pieces))):
            path = tmp_path / f"{pieces[k].name}.fsprog"
            program.write(pieces[k], path)
            backend = sims[k].server_args() if k in sims else ["--backend", "emulate"]
            servers.append(fleet.start(f"b{k}-{len(sims)}", hop, "--program", str(path), *backend))
            hop = servers[-1].address
        client.connect(hop)
        results = client.infer_many(frames)
        assert all(server.terminate() == 0 for server in servers)
    return results


def test_finn_zynq_drives_one_iodma_per_tensor_equal_to_emulate(fleet: ServerFleet, tmp_path: Path) -> None:  # noqa: F811
    """Cut inside two residual blocks: 1 -> 2, 2 -> 2 and 2 -> 1 tensors, every piece on finn-zynq with one
    simulated IODMA per tensor (its own word width and buffer): the results equal the emulate chain's bit for
    bit, and the executor's; every DMA saw the register protocol (outputs started first, own addresses)."""
    graph = two_block_graph()
    pieces = three_pieces(graph)
    assert [(len(p.inputs), len(p.outputs)) for p in pieces] == [(1, 2), (2, 2), (2, 1)]
    rng = np.random.default_rng(3)
    frames = [random_input(graph, rng) for _ in range(12)]
    emulated = run_chain(fleet, pieces, frames, tmp_path, {})
    sims = {}
    for k, piece in enumerate(pieces):
        work = tmp_path / f"sim{k}"
        work.mkdir()
        sims[k] = IodmaSimulator(work, piece, [word_elems(s, j) for j, s in enumerate(piece.inputs)],
                                 [word_elems(s, j + 1) for j, s in enumerate(piece.outputs)])
        sims[k].start()
    assert len(set(sims[1].in_elems)) == 2 and len(set(sims[1].out_elems)) == 2  # each tensor its own width
    try:
        on_fpga = run_chain(fleet, pieces, frames, tmp_path, sims)
    finally:
        for sim in sims.values():
            sim.stop()
    for frame, a, b in zip(frames, on_fpga, emulated, strict=True):
        assert a.tobytes() == b.tobytes()
        np.testing.assert_array_equal(a, execute(graph, frame))
    assert [sim.violations for sim in sims.values()] == [[], [], []]
    assert [sim.frames for sim in sims.values()] == [12, 12, 12]


def _with(args: list[str], flag: str, value: str) -> list[str]:
    """`args` with `flag`'s value replaced."""
    i = args.index(flag)
    return [*args[: i + 1], value, *args[i + 2 :]]


def test_finn_zynq_refuses_iodmas_that_do_not_match_the_tensors(server_bin: Path,  # noqa: F811
                                                              tmp_path: Path) -> None:
    """Two input tensors but one IODMA configured (the old one-value form): refused at start-up, naming the
    tensors, the counts and the per-tensor form; lists of different lengths on one side are named too."""
    middle = three_pieces(two_block_graph())[1]
    program.write(middle, tmp_path / "middle.fsprog")
    sim = IodmaSimulator(tmp_path, middle, [1, 1], [1, 1])  # never started: refused before any register
    args = sim.server_args()
    one_dma = args
    for flag in ("--idma", "--dmabuf-in", "--dmabuf-in-phys", "--in-word-elems"):
        one_dma = _with(one_dma, flag, args[args.index(flag) + 1].split(",")[0])
    uneven = _with(args, "--out-word-elems", "1")
    spec = "+".join(f"{s.dtype.name}:{','.join(map(str, s.shape))}" for s in middle.inputs)
    cases = [
        (["--program", str(tmp_path / "middle.fsprog"), *one_dma],
         ["input boundary carries 2 tensors (", "but 1 idma is configured", "one value per tensor"]),
        (["--spec-in", spec, "--spec-out", "UINT4:1,8,8,8+UINT4:1,8,8,8", *one_dma],
         ["input boundary carries 2 tensors (" + " + ".join(
             f"{s.dtype.name} {'x'.join(map(str, s.shape))}" for s in middle.inputs), "1 idma is configured"]),
        (["--program", str(tmp_path / "middle.fsprog"), *uneven],
         ["--odma names 2 DMA(s) but --dmabuf-out 2, --out-word-elems 1"]),
        (["--program", str(tmp_path / "middle.fsprog"), *_with(args, "--dmabuf-out", ",".join(
            [str(sim.paths[sim.out_bufs[0]])] * 2))], ["odma0 and odma1 are given the same buffer"]),
    ]
    for source, wanted in cases:
        done = subprocess.run([str(server_bin), "serve", "--listen", "127.0.0.1:0", "--next", "127.0.0.1:9",
                               *source], capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert all(w in done.stderr for w in wanted), (wanted, done.stderr)


def test_finn_zynq_names_the_output_dma_that_times_out(fleet: ServerFleet, tmp_path: Path) -> None:  # noqa: F811
    """A partition writing two tensors whose second output DMA never signals ap_done: the error names odma1;
    the frame is dropped and the server keeps serving."""
    graph = two_block_graph()
    head = three_pieces(graph)[0]
    rest = graph.slice(len(head.layers), len(graph.layers), "rest")  # takes the two tensors on, emulated
    sim = IodmaSimulator(tmp_path, head, 1, [2, 4], stuck_outputs={1})
    sim.start()
    program.write(head, tmp_path / "head.fsprog")
    program.write(rest, tmp_path / "rest.fsprog")
    args = _with(sim.server_args(), "--done-timeout-ms", "200")
    try:
        with ChainClient(graph.input, graph.output) as client:
            tail = fleet.start("zed1", client.result_address, "--program", str(tmp_path / "rest.fsprog"))
            server = fleet.start("zed0", tail.address, "--program", str(tmp_path / "head.fsprog"), *args)
            client.connect(server.address)
            assert client.sender is not None
            client.sender.send(np.zeros(graph.input.shape, dtype=np.int64))
            server.wait_log("output DMA odma1 did not signal ap_done within 200 ms")
            assert "odma0 did not" not in server.log()
            stats = server.stats(lambda s: s["errors"]["accelerator"] == 1)
            assert stats["frames"]["dropped"] == 1
            assert server.proc.poll() is None
    finally:
        sim.stop()

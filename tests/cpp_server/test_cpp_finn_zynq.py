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
from splitter.graph import DataflowGraph


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
        server.wait_log("output DMA did not signal ap_done within 200 ms")
        stats = server.stats(lambda s: s["errors"]["accelerator"] == 1)
        assert stats["frames"]["dropped"] == 1
        assert server.proc.poll() is None
    sim.stop()


def test_finn_zynq_refuses_a_partition_cut_inside_a_residual_block(server_bin: Path,  # noqa: F811
                                                                   tmp_path: Path) -> None:
    """A two-tensor boundary needs one IODMA per tensor, which finn-zynq does not drive: refused at start-up,
    naming the tensors and the cause (docs/finn.md#multi-tensor-boundaries); --spec-in alike."""
    from test_residual import residual_model

    from splitter.folding import cut_allowed
    from splitter.lowering import lower

    graph = lower(residual_model("identity"), "t")
    cut = next(i for i in range(1, len(graph.layers)) if cut_allowed(graph.layers, i)
               and len(graph.live_tensors(i)) == 2)
    program.write(graph.slice(cut, len(graph.layers), "second"), tmp_path / "second.fsprog")
    sim = IodmaSimulator(tmp_path, graph, in_elems=1, out_elems=1)  # never started: refused before any register
    for source in (["--program", str(tmp_path / "second.fsprog")],
                   ["--spec-in", "UINT4:1,8,8,8+UINT4:1,8,8,8", "--spec-out", "UINT4:1,1,1,8"]):
        done = subprocess.run([str(server_bin), "serve", "--listen", "127.0.0.1:0", "--next", "127.0.0.1:9",
                               *source, *sim.server_args()], capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert "carries several tensors" in done.stderr and "cut between blocks" in done.stderr, done.stderr
        assert "UINT4 1x8x8x8 + UINT4 1x8x8x8" in done.stderr

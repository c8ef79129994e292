"""The C++ emulate backend equals the Python executor bit for bit (docs/program-format.md)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from cpp_fixtures import (
    GraphBuilder,
    random_input,
    run_program,
    sanitizer_build,  # noqa: F401 - fixture
    server_bin,  # noqa: F401 - fixture
    sorted_thresholds,
)

from splitter import program
from splitter.executor import execute
from splitter.graph import DataflowGraph


def conv_stack(rng: np.random.Generator) -> DataflowGraph:
    """Every layer type once: a small conv net ending in top-3."""
    g = GraphBuilder("conv_stack", (1, 9, 9, 8), "UINT4")
    g.add("FMPadding", (1, 11, 11, 8), "UINT4", ImgDim=(9, 9), Padding=(1, 1, 1, 1), NumChannels=8, SIMD=1)
    g.add("ConvolutionInputGenerator", (1, 9, 9, 72), "UINT4", ConvKernelDim=(3, 3), IFMChannels=8, IFMDim=(11, 11),
          OFMDim=(9, 9), Stride=(1, 1), Dilation=(1, 1), SIMD=1, depthwise=1)
    g.add("VVAU", (1, 9, 9, 8), "UINT4",
          {"weights": rng.integers(-8, 8, size=(8, 9)), "thresholds": sorted_thresholds(rng, 8, 15, -60, 60)},
          Channels=8, Kernel=(3, 3), Dim=(9, 9), PE=1, SIMD=1, noActivation=0, ActVal=0)
    g.add("MVAU", (1, 9, 9, 16), "UINT4",
          {"weights": rng.integers(-8, 8, size=(8, 16)), "thresholds": sorted_thresholds(rng, 16, 15, -80, 80)},
          MW=8, MH=16, SIMD=1, PE=1, noActivation=0, ActVal=0)
    g.add("StreamingMaxPool", (1, 4, 4, 16), "UINT4", ImgDim=(9, 9), PoolDim=(2, 2), NumChannels=16, PE=1)
    g.add("ConvolutionInputGenerator", (1, 2, 2, 64), "UINT4", ConvKernelDim=(2, 2), IFMChannels=16, IFMDim=(4, 4),
          OFMDim=(2, 2), Stride=(2, 2), Dilation=(1, 1), SIMD=1, depthwise=1)
    g.add("Pool", (1, 2, 2, 16), "UINT4", Function="QuantAvgPool", KernelSize=(2, 2), Channels=16, PE=1,
          InputDataType="UINT4", OutputDataType="UINT4", AccumBits=6, Shift=2)
    g.add("GlobalAccPool", (1, 1, 1, 16), "UINT6", NumChannels=16, PE=1)
    g.add("MVAU", (1, 1, 1, 10), "INT15", {"weights": rng.integers(-128, 128, size=(16, 10))},
          MW=16, MH=10, SIMD=1, PE=1, noActivation=1)
    g.add("ChannelwiseOp", (1, 1, 1, 10), "INT16", {"param": rng.integers(-500, 500, size=10)}, Func="add",
          NumChannels=10, PE=1)
    g.add("ChannelwiseOp", (1, 1, 1, 10), "INT20", {"param": rng.integers(-7, 8, size=10)}, Func="mul",
          NumChannels=10, PE=1)
    g.add("Thresholding", (1, 1, 1, 10), "UINT3", {"thresholds": sorted_thresholds(rng, 1, 7, -200000, 200000)},
          NumChannels=10, PE=1, numSteps=7, ActVal=0)
    g.add("LabelSelect", (1, 1, 1, 3), "UINT4", Labels=10, PE=1, K=3)
    return g.build()


def first_conv(rng: np.random.Generator) -> DataflowGraph:
    """UINT8 pixels, strided and dilated windows, asymmetric padding, MaxPool over windows."""
    g = GraphBuilder("first_conv", (1, 16, 16, 3), "UINT8")
    g.add("ConvolutionInputGenerator", (1, 7, 7, 27), "UINT8", ConvKernelDim=(3, 3), IFMChannels=3, IFMDim=(16, 16),
          OFMDim=(7, 7), Stride=(2, 2), Dilation=(1, 1), SIMD=1, depthwise=0)
    g.add("MVAU", (1, 7, 7, 12), "UINT4",
          {"weights": rng.integers(-128, 128, size=(27, 12)),
           "thresholds": sorted_thresholds(rng, 12, 15, -40000, 40000)},
          MW=27, MH=12, SIMD=1, PE=1, noActivation=0, ActVal=0)
    g.add("FMPadding", (1, 9, 11, 12), "UINT4", ImgDim=(7, 7), Padding=(0, 1, 2, 3), NumChannels=12, SIMD=1)
    g.add("ConvolutionInputGenerator", (1, 5, 3, 108), "UINT4", ConvKernelDim=(3, 3), IFMChannels=12, IFMDim=(9, 11),
          OFMDim=(5, 3), Stride=(1, 3), Dilation=(2, 2), SIMD=1, depthwise=0)
    g.add("Pool", (1, 5, 3, 12), "UINT4", Function="MaxPool", KernelSize=(3, 3), Channels=12, PE=1,
          InputDataType="UINT4", OutputDataType="UINT4")
    g.add("Thresholding", (1, 5, 3, 12), "UINT2", {"thresholds": rng.integers(0, 16, size=(12, 3))},  # unsorted
          NumChannels=12, PE=1, numSteps=3, ActVal=0)
    return g.build()


def bipolar(rng: np.random.Generator) -> DataflowGraph:
    """BIPOLAR activations and weights, BINARY outputs, a signed ActVal."""
    g = GraphBuilder("bipolar", (1, 1, 1, 64), "BIPOLAR")
    g.add("MVAU", (1, 1, 1, 32), "BINARY",
          {"weights": rng.choice(np.array([-1, 1]), size=(64, 32)), "thresholds": rng.integers(-8, 9, size=(32, 1))},
          MW=64, MH=32, SIMD=8, PE=4, noActivation=0, ActVal=0, inputDataType="BIPOLAR", weightDataType="BIPOLAR")
    g.add("MVAU", (1, 1, 1, 24), "INT2",
          {"weights": rng.integers(-2, 2, size=(32, 24)), "thresholds": sorted_thresholds(rng, 24, 3, -6, 6)},
          MW=32, MH=24, SIMD=1, PE=1, noActivation=0, ActVal=-2)
    g.add("MVAU", (1, 1, 1, 16), "INT9", {"weights": rng.choice(np.array([-1, 1]), size=(24, 16))},
          MW=24, MH=16, SIMD=1, PE=1, noActivation=1)
    return g.build()


def wide(rng: np.random.Generator) -> DataflowGraph:
    """Accumulators and tensors past 32 bits: the emulator must switch to 64-bit storage."""
    g = GraphBuilder("wide", (1, 2, 2, 300), "INT2")
    g.add("MVAU", (1, 2, 2, 20), "INT18", {"weights": rng.integers(-128, 128, size=(300, 20))},
          MW=300, MH=20, SIMD=1, PE=1, noActivation=1)
    g.add("ChannelwiseOp", (1, 2, 2, 20), "INT36", {"param": rng.integers(-30000, 30000, size=20)}, Func="mul",
          NumChannels=20, PE=1)
    g.add("MVAU", (1, 2, 2, 6), "INT52", {"weights": rng.integers(-(2**19), 2**19, size=(20, 6))},
          MW=20, MH=6, SIMD=1, PE=1, noActivation=1)
    g.add("Thresholding", (1, 2, 2, 6), "UINT8",
          {"thresholds": sorted_thresholds(rng, 6, 255, -(2**45), 2**45)}, NumChannels=6, PE=1, numSteps=255, ActVal=0)
    return g.build()


def int8_weights_int32_acc(rng: np.random.Generator) -> DataflowGraph:
    """INT8 x INT8 with a long dot product: int32 accumulation, int32 storage, no activation."""
    g = GraphBuilder("acc32", (1, 3, 3, 512), "INT8")
    g.add("MVAU", (1, 3, 3, 40), "INT23", {"weights": rng.integers(-128, 128, size=(512, 40))},
          MW=512, MH=40, SIMD=1, PE=1, noActivation=1)
    return g.build()


GRAPHS = {f.__name__: f for f in (conv_stack, first_conv, bipolar, wide, int8_weights_int32_acc)}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_emulate_equals_python_executor(name: str, server_bin: Path, tmp_path: Path) -> None:  # noqa: F811
    rng = np.random.default_rng(sum(map(ord, name)))
    graph = GRAPHS[name](rng)
    frames = [random_input(graph, rng) for _ in range(4)]
    outputs = run_program(server_bin, graph, frames, tmp_path)
    for frame, got in zip(frames, outputs, strict=True):
        expected = execute(graph, frame)
        np.testing.assert_array_equal(got, expected)
    # The program file itself round-trips through the Python reader to the same results.
    reread = program.read(tmp_path / f"{graph.name}.fsprog")
    np.testing.assert_array_equal(execute(reread, frames[0]), outputs[0])


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_emulate_under_sanitizers(name: str, sanitizer_build: Path, tmp_path: Path) -> None:  # noqa: F811
    rng = np.random.default_rng(sum(map(ord, name)) + 2)
    graph = GRAPHS[name](rng)
    frames = [random_input(graph, rng) for _ in range(2)]
    env = {"ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}
    outputs = run_program(sanitizer_build / "finnsplit-server", graph, frames, tmp_path, env=env)
    for frame, got in zip(frames, outputs, strict=True):
        np.testing.assert_array_equal(got, execute(graph, frame))


def test_label_select_ties_prefer_lower_index(server_bin: Path, tmp_path: Path) -> None:  # noqa: F811
    g = GraphBuilder("ties", (1, 1, 1, 12), "UINT2")
    g.add("LabelSelect", (1, 1, 1, 5), "UINT4", Labels=12, PE=1, K=5)
    graph = g.build()
    frame = np.array([1, 3, 3, 0, 3, 1, 2, 2, 3, 0, 1, 2]).reshape(1, 1, 1, 12)
    (got,) = run_program(server_bin, graph, [frame], tmp_path)
    assert got.ravel().tolist() == [1, 2, 4, 8, 6] == execute(graph, frame).ravel().tolist()


def _run_expect_failure(binary: Path, prog: Path, tmp_path: Path) -> str:
    (tmp_path / "in.bin").write_bytes(b"\0" * 64)
    done = subprocess.run([str(binary), "run", "--program", str(prog), "--input", str(tmp_path / "in.bin"),
                           "--output", str(tmp_path / "out.bin")], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 1
    return done.stderr


def test_corrupted_or_inconsistent_programs_are_rejected_with_reasons(server_bin: Path, tmp_path: Path) -> None:  # noqa: F811
    graph = conv_stack(np.random.default_rng(0))
    data = bytearray(program.to_bytes(graph))
    bad_crc = tmp_path / "crc.fsprog"
    header_end = data.find(b"\nend\n") + 5
    data[header_end + (-header_end % 64)] ^= 0xFF  # the first byte of the first blob
    bad_crc.write_bytes(bytes(data))
    assert "CRC mismatch" in _run_expect_failure(server_bin, bad_crc, tmp_path)

    truncated = tmp_path / "trunc.fsprog"
    truncated.write_bytes(program.to_bytes(graph)[:200])
    assert "no 'end' line" in _run_expect_failure(server_bin, truncated, tmp_path)

    wrong_shape = GraphBuilder("wrong", (1, 4, 4, 8), "UINT4")
    wrong_shape.add("StreamingMaxPool", (1, 3, 3, 8), "UINT4", PoolDim=(2, 2))
    path = tmp_path / "shape.fsprog"
    program.write(wrong_shape.build(), path)
    stderr = _run_expect_failure(server_bin, path, tmp_path)
    assert "computes shape UINT4 1x2x2x8 but the program declares UINT4 1x3x3x8" in stderr

    unknown = GraphBuilder("unknown", (1, 1, 1, 4), "UINT4")
    unknown.add("Softmax", (1, 1, 1, 4), "UINT4")
    path = tmp_path / "unknown.fsprog"
    program.write(unknown.build(), path)
    assert "no emulator kernel for op type Softmax" in _run_expect_failure(server_bin, path, tmp_path)

"""Both architectures build; the armhf binary passes its self-test and computes bit-exactly under QEMU;
the frame parser survives a bounded libFuzzer run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cpp_fixtures import (
    QEMU,
    QEMU_AARCH64,
    ServerFleet,
    aarch64_bin,  # noqa: F401 - fixture
    armhf_bin,  # noqa: F401 - fixture
    random_input,
    run_program,
    sanitizer_build,  # noqa: F401 - fixture
    server_bin,  # noqa: F401 - fixture
)
from test_cpp_emulate import GRAPHS

from orchestrator.dataplane.client import ChainClient
from orchestrator.dataplane.link_auth import LinkSession
from orchestrator.dataplane.protocol import FrameType, Hello, WireSpec, encode_frame
from splitter import program
from splitter.executor import execute

FUZZ_SECONDS = int(os.environ.get("FINNSPLIT_FUZZ_SECONDS", "20"))  # the program parser's run; at most 60
FUZZ_RUNS = int(os.environ.get("FINNSPLIT_FUZZ_RUNS", "1000000"))  # the frame parser's: >= 1M inputs in CI


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    return int.from_bytes(header[18:20], "little")


def test_native_self_test_passes(server_bin: Path) -> None:  # noqa: F811
    done = subprocess.run([str(server_bin), "self-test"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "self-test: passed" in done.stdout


def test_armhf_binary_is_arm_and_passes_its_self_test_under_qemu(armhf_bin: Path) -> None:  # noqa: F811
    assert _elf_machine(armhf_bin) == 40  # EM_ARM
    done = subprocess.run([*QEMU, str(armhf_bin), "self-test"], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "self-test: passed (0 of 9 checks failed)" in done.stdout
    assert "fan-out-pipeline     ok" in done.stdout


def test_aarch64_binary_is_arm64_and_passes_its_self_test_under_qemu(aarch64_bin: Path) -> None:  # noqa: F811
    assert _elf_machine(aarch64_bin) == 183  # EM_AARCH64
    done = subprocess.run([*QEMU_AARCH64, str(aarch64_bin), "self-test"], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "self-test: passed (0 of 9 checks failed)" in done.stdout


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_armhf_emulate_equals_python_executor(name: str, armhf_bin: Path, tmp_path: Path) -> None:  # noqa: F811
    rng = np.random.default_rng(sum(map(ord, name)) + 1)
    graph = GRAPHS[name](rng)
    frames = [random_input(graph, rng) for _ in range(2)]
    outputs = run_program(armhf_bin, graph, frames, tmp_path, wrapper=QEMU)
    for frame, got in zip(frames, outputs, strict=True):
        np.testing.assert_array_equal(got, execute(graph, frame))


def test_chain_with_an_armhf_board(armhf_bin: Path, server_bin: Path, tmp_path: Path) -> None:  # noqa: F811
    """An armhf server (under QEMU) hands its partition's output to a native server: same wire, same bits."""
    rng = np.random.default_rng(8)
    graph = GRAPHS["conv_stack"](rng)
    program.write(graph.slice(0, 4, "head"), tmp_path / "head.fsprog")
    program.write(graph.slice(4, len(graph.layers), "tail"), tmp_path / "tail.fsprog")
    native = ServerFleet(server_bin, tmp_path)
    arm = ServerFleet(armhf_bin, tmp_path, wrapper=QEMU)
    try:
        with ChainClient(graph.input, graph.output) as client:
            tail = native.start("x86-tail", client.result_address, "--backend", "emulate", "--program",
                                str(tmp_path / "tail.fsprog"))
            head = arm.start("arm-head", tail.address, "--backend", "emulate", "--program",
                             str(tmp_path / "head.fsprog"))
            client.connect(head.address)
            frames = [random_input(graph, rng) for _ in range(3)]
            for frame, got in zip(frames, client.infer_many(frames), strict=True):
                np.testing.assert_array_equal(got, execute(graph, frame))
            assert head.terminate(timeout=60) == 0
    finally:
        native.close()
        arm.close()


def test_frame_parser_survives_a_bounded_fuzz_run(sanitizer_build: Path, tmp_path: Path) -> None:  # noqa: F811
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    spec = WireSpec.parse("UINT4:1,2,2,3")
    seeds = {
        "hello": encode_frame(FrameType.HELLO, 0, Hello("sender", "seed", spec).encode()),
        "tensor": encode_frame(FrameType.TENSOR, 7, bytes(spec.packed_size)),
        "error": encode_frame(FrameType.ERROR, 0, b"mis-wired chain: peer sends X but this server expects Y"),
        "bye": encode_frame(FrameType.BYE, 0),
    }
    tagged = LinkSession(bytes([7]) + bytes(31), is_sender=True)  # the fuzz target's session: a correct tag
    seeds["tagged-tensor"] = encode_frame(FrameType.TENSOR, 8, bytes(spec.packed_size), session=tagged)
    seeds["auth"] = encode_frame(FrameType.AUTH, 0, f"FSPL-AUTH nonce={'ab' * 16} mac={'cd' * 32}".encode())
    for name, data in seeds.items():
        (corpus / name).write_bytes(data + seeds["tensor"])
    # a fixed number of inputs (not seconds): CI proves the same depth on a slow or a busy machine
    executed = _fuzz(sanitizer_build / "frame_fuzzer", corpus, [f"-runs={FUZZ_RUNS}", "-max_len=2048",
                                                                 "-max_total_time=600"], timeout=660)
    assert executed >= FUZZ_RUNS


def _fuzz(binary: Path, corpus: Path, flags: list[str], timeout: float) -> int:
    """Run a libFuzzer target on `corpus`; the number of inputs it executed (fails on a crash or a leak)."""
    done = subprocess.run([str(binary), *flags, "-print_final_stats=1", str(corpus)], capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Done" in done.stderr and "stat::number_of_executed_units" in done.stderr
    return int(done.stderr.split("stat::number_of_executed_units:")[1].split()[0])


def test_program_parser_survives_a_bounded_fuzz_run(sanitizer_build: Path, tmp_path: Path) -> None:  # noqa: F811
    """Program files come from bundles and are parsed as root before the server drops privileges."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, make in GRAPHS.items():
        path = corpus / f"{name}.fsprog"
        program.write(make(np.random.default_rng(1)), path)
        if path.stat().st_size > 16384:
            path.unlink()  # small seeds: more inputs per second
    seconds = min(FUZZ_SECONDS, 60)
    executed = _fuzz(sanitizer_build / "program_fuzzer", corpus, [f"-max_total_time={seconds}", "-max_len=16384"],
                     timeout=seconds + 120)
    assert executed > 10000

"""Program files round-trip exactly and reject corruption; dense packing round-trips every width."""

from __future__ import annotations

import numpy as np
import pytest

from core.datatypes import datatype
from core.errors import ProgramFormatError
from core.packing import pack, packed_size, unpack
from splitter import program
from splitter.executor import execute


@pytest.mark.parametrize("name", ["cnv-w2a2", "tfc-w2a2", "mobilenet-v1-w4a4"])
def test_program_round_trip_is_exact(name: str, zoo_lowered: dict, tmp_path) -> None:
    _, graph = zoo_lowered[name]
    path = tmp_path / "g.fsprog"
    program.write(graph, path)
    back = program.read(path)
    def signature(g):
        return [(layer.op_type, layer.name, layer.input, layer.output) for layer in g.layers]

    assert signature(back) == signature(graph)
    for ours, theirs in zip(graph.layers, back.layers, strict=True):
        assert ours.attrs == theirs.attrs
        assert ours.params.keys() == theirs.params.keys()
        for key in ours.params:
            assert (
                np.array_equal(ours.params[key], theirs.params[key])
                and ours.params[key].dtype == theirs.params[key].dtype
            )
    for tensor in back.tensors.values():
        assert graph.tensors[tensor.name] == tensor
    rng = np.random.default_rng(0)
    x = rng.integers(graph.input.dtype.min, graph.input.dtype.max + 1, size=graph.input.shape)
    assert np.array_equal(execute(graph, x), execute(back, x))


def test_corrupted_truncated_and_foreign_programs_are_refused(zoo_lowered: dict) -> None:
    data = program.to_bytes(zoo_lowered["tfc-w2a2"][1])
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF
    with pytest.raises(ProgramFormatError, match="CRC mismatch"):
        program.from_bytes(bytes(flipped))
    with pytest.raises(ProgramFormatError, match="outside the file"):
        program.from_bytes(data[: len(data) - 100])
    with pytest.raises(ProgramFormatError, match="no 'end' line"):
        program.from_bytes(data[:50])
    with pytest.raises(ProgramFormatError, match="version 9"):
        program.from_bytes(data.replace(b"FINNSPLIT-PROGRAM 1", b"FINNSPLIT-PROGRAM 9", 1))
    with pytest.raises(ProgramFormatError, match="not a finnsplit program"):
        program.from_bytes(b"PK\x03\x04 zip file\nend\n")


@pytest.mark.parametrize(
    "name",
    [
        "UINT1",
        "UINT2",
        "INT2",
        "UINT3",
        "INT4",
        "UINT4",
        "INT5",
        "UINT8",
        "INT8",
        "INT12",
        "INT16",
        "UINT17",
        "INT32",
        "BIPOLAR",
    ],
)
def test_dense_packing_round_trip(name: str) -> None:
    dtype = datatype(name)
    rng = np.random.default_rng(1)
    shape = (1, 3, 5, 7)
    values = rng.choice([-1, 1], size=shape) if dtype.is_bipolar else rng.integers(dtype.min, dtype.max + 1, shape)
    data = pack(values, dtype)
    assert len(data) == packed_size(values.size, dtype) == (values.size * dtype.bitwidth + 7) // 8
    assert np.array_equal(unpack(data, dtype, shape), values)


def test_two_4bit_values_per_byte_low_nibble_first() -> None:
    assert pack(np.array([1, 2, 3]), datatype("UINT4")) == bytes([0x21, 0x03])
    assert pack(np.array([-1, 1]), datatype("INT4")) == bytes([0x1F])
    with pytest.raises(ValueError, match="outside UINT4"):
        pack(np.array([16]), datatype("UINT4"))

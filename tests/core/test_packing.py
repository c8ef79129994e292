"""core.packing's fast paths give byte-for-byte the output of the bit-matrix reference, every width."""

from __future__ import annotations

import numpy as np
import pytest
from packing_reference import reference_pack as oracle_pack
from packing_reference import reference_unpack as oracle_unpack

from core.datatypes import DataType, datatype
from core.packing import pack, packed_size, unpack

# ---- Helpers ----------------------------------------------------------------------------------------------

# Widths the task names (1..32, 64) plus 33..63; odd widths above 8 need more than one 64-bit word per group.
WIDTHS = list(range(1, 65))
SIZES = [0, 1, 2, 3, 7, 8, 9, 15, 17, 63, 1000, 1001]
NAMES = [f"{sign}INT{b}" for b in WIDTHS for sign in ("U", "")] + ["BIPOLAR", "BINARY"]


def extremes(dtype: DataType) -> list[int]:
    """The values most likely to break a shift or a mask: both ends, their neighbours, 0 and -1."""
    if dtype.is_bipolar:
        return [-1, 1]
    candidates = {dtype.min, dtype.min + 1, dtype.max, dtype.max - 1, 0, -1, 1}
    return sorted(v for v in candidates if dtype.min <= v <= dtype.max)


def random_values(dtype: DataType, size: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform values of `dtype` (uint64 storage for UINT64, int64 otherwise), extremes at random places."""
    if dtype.is_bipolar:
        values = rng.choice(np.array([-1, 1]), size=size)
    else:
        storage = np.uint64 if dtype.min >= 0 and dtype.bitwidth == 64 else np.int64
        values = rng.integers(dtype.min, dtype.max, size=size, endpoint=True, dtype=storage)
    ext = np.array(extremes(dtype), dtype=values.dtype)
    if size:
        spots = rng.choice(size, size=min(size, 4 * len(ext)), replace=False)
        values[spots] = rng.choice(ext, size=spots.size)
    return values


def oracle_unpack_is_exact(dtype: DataType) -> bool:
    # The reference computes `1 << 63` in int64 when sign-extending INT63 and overflows: no oracle there.
    return not (dtype.signed and not dtype.is_bipolar and dtype.bitwidth == 63)


# ---- Equivalence with the reference -----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_pack_and_unpack_match_the_bit_matrix_reference(name: str) -> None:
    dtype = datatype(name)
    rng = np.random.default_rng(dtype.bitwidth * 2 + dtype.signed)
    for size in SIZES:
        values = random_values(dtype, size, rng)
        data = pack(values, dtype)
        assert data == oracle_pack(values, dtype), f"{name} x {size}"
        assert len(data) == packed_size(size, dtype)
        back = unpack(data, dtype, (size,))
        assert back.dtype == np.int64 and back.shape == (size,)
        # unpack returns int64: UINT64 codes above 2**63 come back wrapped, as they always did.
        assert np.array_equal(back, values.astype(np.int64)), f"{name} x {size}"
        if oracle_unpack_is_exact(dtype):
            assert np.array_equal(back, oracle_unpack(data, dtype, (size,)))


@pytest.mark.parametrize("name", NAMES)
def test_every_value_at_every_position_in_a_group(name: str) -> None:
    # Runs of one extreme value fill every slot of a group and every bit of the stream with the same code.
    dtype = datatype(name)
    for value in extremes(dtype):
        for size in (1, 8, 9, 24, 65):
            values = np.full(size, value, dtype=np.uint64 if value > np.iinfo(np.int64).max else np.int64)
            data = pack(values, dtype)
            assert data == oracle_pack(values, dtype), f"{name}: {value} x {size}"
            assert np.array_equal(unpack(data, dtype, (size,)), values.astype(np.int64))


@pytest.mark.parametrize("name", NAMES)
def test_unpack_of_arbitrary_bytes_matches_the_reference(name: str) -> None:
    # Random bytes cover codes pack never writes: set padding bits in the last byte are ignored by both.
    dtype = datatype(name)
    if not oracle_unpack_is_exact(dtype):
        pytest.skip("the reference overflows on INT63")
    rng = np.random.default_rng(1000 + dtype.bitwidth)
    for size in SIZES:
        data = rng.integers(0, 256, size=packed_size(size, dtype), dtype=np.uint8).tobytes()
        assert np.array_equal(unpack(data, dtype, (size,)), oracle_unpack(data, dtype, (size,))), f"{name} x {size}"


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("UINT4", np.array([[0, 15, 7], [8, 1, 2]], dtype=np.uint8)),
        ("INT4", np.array([-8, 7, -1, 0, 3], dtype=np.int8)),
        ("INT3", np.array([-4, 3, -1], dtype=np.int16)),
        ("UINT12", np.array([4095, 0, 2048], dtype=np.uint16)),
        ("UINT3", np.array([0.0, 7.0, 3.9])),  # floats truncate toward zero
        ("BINARY", np.array([True, False, True])),
        ("UINT64", np.array([2**64 - 1, 2**63, 5], dtype=np.uint64)),
        ("INT8", [-128, 127, 0]),
        ("BIPOLAR", np.array([[-1.0, 1.0], [1.0, 1.0]])),
    ],
)
def test_input_dtypes_and_shapes_match_the_reference_and_are_not_modified(name: str, values) -> None:
    dtype = datatype(name)
    before = np.array(values, copy=True)
    assert pack(values, dtype) == oracle_pack(values, dtype)
    assert np.array_equal(np.asarray(values), before)
    shape = np.shape(values)
    assert np.array_equal(unpack(pack(values, dtype), dtype, shape), oracle_unpack(pack(values, dtype), dtype, shape))


def test_unpack_gives_the_requested_shape() -> None:
    dtype = datatype("INT5")
    values = random_values(dtype, 2 * 3 * 5 * 7, np.random.default_rng(7)).reshape(2, 3, 5, 7)
    back = unpack(pack(values, dtype), dtype, values.shape)
    assert back.shape == (2, 3, 5, 7) and np.array_equal(back, values)


def test_documented_layout_examples() -> None:
    assert pack(np.array([1, 2, 3]), datatype("UINT4")) == bytes([0x21, 0x03])
    assert pack(np.array([-1, 1]), datatype("INT4")) == bytes([0x1F])
    assert pack(np.array([1, 0, 0, 0, 0, 0, 0, 0, 1]), datatype("BINARY")) == bytes([0x01, 0x01])
    assert pack(np.array([-1, 1, 1]), datatype("BIPOLAR")) == bytes([0b110])
    # UINT3: the third value straddles bytes 0 and 1.
    assert pack(np.array([7, 0, 5]), datatype("UINT3")) == bytes([0b01000111, 0b1])
    assert pack(np.array([0x5A5, 0xF0F]), datatype("UINT12")) == bytes([0xA5, 0xF5, 0xF0])


# ---- Errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_out_of_range_values_are_refused_naming_the_datatype(name: str) -> None:
    dtype = datatype(name)
    bad = [0, 2, -2] if dtype.is_bipolar else [dtype.min - 1, dtype.max + 1]
    ok = 1 if dtype.is_bipolar else 0
    for value in bad:
        # Python lists as a caller would pass them (object arrays beyond int64); 2**63 as uint64, since a
        # list makes it float64, which cannot tell INT64's 2**63 - 1 from 2**63.
        values = np.array([ok, value, ok], dtype=np.uint64) if value == 2**63 else [ok, value, ok]
        with pytest.raises(ValueError, match=f"outside {name} range"):
            pack(values, dtype)
        with pytest.raises(ValueError, match=f"outside {name} range"):
            oracle_pack(values, dtype)


STORAGE = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize("name", ["UINT1", "UINT7", "UINT8", "UINT15", "UINT16", "UINT63", "UINT64", "INT4", "INT64"])
def test_range_check_agrees_with_the_reference_for_every_input_type(name: str) -> None:
    # The range check reads unsigned storage to test both ends at once; a negative int must still be caught.
    dtype = datatype(name)
    for storage in STORAGE:
        info = np.iinfo(storage)
        for value in {-1, 0, dtype.min, dtype.min - 1, dtype.max, dtype.max + 1, info.min, info.max}:
            if not info.min <= value <= info.max:
                continue
            values = np.array([0, value, 0], dtype=storage)
            try:
                expected = oracle_pack(values, dtype)
            except ValueError:
                with pytest.raises(ValueError, match=f"outside {name} range"):
                    pack(values, dtype)
            else:
                assert pack(values, dtype) == expected, f"{name} from {values.dtype}: {value}"


def test_non_finite_values_are_refused() -> None:
    with pytest.raises(ValueError, match="outside UINT4 range"):
        pack(np.array([1.0, np.nan]), datatype("UINT4"))


@pytest.mark.parametrize("name", ["UINT1", "UINT4", "INT3", "INT8", "UINT12", "INT32", "UINT64", "BIPOLAR"])
def test_unpack_refuses_the_wrong_number_of_bytes(name: str) -> None:
    dtype = datatype(name)
    size = packed_size(10, dtype)
    for wrong in (size - 1, size + 1, 0):
        with pytest.raises(ValueError, match=f"expected {size} bytes for 10 x {name}, got {wrong}"):
            unpack(bytes(wrong), dtype, (2, 5))

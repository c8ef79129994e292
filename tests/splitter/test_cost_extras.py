"""The terms FINN's estimates omit (FIFOs, width converters, shell) and the memory tables."""

from __future__ import annotations

import pytest

from splitter.boards import load_board
from splitter.cost import (
    CostConfig,
    LayerCost,
    Resources,
    boundary_cost,
    extra_iodmas,
    output_fifo_cost,
    partition_resources,
)
from splitter.cost.memory import dwc, fifo, least_waste_memory, mvau_bram, vvau_bram, weight_memory

ZED = load_board("zedboard")


@pytest.mark.parametrize(
    ("width", "depth", "expected"),
    [
        (4, 1024 * 1024, 256),  # 1024x1024 4-bit layer at PE=SIMD=1: ceil(2^20/4096) * 1
        (1024, 4096, 228),  # the same layer at PE*SIMD=256: ceil(4096/1024) * ceil(1024/18) = 4 * 57
        (1, 20000, 2),  # ceil(20000/16384)
        (2, 8192, 1),
        (9, 2049, 2),  # ceil(2049/2048) * ceil(9/9)
        (36, 512, 1),  # depth <= 512, width > 18: ceil(512/512) * ceil(36/36)
        (37, 512, 2),
        (32, 513, 2),  # depth > 512: ceil(513/1024) * ceil(32/18)
    ],
)
def test_mvau_bram_table(width: int, depth: int, expected: int) -> None:
    assert mvau_bram(width, depth) == expected


def test_vvau_bram_table_uses_8_16_32_bit_words() -> None:
    assert vvau_bram(8, 2048) == 1
    assert vvau_bram(9, 2048) == 2  # ceil(9/8)
    assert vvau_bram(16, 1024) == 1
    assert vvau_bram(32, 512) == 1  # depth <= 512, width > 18: ceil(32/32)


def test_weight_memory_styles() -> None:
    assert weight_memory(16, 100, "distributed", "mvau") == Resources(lut=32, lutram=32)  # 16 * ceil(100/64)
    assert weight_memory(16, 100, "block", "mvau") == Resources(bram18=1)
    assert weight_memory(100, 5000, "ultra", "mvau") == Resources(uram=4)  # ceil(100/72) * ceil(5000/4096)


def test_fifo_and_width_converter() -> None:
    # StreamingFIFO_rtl depth 32, 16 bits: 2*ceil(log2 32) + ceil(32/32)*ceil(16/2) = 10 + 8
    assert fifo(16, 32, 1.0) == Resources(lut=18, ff=18, lutram=8)
    assert fifo(12, 32, 1.0) == fifo(16, 32, 1.0)  # width padded to bytes
    assert fifo(64, 256, 0.5).lut == 16 + 8 * 32
    assert dwc(16, 16, 1.0) == Resources()
    assert dwc(16, 32, 1.0).lut == 1 + 32  # up: |ceil(log2(16/32))| + lcm
    assert dwc(32, 16, 1.0).lut == 1 + 16  # down: |ceil(log2(32/16))| + out
    assert dwc(24, 32, 1.0).lut == (2 + 96) + (2 + 32)  # via lcm 96


def test_least_waste_memory() -> None:
    # 8 bits x 16: LUTRAM 8 primitives waste 8*64 - 128 = 384 bits, a BRAM18 far more
    assert least_waste_memory(8, 16, has_uram=False) == Resources(lut=8, lutram=8)
    # 36 x 500: LUTRAM 36*8 = 288 wastes 288*64 - 18000 = 432, one 36x512 BRAM18 also 432: ties keep
    # FINN's order (URAM, BRAM, LUTRAM)
    assert least_waste_memory(36, 500, has_uram=False) == Resources(bram18=1)
    assert least_waste_memory(72, 4096, has_uram=True) == Resources(uram=1)  # exactly one URAM
    assert least_waste_memory(72, 4096, has_uram=False) == Resources(bram18=16)  # 2 x 8 of 36x512


def test_partition_resources_adds_fifos_dwcs_and_shell() -> None:
    cfg = CostConfig()
    a = LayerCost(Resources(lut=1000, bram18=2), 10, "MVAU_hls", in_width=32, out_width=16)
    b = LayerCost(Resources(lut=500, dsp=4), 20, "VVAU_hls", in_width=32, out_width=8)
    total = partition_resources([a, b], ZED, cfg)
    expected = (
        ZED.shell + a.resources + b.resources
        + fifo(32, 32, 1.0)  # input FIFO of a (after the IODMA: no converter)
        + fifo(32, 32, 1.0) + dwc(16, 32, 1.0)  # a -> b: 16-bit stream widened to 32
        + fifo(8, 32, 1.0)  # b's output FIFO before the IODMA
    )
    assert total == expected
    assert boundary_cost(None, 32, cfg) == fifo(32, 32, 1.0)
    assert output_fifo_cost(8, cfg) == fifo(8, 32, 1.0)
    assert partition_resources([], ZED, cfg) == ZED.shell


def test_each_further_tensor_of_a_boundary_costs_an_iodma() -> None:
    """The shell holds one input and one output IODMA; a boundary of k tensors needs k - 1 more on that side
    (FINN's InsertIODMA: one per graph input and output), at the board file's per-IODMA figure."""
    a = LayerCost(Resources(lut=1000, bram18=2), 10, "MVAU_hls", in_width=32, out_width=16)
    one = partition_resources([a], ZED)
    # zedboard.yaml iodma: the shell's per-IODMA share, 1500 LUT, 2000 FF, 1 BRAM18
    assert ZED.iodma == Resources(lut=1500, ff=2000, bram18=1)
    assert extra_iodmas(ZED, 1, 1) == Resources()
    assert partition_resources([a], ZED, inputs=2) == one + Resources(lut=1500, ff=2000, bram18=1)
    assert partition_resources([a], ZED, inputs=2, outputs=3) == one + Resources(lut=4500, ff=6000, bram18=3)
    zcu = load_board("zcu104")  # 128-bit IODMAs: 1800 LUT, (9000 - 3000 - 1000) / 2 = 2500 FF, 2 BRAM18
    assert extra_iodmas(zcu, 2, 2) == Resources(lut=3600, ff=5000, bram18=4)

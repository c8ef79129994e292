"""Memory mapping formulas: FINN's BRAM/URAM/LUTRAM tables for weights, buffers, FIFOs, DWCs.

Each function cites the FINN estimate it follows (src/finn/custom_op/fpgadataflow/...).
"""

from __future__ import annotations

import math

from splitter.cost.resources import Resources


def _bram_table(width: int, depth: int, widths: tuple[int, int, int, int]) -> int:
    """RAMB18s for a width x depth memory; `widths` are the per-block widths of FINN's 4/9/18/36 rows."""
    w4, w9, w18, w36 = widths
    if width == 1:
        return math.ceil(depth / 16384)
    if width == 2:
        return math.ceil(depth / 8192)
    if width <= 4:
        return math.ceil(depth / 4096) * math.ceil(width / w4)
    if width <= 9:
        return math.ceil(depth / 2048) * math.ceil(width / w9)
    if width <= 18 or depth > 512:
        return math.ceil(depth / 1024) * math.ceil(width / w18)
    return math.ceil(depth / 512) * math.ceil(width / w36)


def mvau_bram(width: int, depth: int) -> int:
    """RAMB18s for a width x depth memory, MVAU table (matrixvectoractivation.py bram_estimation)."""
    return _bram_table(width, depth, (4, 9, 18, 36))


def vvau_bram(width: int, depth: int) -> int:
    """RAMB18s, VVAU table (vectorvectoractivation.py bram_estimation: widths 8/16/32 per block)."""
    return _bram_table(width, depth, (4, 8, 16, 32))


def uram_blocks(width: int, depth: int) -> int:
    """URAM288s for a width x depth memory (MVAU/SWG uram_estimation: 72 x 4096 per block)."""
    return math.ceil(width / 72) * math.ceil(depth / 4096)


def lutram_luts(width: int, depth: int) -> int:
    """LUTs for a distributed memory (MVAU lut_estimation term c2: one 64x1 LUTRAM per bit per 64 words)."""
    return width * math.ceil(depth / 64)


def weight_memory(width: int, depth: int, ram_style: str, table: str) -> Resources:
    """Resources of a decoupled weight memory (memstream) in `ram_style`; table 'mvau' or 'vvau'."""
    if ram_style == "distributed":
        luts = lutram_luts(width, depth)
        return Resources(lut=luts, lutram=luts)
    if ram_style == "ultra":
        return Resources(uram=uram_blocks(width, depth))
    if table == "vvau" and ram_style == "auto" and depth <= 128:
        # FINN counts 0 BRAM here and no LUTs either; Vivado maps it to LUTRAM (correction).
        luts = lutram_luts(width, depth)
        return Resources(lut=luts, lutram=luts)
    bram = mvau_bram(width, depth) if table == "mvau" else vvau_bram(width, depth)
    return Resources(bram18=bram)


def swg_bram(width: int, depth: int, count: int) -> int:
    """RAMB18s for SWG line buffers (convolutioninputgenerator_rtl.py bram_estimation)."""
    if count == 0 or depth == 0:
        return 0
    ram_width = _bram_width_for_depth(depth)
    cascade_depth = math.ceil(depth / 16384)
    cascade_width = math.ceil(width / ram_width)
    savings = 0
    if depth > 16384:
        savings = cascade_width - math.ceil(width / _bram_width_for_depth(depth % 16384))
    return int((cascade_depth * cascade_width - savings) * count)


def _bram_width_for_depth(depth: int) -> int:
    """Widest RAMB18 aspect ratio that holds `depth` words."""
    for limit, width in ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2)):
        if depth <= limit:
            return width
    return 1


# RAM primitives FINN's Thresholding_rtl ranks (util/basic.py mem_primitives_versal, in its order;
# ties in waste keep this order). URAM shapes are dropped on parts without URAM (FINN keeps them).
_PRIMITIVES = (
    ("uram", 72, 4096),
    ("uram", 36, 8192),
    ("uram", 18, 16384),
    ("uram", 9, 32768),
    ("bram18", 36, 512),
    ("bram18", 18, 1024),
    ("bram18", 9, 2048),
    ("lutram", 1, 64),
)


def least_waste_memory(width: int, depth: int, has_uram: bool) -> Resources:
    """The primitive FINN's get_memutil_alternatives ranks first: fewest wasted bits."""
    best: tuple[int, str, int] | None = None
    for kind, p_width, p_depth in _PRIMITIVES:
        if kind == "uram" and not has_uram:
            continue
        count = math.ceil(width / p_width) * math.ceil(depth / p_depth)
        waste = count * p_width * p_depth - width * depth
        if best is None or waste < best[0]:
            best = (waste, kind, count)
    assert best is not None
    _, kind, count = best
    if kind == "lutram":
        return Resources(lut=count, lutram=count)
    return Resources(**{kind: count})


def fifo(width: int, depth: int, ff_per_lut: float) -> Resources:
    """A StreamingFIFO_rtl (SRL based): streamingfifo.py lut_estimation, width padded to bytes."""
    width = 8 * math.ceil(width / 8)
    srl = math.ceil(depth / 32) * math.ceil(width / 2)
    luts = 2 * math.ceil(math.log2(max(depth, 2))) + srl
    return Resources(lut=luts, ff=ff_per_lut * luts, lutram=srl)


def dwc(in_width: int, out_width: int, ff_per_lut: float) -> Resources:
    """A StreamingDataWidthConverter (streamingdatawidthconverter.py lut_estimation); 0 if widths match."""
    if in_width == out_width:
        return Resources()
    lcm = in_width * out_width // math.gcd(in_width, out_width)
    luts = 0
    if in_width != lcm:
        luts += abs(math.ceil(math.log2(in_width / lcm))) + lcm
    if lcm != out_width:
        luts += abs(math.ceil(math.log2(lcm / out_width))) + out_width
    return Resources(lut=luts, ff=ff_per_lut * luts)

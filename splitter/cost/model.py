"""The cost model's data: a layer's folding, its cost, the tunable correction terms, its tensor I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from core.datatypes import DataType
from splitter.cost.resources import Resources
from splitter.graph import Layer, TensorSpec

RAM_STYLES = ("auto", "block", "distributed", "ultra")
RES_TYPES = ("auto", "lut", "dsp")
THRESHOLD_STYLES = ("embedded", "standalone")
IMPL_STYLES = ("", "hls", "rtl")


@dataclass(frozen=True)
class Folding:
    """Parallelism and implementation choices FINN exposes per layer (folding config attributes)."""

    pe: int = 1
    simd: int = 1
    ram_style: str = "auto"  # weight / buffer memory: auto (FINN's default), block, distributed, ultra
    res_type: str = "auto"  # MVAU/VVAU multipliers: auto (LUTs in FINN's estimate), lut, dsp
    parallel_window: int = 0  # ConvolutionInputGenerator only: emit a whole window per cycle
    # MVAU/VVAU with an activation: thresholds in the node (FINN's default) or a Thresholding_rtl after it
    thresholds: str = "embedded"
    thr_pe: int = 1  # PE of that standalone Thresholding_rtl
    impl_style: str = ""  # FINN's preferred_impl_style: "" (FINN's default variant), "hls" or "rtl"

    def __post_init__(self) -> None:
        if self.pe < 1 or self.simd < 1 or self.thr_pe < 1:
            raise ValueError(f"PE and SIMD must be >= 1, got PE={self.pe} SIMD={self.simd} thr_pe={self.thr_pe}")
        if self.ram_style not in RAM_STYLES or self.res_type not in RES_TYPES:
            raise ValueError(f"ram_style {self.ram_style!r} / res_type {self.res_type!r} unknown")
        if self.thresholds not in THRESHOLD_STYLES or self.impl_style not in IMPL_STYLES:
            raise ValueError(f"thresholds {self.thresholds!r} / impl_style {self.impl_style!r} unknown")

    @property
    def standalone(self) -> bool:
        """True when the thresholds are a Thresholding_rtl node of their own."""
        return self.thresholds == "standalone"

    def __str__(self) -> str:
        extra = " parallel_window" if self.parallel_window else ""
        extra += f" +Thresholding PE={self.thr_pe}" if self.standalone else ""
        extra += f" {self.impl_style}" if self.impl_style else ""
        return f"PE={self.pe} SIMD={self.simd} {self.ram_style}/{self.res_type}{extra}"


# Named corrections the cost model adds to FINN's own estimate of a layer (docs/cost-model.md#corrections).
CORRECTIONS = {
    "ff": "flip-flops: FINN estimates none; ff_per_lut per LUT",
    "thresholds": "MVAU_hls threshold memory and comparators, which FINN counts only for ram_style_thresholds="
                  "distributed (the default is auto)",
    "small_weights": "VVAU weights of at most 128 words with ram_style auto: FINN counts neither BRAM nor LUTs; "
                     "Vivado maps them to LUTRAM",
    "simd_dsp": "VVAU_hls with SIMD > 1 and resType dsp: a DSP per SIMD lane, which FINN's estimate leaves out",
    "rtl_fabric": "MVAU_rtl adder tree and accumulators outside the DSPs (FINN: 0 LUT)",
    "control": "counters, muxes and datapath of layers FINN estimates at 0 LUT",
    "threshold_memory": "Thresholding_rtl memory on this part minus FINN's count: FINN drops the BRAM18s (key "
                        "'BRAM' vs 'BRAM18') and ranks URAM also on parts that have none",
    "inner_link": "the FIFO (and width converter) FINN inserts between an MVAU/VVAU and its standalone "
                  "Thresholding_rtl",
    "branch_fifo": "an AddStreams' deep input FIFOs: what one residual branch makes while the other waits for "
                   "rows (inFIFOPixels), beyond the standard FIFO of its first input",
    "calibration": "the board's fitted post-synthesis / predicted factor per impl and resource, applied to the "
                   "cost so far (docs/calibration.md); none without a <board>.calibration.json",
}


@dataclass(frozen=True)
class LayerCost:
    """Predicted resources and cycles per frame of one layer with one folding on one board.

    `finn` is FINN v0.10.1's own estimate of the node (its LUT, BRAM_18K, URAM and DSP; `lutram`
    marks which of its LUTs are memory); `corrections` are the named terms the cost model adds
    (CORRECTIONS). `resources` is their sum.
    """

    finn: Resources
    cycles: int
    impl: str  # FINN's specialized op type, e.g. "MVAU_hls", "Thresholding_rtl"
    in_width: int  # input stream width in bits
    out_width: int  # output stream width in bits
    corrections: tuple[tuple[str, Resources], ...] = ()
    # FINN nodes of a layer that FINN builds as several (an MVAU and its standalone Thresholding_rtl),
    # in graph order; the fields above are then their sums (cycles: the slowest) plus the link between.
    parts: tuple[LayerCost, ...] = ()

    @property
    def nodes(self) -> tuple[LayerCost, ...]:
        """The FINN nodes this layer becomes, in graph order (itself when it is one node)."""
        return self.parts or (self,)

    @property
    def resources(self) -> Resources:
        """FINN's estimate plus every correction."""
        total = self.finn
        for _, extra in self.corrections:
            total = total + extra
        return total

    def correction(self, name: str) -> Resources:
        """The correction called `name` (zero if this layer has none)."""
        return sum((r for n, r in self.corrections if n == name), Resources())


def costed(
    finn: Resources, cycles: int, impl: str, in_width: int, out_width: int, cfg: CostConfig,
    **corrections: Resources,
) -> LayerCost:
    """A LayerCost whose corrections are `corrections` (zero ones dropped) plus the FF estimate."""
    unknown = set(corrections) - set(CORRECTIONS)
    assert not unknown, f"undocumented corrections {unknown}"
    terms = [(name, res) for name, res in corrections.items() if any(res.as_tuple())]
    luts = finn.lut + sum(res.lut for _, res in terms)
    if cfg.ff_per_lut:
        terms.append(("ff", Resources(ff=cfg.ff_per_lut * luts)))
    return LayerCost(finn, int(cycles), impl, in_width, out_width, tuple(terms))


def composite(parts: tuple[LayerCost, ...], link: Resources) -> LayerCost:
    """One layer built as several FINN nodes in a row; `link` is the FIFO (and converter) between them."""
    finn = sum((p.finn for p in parts), Resources())
    terms: dict[str, Resources] = {}
    for part in parts:
        for name, res in part.corrections:
            terms[name] = terms.get(name, Resources()) + res
    if any(link.as_tuple()):
        terms["inner_link"] = link
    cycles = max(p.cycles for p in parts)
    return LayerCost(finn, cycles, parts[0].impl, parts[0].in_width, parts[-1].out_width, tuple(terms.items()), parts)


@dataclass(frozen=True)
class CostConfig:
    """Terms FINN's estimates leave out or that calibration sets; docs/cost-model.md explains each."""

    fifo_depth: int = 32  # depth of the FIFO FINN inserts at every layer input and at the output
    ff_per_lut: float = 1.0  # FF estimate per LUT (FINN estimates no FFs)
    mvau_wwidth_max: int = 0  # cap on MVAU SIMD * weight bits (FINN SetFolding uses 36; 0: no cap)
    rtl_mvau_base_lut: int = 300  # correction: FINN estimates 0 LUT for MVAU_rtl
    small_layer_base_lut: int = 100  # correction: control logic of layers FINN estimates at 0 LUT
    # MVAU/VVAU thresholds the search may use: "choose" per layer, always "embedded" (FINN's default
    # on 7-series) or always "standalone" (a Thresholding_rtl after each, as FINN's MobileNet build)
    thresholds: str = "choose"


@dataclass(frozen=True)
class LayerIO:
    """Shapes and datatypes of a layer's input and output tensors (NHWC, batch 1)."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_dtype: DataType
    out_dtype: DataType

    @property
    def out_vectors(self) -> int:
        """Number of output pixels (product of all but the channel axis)."""
        return math.prod(int(d) for d in self.out_shape[:-1])

    @property
    def in_vectors(self) -> int:
        """Number of input pixels (product of all but the channel axis)."""
        return math.prod(int(d) for d in self.in_shape[:-1])


def layer_io(layer: Layer, tensors: Mapping[str, TensorSpec]) -> LayerIO:
    """The I/O of `layer` looked up in `tensors` (KeyError names the layer and tensor)."""
    try:
        src, dst = tensors[layer.input], tensors[layer.output]
    except KeyError as exc:
        raise KeyError(f"layer {layer.name}: tensor {exc.args[0]!r} not in the graph's tensors") from None
    return LayerIO(tuple(src.shape), tuple(dst.shape), src.dtype, dst.dtype)


def folding_from_attrs(layer: Layer) -> Folding:
    """The folding a layer's own attributes describe (the lowering's FINN defaults)."""
    attrs = layer.attrs
    ram_style = str(attrs.get("ram_style", "distributed" if layer.op_type in _DISTRIBUTED_DEFAULT else "auto"))
    return Folding(
        pe=int(attrs.get("PE", 1)),
        simd=int(attrs.get("SIMD", 1)),
        ram_style=ram_style,
        res_type=str(attrs.get("resType", "auto")),
        parallel_window=int(attrs.get("parallel_window", 0)),
    )


# FINN op types whose ram_style attribute defaults to "distributed" rather than "auto".
_DISTRIBUTED_DEFAULT = frozenset({"ConvolutionInputGenerator", "ChannelwiseOp", "Thresholding"})

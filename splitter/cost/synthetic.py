"""Layer chains built from shapes alone (no weights), for what-if costing, tests and benchmarks.

`mobilenet_v1_w4a4()` mirrors the layers the lowering produces for brevitas' quant_mobilenet_v1_4b.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.datatypes import DataType, datatype, smallest_datatype
from splitter.graph import Layer, TensorSpec


@dataclass
class LayerBuilder:
    """Appends FINN-style layers (PE = SIMD = 1, as the lowering emits them) in order, NHWC."""

    shape: tuple[int, int, int, int]
    dtype: DataType
    layers: list[Layer] = field(default_factory=list)
    tensors: dict[str, TensorSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.current = "input"
        self.tensors["input"] = TensorSpec("input", self.shape, self.dtype)

    def _emit(self, op: str, attrs: dict, shape: tuple[int, ...], dtype: DataType) -> LayerBuilder:
        name = f"{op}_{sum(x.op_type == op for x in self.layers)}"
        out = f"{name}_out"
        self.tensors[out] = TensorSpec(out, tuple(shape), dtype)
        self.layers.append(Layer(op, name, self.current, out, attrs))
        self.current, self.shape, self.dtype = out, tuple(shape), dtype
        return self

    def pad(self, p: int) -> LayerBuilder:
        """FMPadding by p on every side."""
        _, h, w, c = self.shape
        attrs = {"ImgDim": (h, w), "Padding": (p, p, p, p), "NumChannels": c, "SIMD": 1,
                 "inputDataType": self.dtype.name}
        return self._emit("FMPadding", attrs, (1, h + 2 * p, w + 2 * p, c), self.dtype)

    def window(self, k: int, stride: int, depthwise: bool) -> LayerBuilder:
        """ConvolutionInputGenerator, k x k, no padding."""
        _, h, w, c = self.shape
        oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
        attrs = {"ConvKernelDim": (k, k), "IFMChannels": c, "IFMDim": (h, w), "OFMDim": (oh, ow), "SIMD": 1,
                 "Stride": (stride, stride), "Dilation": (1, 1), "depthwise": int(depthwise),
                 "parallel_window": 0, "inputDataType": self.dtype.name, "outputDataType": self.dtype.name}
        return self._emit("ConvolutionInputGenerator", attrs, (1, oh, ow, k * k * c), self.dtype)

    def _acc(self, dot: int, wdt: DataType) -> DataType:
        extreme = max(abs(self.dtype.min), abs(self.dtype.max)) * max(abs(wdt.min), abs(wdt.max)) * dot
        return smallest_datatype(-extreme, extreme)

    def mvau(self, out_ch: int, wdt: str, odt: str | None) -> LayerBuilder:
        """MVAU over the last axis; odt None means noActivation (accumulator output)."""
        _, h, w, mw = self.shape
        weights, acc = datatype(wdt), self._acc(mw, datatype(wdt))
        out = datatype(odt) if odt else acc
        attrs = {"MW": mw, "MH": out_ch, "SIMD": 1, "PE": 1, "numInputVectors": (1, h, w),
                 "inputDataType": self.dtype.name, "weightDataType": weights.name, "outputDataType": out.name,
                 "accDataType": acc.name, "noActivation": int(odt is None), "ActVal": 0, "binaryXnorMode": 0,
                 "mem_mode": "internal_decoupled", "ram_style": "auto", "resType": "auto"}
        return self._emit("MVAU", attrs, (1, h, w, out_ch), out)

    def vvau(self, k: int, wdt: str, odt: str) -> LayerBuilder:
        """Depthwise VVAU after a k x k depthwise window."""
        _, h, w, kc = self.shape
        c, weights = kc // (k * k), datatype(wdt)
        attrs = {"PE": 1, "SIMD": 1, "Channels": c, "Kernel": (k, k), "Dim": (h, w), "numInputVectors": 1,
                 "inputDataType": self.dtype.name, "weightDataType": weights.name, "outputDataType": odt,
                 "accDataType": self._acc(k * k, weights).name, "noActivation": 0, "ActVal": 0}
        return self._emit("VVAU", attrs, (1, h, w, c), datatype(odt))

    def avgpool(self, k: int, odt: str, shift: int) -> LayerBuilder:
        """QuantAvgPool behind a k x k depthwise window."""
        _, h, w, kc = self.shape
        c = kc // (k * k)
        attrs = {"Function": "QuantAvgPool", "KernelSize": (k, k), "Channels": c, "PE": 1,
                 "InputDataType": self.dtype.name, "OutputDataType": odt,
                 "AccumBits": self.dtype.bitwidth + (k * k - 1).bit_length(), "Shift": shift, "BatchSize": 1}
        return self._emit("Pool", attrs, (1, h, w, c), datatype(odt))

    def bias(self, pdt: str) -> LayerBuilder:
        """ChannelwiseOp add of a per-channel integer bias."""
        c, param = self.shape[-1], datatype(pdt)
        out = smallest_datatype(self.dtype.min + param.min, self.dtype.max + param.max)
        attrs = {"Func": "add", "NumChannels": c, "PE": 1, "inputDataType": self.dtype.name,
                 "paramDataType": param.name, "outputDataType": out.name}
        return self._emit("ChannelwiseOp", attrs, self.shape, out)

    def build(self) -> tuple[list[Layer], dict[str, TensorSpec]]:
        """The layers and every tensor (input included)."""
        return list(self.layers), dict(self.tensors)


MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def mobilenet_v1_w4a4(image: int = 224, classes: int = 1000) -> tuple[list[Layer], dict[str, TensorSpec]]:
    """MobileNetV1 w4a4 as lowered: conv0 (INT8 weights, valid padding), 13 dw/pw blocks, pool, FC, bias."""
    b = LayerBuilder((1, image, image, 3), datatype("UINT8"))
    b.window(3, 2, depthwise=False).mvau(32, "INT8", "UINT4")
    for out_ch, stride in MOBILENET_BLOCKS:
        b.pad(1).window(3, stride, depthwise=True).vvau(3, "INT4", "UINT4").mvau(out_ch, "INT4", "UINT4")
    k = b.shape[1]
    b.window(k, 1, depthwise=True).avgpool(k, "UINT4", shift=6)
    b.mvau(classes, "INT4", None).bias("INT16")
    return b.build()

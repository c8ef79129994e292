"""Lower a QONNX model (a chain of quantized layers) to FINN-style dataflow layers.

The walk follows the graph from its input. At every step a `Cursor` names the ONNX tensor that the
current integer dataflow tensor represents (ONNX value = integer * scale[c] + offset[c]).
Each handler consumes one pattern of ONNX nodes and emits dataflow layers (docs/lowering.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import onnx

from splitter.datatypes import DataType, datatype, smallest_datatype
from splitter.errors import InputQuantizationRequired, LoweringError, UnsupportedNodeError
from splitter.graph import DataflowGraph, InputQuant, Layer, RefTensor, TensorSpec
from splitter.lowering.chain import ELEMENTWISE_OPS, Activation, ChainOp, derive_thresholds
from splitter.lowering.host import affine_of_chain, build_input_quant, collect_chain
from splitter.lowering.onnx_view import OnnxView, attributes, per_channel
from splitter.lowering.weights import conv_weights, matmul_weights, real_bias

PASS_THROUGH = ("Identity", "Dropout")
COMPUTE = ("Conv", "MatMul", "Gemm")


@dataclass(frozen=True)
class InputSpec:
    """A declared input quantization: real input = (x * scale - mean[c]) / std, x of `dtype`."""

    dtype: DataType
    scale: float
    mean: tuple[float, ...] = ()
    std: float = 1.0


@dataclass(frozen=True)
class Cursor:
    """The integer tensor the walk has reached and what it means in the ONNX model."""

    onnx: str
    tensor: str
    scale: np.ndarray  # (C,) real value of one integer step
    offset: np.ndarray  # (C,) real value of integer 0 (non-zero only for a declared input mean)
    dtype: DataType
    shape: tuple[int, ...]  # NHWC dataflow shape
    flattened_from: tuple[int, int, int] | None = None  # (C, H, W) when ONNX flattened an NCHW tensor
    rank: int = 4  # rank of the ONNX tensor (4: NCHW, 2: NC)

    @property
    def channels(self) -> int:
        """Channel count of the dataflow tensor (its last axis)."""
        return self.shape[-1]


class Lowering:
    """One lowering run: emits layers while walking the model."""

    def __init__(self, model: onnx.ModelProto, name: str, input_spec: InputSpec | None, topk: int | None) -> None:
        self.view = OnnxView(model)
        self.name = name
        self.input_spec = input_spec
        self.layers: list[Layer] = []
        self.tensors: dict[str, TensorSpec] = {}
        self.reference: dict[str, RefTensor] = {}
        self.counters: dict[str, int] = {}
        self.output_affine = None
        self.input_quant: InputQuant | None = None
        self.done = False

    # -- emitting ---------------------------------------------------------------------------
    def emit(
        self,
        op_type: str,
        cur: Cursor,
        attrs: dict,
        out_shape: tuple[int, ...],
        out_dtype: DataType,
        params: dict | None = None,
        source: tuple[str, ...] = (),
    ) -> str:
        """Append a layer reading `cur.tensor`; returns the name of its output tensor."""
        index = self.counters.get(op_type, 0)
        self.counters[op_type] = index + 1
        name = f"{op_type}_{index}"
        out = f"{name}_out"
        self.tensors[out] = TensorSpec(out, tuple(int(d) for d in out_shape), out_dtype)
        self.layers.append(Layer(op_type, name, cur.tensor, out, attrs, params or {}, source))
        return out

    def record(self, cur: Cursor) -> None:
        """Remember where `cur`'s dataflow tensor appears in the ONNX model (for equivalence checks)."""
        scale = cur.scale.reshape((1, -1, 1, 1) if cur.rank == 4 else (1, -1))
        self.reference[cur.tensor] = RefTensor(cur.onnx, scale.astype(np.float64), cur.rank == 4)

    # -- the walk ----------------------------------------------------------------------------
    def run(self) -> DataflowGraph:
        """Walk the whole model; returns the dataflow graph."""
        cur = self.start()
        first = TensorSpec(cur.tensor, cur.shape, cur.dtype)
        self.tensors[first.name] = first
        self.record(cur)
        while not self.done:
            node = self.view.single_consumer(cur.onnx)
            if node is None:
                cur = self.finish_integer(cur)
                break
            cur = self.step(node, cur)
        if not self.layers:
            raise LoweringError(f"model {self.name!r} has no layers to run on the FPGA")
        return DataflowGraph(
            name=self.name,
            input=first,
            layers=self.layers,
            tensors=self.tensors,
            input_quant=self.input_quant,
            output_affine=self.output_affine,
            reference=self.reference,
            onnx_output=self.view.outputs[0],
        )

    def step(self, node: onnx.NodeProto, cur: Cursor) -> Cursor:
        """Lower the pattern starting at `node`; returns the cursor after it."""
        op = node.op_type
        if op in PASS_THROUGH:
            return replace(cur, onnx=node.output[0])
        if op in ("Reshape", "Flatten"):
            return self.flatten(node, cur)
        if op in COMPUTE:
            return self.compute(node, cur)
        if op in ELEMENTWISE_OPS or op == "Quant":
            return self.standalone_activation(node, cur)
        if op == "MaxPool":
            return self.maxpool(node, cur)
        if op == "AveragePool":
            return self.avgpool(node, cur)
        raise UnsupportedNodeError(node.name, op, "no dataflow layer implements this operation")

    def start(self) -> Cursor:
        """Cursor for the model input, quantized by the model itself or by the declared spec."""
        view = self.view
        inputs = [i.name for i in view.graph.input if i.name not in view.initializers]
        if len(inputs) != 1:
            raise LoweringError(f"model must have exactly one input, found {inputs}")
        name = inputs[0]
        shape = view.shape(name)
        spec = self.input_spec
        iq = build_input_quant(view, name, spec)
        if iq is not None:
            self.input_quant, quant_out, quant = iq
            return self.cursor_after_quant(quant_out, quant, source_rank=len(view.shape(quant_out)))
        if spec is None:
            node = view.single_consumer(name)
            what = f"{node.op_type} node {node.name!r}" if node is not None else "the output"
            raise InputQuantizationRequired(
                f"model input {name!r} (float, shape {'x'.join(map(str, shape))}) feeds {what} without a "
                "quantizer; declare how the input is quantized, e.g. --input-dtype UINT8 --input-scale 1/255 "
                "--mean 0.485,0.456,0.406 --std 0.226 (FINN's ImageNet preprocessing), or --input-dtype UINT8 "
                "--input-scale 1/255 for images in [0, 1]"
            )
        if len(shape) != 4:
            raise LoweringError(f"declared input quantization needs an NCHW image input, {name!r} has shape {shape}")
        channels = shape[1]
        mean = np.zeros(channels) if not spec.mean else np.broadcast_to(np.asarray(spec.mean, float), (channels,))
        self.input_quant = InputQuant("declared", spec.dtype, spec.scale, tuple(float(m) for m in mean), spec.std)
        return Cursor(
            onnx=name,
            tensor="global_in",
            scale=np.full(channels, spec.scale / spec.std),
            offset=-mean / spec.std,
            dtype=spec.dtype,
            shape=(1, shape[2], shape[3], channels),
        )

    def cursor_after_quant(self, onnx_name: str, quant, source_rank: int) -> Cursor:
        """Cursor for the integer output of a Quant node reached from the model input."""
        shape = self.view.shape(onnx_name)
        if len(shape) == 4:
            nhwc = (1, shape[2], shape[3], shape[1])
        elif len(shape) == 2:
            nhwc = (1, 1, 1, shape[1])
        else:
            raise LoweringError(f"input tensor {onnx_name!r} has rank {len(shape)}; expected NCHW or NC")
        channels = nhwc[-1]
        scale = per_channel(quant.scale, channels, len(shape), onnx_name).astype(np.float64)
        return Cursor(onnx_name, "global_in", scale, np.zeros(channels), quant.dtype, nhwc, rank=len(shape))

    # -- patterns ----------------------------------------------------------------------------
    def flatten(self, node: onnx.NodeProto, cur: Cursor) -> Cursor:
        """Reshape/Flatten of an NCHW tensor to (N, C*H*W): no layer, the next MVAU reorders weights."""
        out_shape = self.view.shape(node.output[0])
        if cur.rank == 2 and len(out_shape) == 2:
            return replace(cur, onnx=node.output[0])
        if cur.rank != 4 or len(out_shape) != 2 or out_shape[1] != int(np.prod(cur.shape[1:])):
            raise UnsupportedNodeError(
                node.name, node.op_type, f"only flattening NCHW to (N, C*H*W) is supported (to {out_shape})"
            )
        _, height, width, channels = cur.shape
        if not np.all(cur.scale == cur.scale[0]) or np.any(cur.offset):
            raise UnsupportedNodeError(node.name, node.op_type, "flattening a per-channel scaled tensor")
        flat = height * width * channels
        return replace(
            cur,
            onnx=node.output[0],
            rank=2,
            flattened_from=(channels, height, width),
            scale=np.full(flat, cur.scale[0]),
            offset=np.zeros(flat),
        )

    def compute(self, node: onnx.NodeProto, cur: Cursor) -> Cursor:
        """Conv / MatMul / Gemm, the elementwise chain after it and its quantizer."""
        if node.op_type == "Conv":
            acc_cur, weights_info = self.conv(node, cur)
        else:
            acc_cur, weights_info = self.matmul(node, cur)
        op_type, attrs, weights, alpha, beta, bias, source = weights_info
        chain, end = collect_chain(self.view, node.output[0], node.name)
        if bias is not None:
            chain = [ChainOp("Add", (bias.astype(np.float32),)), *chain]
        lo, hi = _acc_range(weights, cur.dtype, op_type)
        acc_dtype = smallest_datatype(int(lo.min()), int(hi.max()))
        attrs.update(
            inputDataType=cur.dtype.name,
            weightDataType=smallest_datatype(int(weights.min()), int(weights.max())).name,
            accDataType=acc_dtype.name,
        )
        if end is not None and end.op_type == "Quant":
            quant = self.view.quant_params(end)
            channels = alpha.shape[0]
            qscale = per_channel(quant.scale, channels, cur.rank, end.name).astype(np.float32)
            act = Activation(alpha, beta, chain, quant, qscale)
            thresholds, sign, act_val = derive_thresholds(act, lo, hi)
            weights = weights * (sign[None, :] if op_type == "MVAU" else sign[:, None])
            attrs.update(noActivation=0, ActVal=int(act_val), outputDataType=quant.dtype.name)
            params = {"weights": _store(weights), "thresholds": _store(thresholds)}
            out = self.emit(op_type, acc_cur, attrs, acc_cur.shape, quant.dtype, params, (*source, end.name))
            nxt = Cursor(
                end.output[0],
                out,
                qscale.astype(np.float64),
                np.zeros(channels),
                quant.dtype,
                acc_cur.shape,
                rank=cur.rank if node.op_type == "Conv" else 2,
            )
            self.record(nxt)
            return nxt
        return self.finish_accumulator(node, acc_cur, op_type, attrs, weights, alpha, beta, chain, end, acc_dtype)

    def conv(self, node: onnx.NodeProto, cur: Cursor):
        """Emit padding and sliding window for a Conv; returns the cursor feeding the MVAU/VVAU."""
        attrs = attributes(node)
        w_int, w_scale = conv_weights(self.view, node)
        out_ch, in_per_group, kh, kw = w_int.shape
        group = int(attrs.get("group", 1))
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        strides = list(attrs.get("strides", [1, 1]))
        dilations = list(attrs.get("dilations", [1, 1]))
        _, height, width, channels = cur.shape
        depthwise = group > 1
        if depthwise and not (group == channels == out_ch and in_per_group == 1):
            raise UnsupportedNodeError(
                node.name,
                "Conv",
                f"grouped convolution with group={group} (only depthwise "
                "with one output per input channel is supported)",
            )
        if cur.rank != 4:
            raise UnsupportedNodeError(node.name, "Conv", "input is not an NCHW tensor")
        if not depthwise and not np.all(cur.scale == cur.scale[0]):
            raise UnsupportedNodeError(node.name, "Conv", "per-channel scaled input to a dense convolution")
        if any(pads) and np.any(cur.offset):
            raise UnsupportedNodeError(
                node.name,
                "Conv",
                "padding after an input mean subtraction cannot be "
                "integer-exact; drop --mean or use an unpadded first convolution",
            )
        source = (node.name,)
        x = cur
        if any(pads):
            top, left, bottom, right = pads[0], pads[1], pads[2], pads[3]
            shape = (1, height + top + bottom, width + left + right, channels)
            out = self.emit(
                "FMPadding",
                x,
                {
                    "ImgDim": (height, width),
                    "Padding": (top, left, bottom, right),
                    "NumChannels": channels,
                    "SIMD": 1,
                    "inputDataType": x.dtype.name,
                    "numInputVectors": 1,
                },
                shape,
                x.dtype,
                source=source,
            )
            x = replace(x, tensor=out, shape=shape)
        _, ph, pw, _ = x.shape
        oh = (ph - dilations[0] * (kh - 1) - 1) // strides[0] + 1
        ow = (pw - dilations[1] * (kw - 1) - 1) // strides[1] + 1
        if (kh, kw) != (1, 1) or strides != [1, 1] or depthwise:
            shape = (1, oh, ow, kh * kw * channels)
            out = self.emit(
                "ConvolutionInputGenerator",
                x,
                {
                    "ConvKernelDim": (kh, kw),
                    "IFMChannels": channels,
                    "IFMDim": (ph, pw),
                    "OFMDim": (oh, ow),
                    "SIMD": 1,
                    "Stride": tuple(strides),
                    "Dilation": tuple(dilations),
                    "depthwise": int(depthwise),
                    "parallel_window": 0,
                    "inputDataType": x.dtype.name,
                    "outputDataType": x.dtype.name,
                },
                shape,
                x.dtype,
                source=source,
            )
            x = replace(x, tensor=out, shape=shape)
        acc_cur = replace(x, shape=(1, oh, ow, out_ch))
        bias = real_bias(self.view, node, out_ch)
        if depthwise:
            weights = w_int.reshape(out_ch, kh * kw)  # (C, K): tap k = ky*KW + kx
            alpha = w_scale * cur.scale
            beta = w_scale * cur.offset * weights.sum(axis=1)
            attrs = {"PE": 1, "SIMD": 1, "Channels": out_ch, "Kernel": (kh, kw), "Dim": (oh, ow), "numInputVectors": 1}
            return acc_cur, ("VVAU", attrs, weights, alpha, beta, bias, source)
        weights = w_int.transpose(2, 3, 1, 0).reshape(kh * kw * channels, out_ch)  # rows (ky, kx, c)
        offsets = np.tile(cur.offset, kh * kw)
        alpha = w_scale * cur.scale[0]
        beta = w_scale * (offsets @ weights)
        attrs = {
            "MW": kh * kw * channels,
            "MH": out_ch,
            "SIMD": 1,
            "PE": 1,
            "numInputVectors": (1, oh, ow),
            "binaryXnorMode": 0,
            "mem_mode": "internal_decoupled",
            "ram_style": "auto",
            "resType": "auto",
        }
        return acc_cur, ("MVAU", attrs, weights, alpha, beta, bias, source)

    def matmul(self, node: onnx.NodeProto, cur: Cursor):
        """MatMul / Gemm on a flattened tensor: an MVAU with rows reordered to NHWC."""
        if cur.rank != 2:
            raise UnsupportedNodeError(node.name, node.op_type, "input must be a 2D (N, K) tensor")
        w_int, w_scale = matmul_weights(self.view, node)  # (K, N) in ONNX row order
        if cur.flattened_from is not None:
            channels, height, width = cur.flattened_from
            order = np.arange(channels * height * width).reshape(channels, height, width).transpose(1, 2, 0)
            w_int = w_int[order.reshape(-1)]  # dataflow row (h, w, c) reads ONNX row c*H*W + h*W + w
        mw, mh = w_int.shape
        if mw != int(np.prod(cur.shape[1:])):
            raise UnsupportedNodeError(node.name, node.op_type, f"weight rows {mw} do not match input {cur.shape}")
        alpha = w_scale * cur.scale[0]
        beta = np.zeros(mh)
        bias = real_bias(self.view, node, mh)
        attrs = {
            "MW": mw,
            "MH": mh,
            "SIMD": 1,
            "PE": 1,
            "numInputVectors": (1, 1, 1),
            "binaryXnorMode": 0,
            "mem_mode": "internal_decoupled",
            "ram_style": "auto",
            "resType": "auto",
        }
        acc_cur = replace(cur, shape=(1, 1, 1, mh))
        return acc_cur, ("MVAU", attrs, w_int, alpha, beta, bias, (node.name,))

    def finish_accumulator(self, node, acc_cur, op_type, attrs, weights, alpha, beta, chain, end, acc_dtype) -> Cursor:
        """A compute layer with no quantizer after it: output, optional bias and top-K."""
        if end is not None and end.op_type != "TopK":
            raise UnsupportedNodeError(
                end.name,
                end.op_type,
                f"reached from {node.name!r} without a quantizer "
                "in between (float tensors can only flow to the model output or TopK)",
            )
        scale, bias = affine_of_chain(chain, alpha, beta, node.name)
        attrs.update(noActivation=1, ActVal=0, outputDataType=acc_dtype.name)
        out = self.emit(op_type, acc_cur, attrs, acc_cur.shape, acc_dtype, {"weights": _store(weights)}, (node.name,))
        cur = replace(acc_cur, tensor=out, dtype=acc_dtype, scale=scale, offset=np.zeros_like(scale))
        steps = bias / scale
        if np.all(np.abs(steps - np.rint(steps)) < 1e-3) and np.any(bias):
            # An integer bias (brevitas Int32Bias: scale = input scale * weight scale) stays exact.
            param = np.rint(steps).astype(np.int64)
            dtype = smallest_datatype(acc_dtype.min + int(param.min()), acc_dtype.max + int(param.max()))
            out = self.emit(
                "ChannelwiseOp",
                cur,
                {
                    "Func": "add",
                    "NumChannels": cur.channels,
                    "PE": 1,
                    "inputDataType": acc_dtype.name,
                    "paramDataType": smallest_datatype(int(param.min()), int(param.max())).name,
                    "outputDataType": dtype.name,
                },
                cur.shape,
                dtype,
                {"param": _store(param)},
                (node.name,),
            )
            cur, bias = replace(cur, tensor=out, dtype=dtype), np.zeros_like(bias)
        if end is not None:
            return self.topk(end, cur, scale, bias)
        from splitter.graph import Affine

        self.output_affine = Affine(scale.astype(np.float32), bias.astype(np.float32))
        self.done = True
        return cur

    def topk(self, node: onnx.NodeProto, cur: Cursor, scale: np.ndarray, bias: np.ndarray) -> Cursor:
        """TopK on the logits: LabelSelect when the integer order equals the float order."""
        if np.any(bias) or not np.all(scale == scale[0]) or scale[0] <= 0:
            raise UnsupportedNodeError(
                node.name,
                "TopK",
                "the scores are not a positive per-tensor multiple of integers, so top-K cannot run on integers",
            )
        k = self.view.const(node.input[1])
        attrs = attributes(node)
        if k is None or int(attrs.get("largest", 1)) != 1 or int(attrs.get("axis", -1)) not in (-1, 1):
            raise UnsupportedNodeError(node.name, "TopK", "needs a constant K, largest=1, axis=-1")
        if node.output[0] in self.view.outputs:
            raise UnsupportedNodeError(node.name, "TopK", "the values output is a model output; only indices are")
        k = int(np.asarray(k).reshape(-1)[0])
        labels = cur.channels
        out_dtype = datatype(f"UINT{max(1, (labels - 1).bit_length())}")
        out = self.emit(
            "LabelSelect",
            cur,
            {"Labels": labels, "PE": 1, "K": k, "inputDataType": cur.dtype.name, "outputDataType": out_dtype.name},
            (1, 1, 1, k),
            out_dtype,
            source=(node.name,),
        )
        nxt = Cursor(node.output[1], out, np.ones(k), np.zeros(k), out_dtype, (1, 1, 1, k), rank=2)
        self.record(nxt)
        self.output_affine = None
        self.done = True
        return nxt

    def standalone_activation(self, node: onnx.NodeProto, cur: Cursor) -> Cursor:
        """Elementwise ops and a Quant directly on an integer tensor: a Thresholding layer."""
        chain, end = collect_chain(self.view, cur.onnx, node.name)
        if end is None or end.op_type != "Quant":
            scale, bias = affine_of_chain(chain, cur.scale, cur.offset, node.name)
            if end is not None:
                raise UnsupportedNodeError(end.name, end.op_type, "follows float elementwise ops without a quantizer")
            from splitter.graph import Affine

            self.output_affine = Affine(scale.astype(np.float32), bias.astype(np.float32))
            self.done = True
            return cur
        quant = self.view.quant_params(end)
        channels = cur.channels
        qscale = per_channel(quant.scale, channels, cur.rank, end.name).astype(np.float32)
        act = Activation(cur.scale, cur.offset, chain, quant, qscale)
        lo = np.full(channels, cur.dtype.min)
        hi = np.full(channels, cur.dtype.max)
        thresholds, sign, act_val = derive_thresholds(act, lo, hi)
        if np.any(sign < 0):
            raise UnsupportedNodeError(
                end.name, "Quant", "a decreasing activation without a preceding layer to absorb the sign"
            )
        out = self.emit(
            "Thresholding",
            cur,
            {
                "NumChannels": channels,
                "PE": 1,
                "numSteps": thresholds.shape[1],
                "inputDataType": cur.dtype.name,
                "outputDataType": quant.dtype.name,
                "ActVal": int(act_val),
                "numInputVectors": 1,
            },
            cur.shape,
            quant.dtype,
            {"thresholds": _store(thresholds)},
            (node.name, end.name),
        )
        nxt = replace(
            cur,
            onnx=end.output[0],
            tensor=out,
            scale=qscale.astype(np.float64),
            offset=np.zeros(channels),
            dtype=quant.dtype,
        )
        self.record(nxt)
        return nxt

    def maxpool(self, node: onnx.NodeProto, cur: Cursor) -> Cursor:
        """MaxPool on integers (exact: positive scales preserve order)."""
        attrs = attributes(node)
        kernel = tuple(attrs["kernel_shape"])
        strides = tuple(attrs.get("strides", kernel))
        if any(attrs.get("pads", [0, 0, 0, 0])) or int(attrs.get("ceil_mode", 0)) or np.any(cur.offset):
            raise UnsupportedNodeError(node.name, "MaxPool", "padding, ceil_mode or an input offset")
        _, height, width, channels = cur.shape
        oh, ow = (height - kernel[0]) // strides[0] + 1, (width - kernel[1]) // strides[1] + 1
        if kernel == strides:
            out = self.emit(
                "StreamingMaxPool",
                cur,
                {
                    "ImgDim": (height, width),
                    "PoolDim": kernel,
                    "NumChannels": channels,
                    "PE": 1,
                    "dataType": cur.dtype.name,
                    "CeilMode": 0,
                },
                (1, oh, ow, channels),
                cur.dtype,
                source=(node.name,),
            )
        else:
            window = self.sliding_window(cur, kernel, strides, (oh, ow), node.name)
            out = self.emit(
                "Pool",
                window,
                {
                    "Function": "MaxPool",
                    "KernelSize": kernel,
                    "Channels": channels,
                    "PE": 1,
                    "InputDataType": cur.dtype.name,
                    "OutputDataType": cur.dtype.name,
                    "AccumBits": 0,
                    "Shift": 0,
                    "BatchSize": 1,
                },
                (1, oh, ow, channels),
                cur.dtype,
                source=(node.name,),
            )
        nxt = replace(cur, onnx=node.output[0], tensor=out, shape=(1, oh, ow, channels))
        self.record(nxt)
        return nxt

    def sliding_window(self, cur: Cursor, kernel, strides, out_dims, source: str) -> Cursor:
        """Emit a depthwise sliding window generator for a pooling layer."""
        _, height, width, channels = cur.shape
        shape = (1, *out_dims, kernel[0] * kernel[1] * channels)
        out = self.emit(
            "ConvolutionInputGenerator",
            cur,
            {
                "ConvKernelDim": kernel,
                "IFMChannels": channels,
                "IFMDim": (height, width),
                "OFMDim": out_dims,
                "SIMD": 1,
                "Stride": strides,
                "Dilation": (1, 1),
                "depthwise": 1,
                "parallel_window": 0,
                "inputDataType": cur.dtype.name,
                "outputDataType": cur.dtype.name,
            },
            shape,
            cur.dtype,
            source=(source,),
        )
        return replace(cur, tensor=out, shape=shape)

    def avgpool(self, node: onnx.NodeProto, cur: Cursor) -> Cursor:
        """AveragePool [-> Mul] -> Trunc (brevitas TruncAvgPool2d, 0.10 and 0.13 exports)."""
        from splitter.lowering.avgpool import trunc_avgpool

        kernel, strides, out_dims, trunc, out_dtype, out_scale, shift, acc_dtype = trunc_avgpool(self.view, node, cur)
        window = self.sliding_window(cur, kernel, strides, out_dims, node.name)
        channels = cur.channels
        out = self.emit(
            "Pool",
            window,
            {
                "Function": "QuantAvgPool",
                "KernelSize": kernel,
                "Channels": channels,
                "PE": 1,
                "InputDataType": cur.dtype.name,
                "OutputDataType": out_dtype.name,
                "AccumBits": acc_dtype.bitwidth,
                "Shift": shift,
                "BatchSize": 1,
            },
            (1, *out_dims, channels),
            out_dtype,
            source=(node.name, trunc.name),
        )
        nxt = replace(
            cur,
            onnx=trunc.output[0],
            tensor=out,
            shape=(1, *out_dims, channels),
            dtype=out_dtype,
            scale=np.full(channels, out_scale),
        )
        self.record(nxt)
        return nxt

    def finish_integer(self, cur: Cursor) -> Cursor:
        """The walk reached the model output on a quantized tensor."""
        from splitter.graph import Affine

        self.output_affine = Affine(cur.scale.astype(np.float32), cur.offset.astype(np.float32))
        self.done = True
        return cur


def _acc_range(weights: np.ndarray, in_dtype: DataType, op_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel accumulator bounds for inputs anywhere in `in_dtype`'s range."""
    w = weights.astype(np.int64) if op_type == "MVAU" else weights.astype(np.int64).T  # (K, C)
    low, high = in_dtype.min, in_dtype.max
    lo = np.minimum(w * low, w * high).sum(axis=0)
    hi = np.maximum(w * low, w * high).sum(axis=0)
    return lo, hi


def _store(array: np.ndarray) -> np.ndarray:
    """Integer parameters in the narrowest signed storage type."""
    from splitter.datatypes import smallest_storage

    array = np.asarray(array, dtype=np.int64)
    return array.astype(smallest_storage(int(array.min(initial=0)), int(array.max(initial=0))))


def lower(
    model: onnx.ModelProto, name: str = "model", input_spec: InputSpec | None = None, topk: int | None = None
) -> DataflowGraph:
    """Lower a QONNX model to a dataflow graph (see docs/lowering.md)."""
    return Lowering(model, name, input_spec, topk).run()

"""IODMAs wired to the port each boundary tensor uses; runs inside FINN's interpreter (docs/finn.md#our-iodmas).

FINN v0.10.1's InsertIODMA (run by ZynqBuild in step_synthesize_bitfile) sets `input[0]` of a graph
input's consumer and `output[0]` of a graph output's producer to its DMA, whichever port the tensor
uses: a partition cut inside a residual block, whose skip enters a join at AddStreams input 1 or
leaves a fork at DuplicateStreams output 1, would be mis-wired. InsertPortIODMA makes the same IODMA
nodes (attributes, widths and node order as FINN's) on the port the tensor really uses; FINN's
InsertIODMA then skips every graph input and output, as it does for one whose DMA is already there.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto
from onnx import helper as oh
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import SortGraph

IODMA = "IODMA_hls"


class IODMAWiringError(Exception):
    """A graph input or output that one IODMA cannot serve (several consumers, or read inside the graph)."""


class InsertPortIODMA(Transformation):
    """FINN's InsertIODMA for graph inputs and outputs, on the port each tensor uses (not always port 0)."""

    def __init__(self, max_intfwidth: int = 32) -> None:
        super().__init__()
        if max_intfwidth <= 0 or max_intfwidth & (max_intfwidth - 1):
            raise ValueError(f"max_intfwidth must be a power of 2, got {max_intfwidth}")
        self.max_intfwidth = max_intfwidth

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Insert one IODMA per graph input and output lacking one; SortGraph as FINN does."""
        modified = False
        for name in [x.name for x in model.graph.input]:
            consumers = model.find_consumers(name) or []
            if len(consumers) != 1:
                raise IODMAWiringError(f"graph input {name} has {len(consumers)} consumers; an IODMA feeds one")
            if consumers[0].op_type != IODMA:
                model.graph.node.insert(0, self._input_dma(model, name, consumers[0]))
                modified = True
        for name in [x.name for x in model.graph.output]:
            producer = model.find_producer(name)
            if producer is None:
                raise IODMAWiringError(f"graph output {name} has no producer")
            if model.find_consumers(name):
                raise IODMAWiringError(f"graph output {name} is also read inside the graph; an IODMA cannot tap it")
            if producer.op_type != IODMA:
                model.graph.node.append(self._output_dma(model, name, producer))
                modified = True
        if modified:
            model = model.transform(SortGraph())
        return model, False

    def _width(self, stream_bits: int, folded: tuple[int, ...]) -> int:
        transfer_bits = stream_bits * int(np.prod(folded[:-1]))
        width = math.gcd(transfer_bits, self.max_intfwidth)
        if width % 8:
            raise IODMAWiringError(f"no feasible IODMA interface width for a transfer of {transfer_bits} bits")
        return width

    def _input_dma(self, model: ModelWrapper, name: str, consumer):
        port = list(consumer.input).index(name)
        inst = getCustomOp(consumer)
        folded = tuple(inst.get_folded_input_shape(port))
        stream = inst.get_instream_width_padded(port)
        wire = self._new_tensor(model, name)
        consumer.input[port] = wire
        return _dma([name], [wire], folded, stream, self._width(stream, folded), "in")

    def _output_dma(self, model: ModelWrapper, name: str, producer):
        port = list(producer.output).index(name)
        inst = getCustomOp(producer)
        folded = tuple(inst.get_folded_output_shape(port))
        stream = inst.get_outstream_width_padded(port)
        wire = self._new_tensor(model, name)
        producer.output[port] = wire
        return _dma([wire], [name], folded, stream, self._width(stream, folded), "out")

    @staticmethod
    def _new_tensor(model: ModelWrapper, like: str) -> str:
        info = oh.make_tensor_value_info(model.make_new_valueinfo_name(), TensorProto.FLOAT,
                                         model.get_tensor_shape(like))
        model.graph.value_info.append(info)
        model.set_tensor_datatype(info.name, model.get_tensor_datatype(like))
        return info.name


def _dma(inputs: list[str], outputs: list[str], folded: tuple[int, ...], stream: int, width: int, direction: str):
    """An IODMA node with FINN v0.10.1 InsertIODMA's attributes (8-bit words, FINN's padding workaround)."""
    return oh.make_node(IODMA, inputs, outputs, numInputVectors=list(folded[:-1]), NumChannels=stream // 8,
                        dataType="UINT8", intfWidth=width, streamWidth=stream, direction=direction,
                        domain="finn.custom_op.fpgadataflow.hls", backend="fpgadataflow")


def step_finnsplit_insert_iodma(model: ModelWrapper, cfg) -> ModelWrapper:
    """FINN build step before step_synthesize_bitfile: the IODMAs, at the board's AXI port width as ZynqBuild."""
    from finn.util.basic import pynq_native_port_width

    return model.transform(InsertPortIODMA(pynq_native_port_width[cfg.board]))

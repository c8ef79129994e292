"""A small residual CIFAR-10 network from brevitas_examples' own residual block (zoo `resnet8-w4a4`).

Three basic blocks of brevitas_examples.bnn_pynq's `QuantBasicBlock` (16, 32 and 64 channels, the last
two with a downsampling 1x1 convolution on the skip), as `QuantResNet` builds them but narrower and
shorter: each join adds two tensors quantized by one shared `QuantReLU`, the form FINN streamlines to
DuplicateStreams / AddStreams. Imported by splitter.zoo (brevitas 0.13) and run by splitter/zoo_legacy.py
in FINN's interpreter (brevitas 0.10): standard library, torch and brevitas only.
"""

from __future__ import annotations

import brevitas.nn as qnn
import torch.nn as nn
from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat, TruncTo8bit
from brevitas_examples.bnn_pynq.models.resnet import QuantBasicBlock, make_quant_conv2d

try:  # brevitas 0.13
    from brevitas.quant import Int32Bias as _Bias
except ImportError:  # brevitas 0.10
    from brevitas.quant import IntBias as _Bias

CONFIGS = {"resnet8_4w4a": {"widths": (16, 32, 64), "weight_bits": 4, "act_bits": 4, "classes": 10}}


class SmallQuantResNet(nn.Module):
    """conv 3x3 -> one QuantBasicBlock per width (stride 2 after the first) -> truncating avg pool -> linear."""

    def __init__(self, widths: tuple[int, ...], weight_bits: int, act_bits: int, classes: int) -> None:
        super().__init__()
        self.conv1 = make_quant_conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, weight_bit_width=8,
                                       weight_quant=Int8WeightPerChannelFloat)
        self.bn1 = nn.BatchNorm2d(widths[0])
        shared = qnn.QuantReLU(bit_width=act_bits, return_quant_tensor=True)
        self.relu = shared
        blocks, planes = [], widths[0]
        for i, width in enumerate(widths):
            block = QuantBasicBlock(planes, width, stride=1 if i == 0 else 2, shared_quant_act=shared,
                                    act_bit_width=act_bits, weight_bit_width=weight_bits,
                                    weight_quant=Int8WeightPerChannelFloat)
            blocks.append(block)
            shared, planes = block.relu_out, width
        self.blocks = nn.Sequential(*blocks)
        self.final_pool = qnn.TruncAvgPool2d(kernel_size=8, trunc_quant=TruncTo8bit, float_to_int_impl_type="FLOOR")
        self.linear = qnn.QuantLinear(planes, classes, bias=True, weight_bit_width=8, bias_quant=_Bias,
                                      weight_quant=Int8WeightPerTensorFloat)

    def forward(self, x):  # noqa: ANN201 - torch tensors
        """Logits of a float 3x32x32 image (no input quantizer: the input is declared 8-bit, as in QuantResNet)."""
        out = self.blocks(self.relu(self.bn1(self.conv1(x))))
        out = self.final_pool(out)
        return self.linear(out.view(out.size(0), -1))


def model_with_cfg(name: str) -> SmallQuantResNet:
    """The network called `name` (a key of CONFIGS)."""
    return SmallQuantResNet(**CONFIGS[name])

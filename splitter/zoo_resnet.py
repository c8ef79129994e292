"""Residual networks built from brevitas_examples' own definitions, at sizes the zoo needs.

`resnet8-w4a4`: a small residual CIFAR-10 network from brevitas_examples' own residual block.

Three basic blocks of brevitas_examples.bnn_pynq's `QuantBasicBlock` (16, 32 and 64 channels, the last
two with a downsampling 1x1 convolution on the skip), as `QuantResNet` builds them but narrower and
shorter: each join adds two tensors quantized by one shared `QuantReLU`, the form FINN streamlines to
DuplicateStreams / AddStreams. Imported by splitter.zoo (brevitas 0.13) and run by splitter/zoo_legacy.py
in FINN's interpreter (brevitas 0.10): standard library, torch and brevitas only.

`proxylessnas-w4a4`: brevitas_examples' ProxylessNAS-Mobile14 (`quant_proxylessnas_mobile14_4b`: its stages,
kernels, expansions and quantizers unchanged; inverted residual units whose two branches share one
`QuantIdentity`) with the final 1x1 block narrowed from 1792 to 1024 channels: the 1000-class 4-bit classifier
then holds 1024 x 1000 weights, as MobileNetV1's does, and fits one Zedboard (1792 x 1000 needs 392 BRAM18 of 252).
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
# quant_proxylessnas_mobile14_4b.ini and proxylessnas.quant_proxylessnas_mobile14's lists; only the final block differs.
PROXYLESS = {
    "proxylessnas_mobile14_4b_f1024": {
        "residuals": [[1], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1]],
        "channels": [[24], [40, 40, 40, 40], [56, 56, 56, 56], [112, 112, 112, 112, 136, 136, 136, 136],
                     [256, 256, 256, 256, 448]],
        "kernel_sizes": [[3], [5, 3, 3, 3], [7, 3, 5, 5], [7, 5, 5, 5, 5, 5, 5, 5], [7, 7, 7, 7, 7]],
        "expansions": [[1], [3, 3, 3, 3], [3, 3, 3, 3], [6, 3, 3, 3, 6, 3, 3, 3], [6, 6, 3, 3, 6]],
        "shortcuts": [[0], [0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1, 0, 1, 1, 1], [0, 1, 1, 1, 0]],
        "init_block_channels": 48, "final_block_channels": 1024, "bit_width": 4, "first_layer_weight_bit_width": 8,
        "depthwise_bit_width": 4, "hadamard_classifier": False, "round_average_pool": False,
    },
}


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


def model_with_cfg(name: str) -> nn.Module:
    """The network called `name` (a key of CONFIGS or PROXYLESS)."""
    if name in PROXYLESS:
        from brevitas_examples.imagenet_classification.models.proxylessnas import ProxylessNAS

        return ProxylessNAS(**PROXYLESS[name])
    return SmallQuantResNet(**CONFIGS[name])

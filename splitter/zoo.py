"""Test models built in code from brevitas' own definitions, exported to QONNX.

Random weights by default (seeded): weights uniform, BatchNorm statistics calibrated on random
inputs so activations spread over all quantization levels, and activation scales jittered so no
two layers share a scale. `checkpoint` loads real weights (a state_dict .pth) through the same
path a user would use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from splitter.errors import FinnsplitError


@dataclass(frozen=True)
class ZooModel:
    """How to build one zoo model and the input it expects."""

    name: str
    build: Callable[[], object]
    input_shape: tuple[int, ...]
    description: str
    # How a user quantizes its input (None: the model quantizes its float input itself).
    input_quant: tuple[str, str, str, str] | None = None  # (dtype, scale, mean, std) CLI strings


def _mobilenet():
    from brevitas_examples.imagenet_classification.models import model_with_cfg

    return model_with_cfg("quant_mobilenet_v1_4b", pretrained=None)[0]


def _bnn_pynq(name: str) -> Callable[[], object]:
    def build():
        from brevitas_examples.bnn_pynq.models import model_with_cfg

        return model_with_cfg(name, pretrained=False)[0]

    return build


MODELS = {
    m.name: m
    for m in (
        ZooModel(
            "mobilenet-v1-w4a4",
            _mobilenet,
            (1, 3, 224, 224),
            "MobileNetV1, 4-bit weights/activations (8-bit first and last layer weights), ImageNet",
            ("UINT8", "1/255", "0.485,0.456,0.406", "0.226"),
        ),
        ZooModel(
            "cnv-w2a2",
            _bnn_pynq("cnv_2w2a"),
            (1, 3, 32, 32),
            "VGG-style CNV, 2-bit weights/activations, max-pool, CIFAR-10 (32x32x3)",
        ),
        ZooModel(
            "tfc-w2a2",
            _bnn_pynq("tfc_2w2a"),
            (1, 1, 28, 28),
            "TFC MLP 784-64-64-64-10, 2-bit weights/activations, MNIST",
        ),
    )
}


def _randomize(model, seed: int, input_shape: tuple[int, ...]) -> None:
    """Seeded random weights, calibrated BatchNorm statistics and jittered activation scales."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("scaling_impl.value"):
                param.add_(torch.empty_like(param).uniform_(-0.25, 0.25, generator=generator))
            elif name.endswith("weight") and param.dim() > 1:
                param.copy_(torch.empty_like(param).uniform_(-1, 1, generator=generator))
            elif name.endswith("bn.weight") or (name.endswith("weight") and param.dim() == 1):
                param.copy_(torch.empty_like(param).uniform_(0.5, 1.5, generator=generator))
                flip = torch.rand(param.shape, generator=generator) < 0.1  # some negative gammas
                param[flip] = -param[flip]
            elif name.endswith("bias") and param.dim() == 1:
                param.copy_(torch.empty_like(param).uniform_(-0.5, 0.5, generator=generator))
        # Calibrate BatchNorm running statistics on random inputs (train mode, no grad).
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
                module.momentum = None  # cumulative average
        for _ in range(2):
            model(torch.rand((4, *input_shape[1:]), generator=generator))
    model.eval()


def export(
    name: str, path: str | Path, seed: int = 0, checkpoint: str | Path | None = None, dynamo: bool = True
) -> Path:
    """Export zoo model `name` to QONNX at `path`; random weights unless `checkpoint` is given."""
    if name not in MODELS:
        raise FinnsplitError(f"unknown zoo model {name!r}; known: {', '.join(sorted(MODELS))}")
    import torch
    from brevitas.export import export_qonnx

    entry = MODELS[name]
    torch.manual_seed(seed)
    model = entry.build()
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state, strict=True)
        model.eval()
    else:
        _randomize(model, seed, entry.input_shape)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(entry.input_shape, generator=torch.Generator().manual_seed(seed))
    export_qonnx(model, example, export_path=str(path), dynamo=dynamo)
    if entry.input_quant is not None:
        _record_input_quant(path, entry.input_quant)
    return path


def _record_input_quant(path: Path, declared: tuple[str, str, str, str]) -> None:
    """Store the zoo model's input quantization in the ONNX metadata (finnsplit reads it back)."""
    import onnx

    model = onnx.load(str(path))
    for key, value in zip(("input_dtype", "input_scale", "mean", "std"), declared, strict=True):
        prop = model.metadata_props.add()
        prop.key, prop.value = f"finnsplit.{key}", value
    onnx.save(model, str(path))

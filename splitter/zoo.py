"""Test models built in code from brevitas' own definitions, exported to QONNX.

Random weights by default (seeded): weights uniform, BatchNorm statistics calibrated on random
inputs so activations spread over all quantization levels, and activation scales jittered so no
two layers share a scale. `checkpoint` loads real weights (a state_dict .pth) through the same
path a user would use. Two exporters: brevitas 0.13 (this environment's: dynamo, opset 18+, Gemm)
and brevitas 0.10 (FINN's pin: TorchScript, opset 13, `onnx.brevitas` domain, Quant -> Transpose ->
MatMul), which runs in FINN's interpreter (splitter/zoo_legacy.py) on the same weights.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core.errors import FinnsplitError

LEGACY_PYTHON_VARIABLE = "FINNSPLIT_BREVITAS010_PYTHON"
EXPORTERS = ("brevitas-0.13", "brevitas-0.10")
_RUN_SCRIPT = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"


@dataclass(frozen=True)
class ZooModel:
    """How to build one zoo model and the input it expects."""

    name: str
    family: str  # brevitas_examples package "bnn_pynq" or "imagenet", or "finnsplit" (splitter/zoo_resnet.py)
    config: str  # its model_with_cfg name, e.g. "cnv_1w1a"
    input_shape: tuple[int, ...]
    description: str
    # How a user quantizes its input (None: the model quantizes its float input itself).
    input_quant: tuple[str, str, str, str] | None = None  # (dtype, scale, mean, std) CLI strings
    # brevitas 0.13's dynamo export hands a residual block plain tensors where brevitas_examples' block
    # asserts QuantTensors at the add ("Perform add among QuantTensors"); its TorchScript export does not.
    dynamo: bool = True

    def build(self):  # noqa: ANN201 - a brevitas (torch) module
        """The brevitas model with its default initialisation."""
        if self.family == "finnsplit":
            from splitter.zoo_resnet import model_with_cfg as small

            return small(self.config)
        if self.family == "imagenet":
            from brevitas_examples.imagenet_classification.models import model_with_cfg

            return model_with_cfg(self.config, pretrained=None)[0]
        from brevitas_examples.bnn_pynq.models import model_with_cfg

        return model_with_cfg(self.config, pretrained=False)[0]


MODELS = {
    m.name: m
    for m in (
        ZooModel(
            "mobilenet-v1-w4a4", "imagenet", "quant_mobilenet_v1_4b", (1, 3, 224, 224),
            "MobileNetV1, 4-bit weights/activations (8-bit first and last layer weights), ImageNet",
            ("UINT8", "1/255", "0.485,0.456,0.406", "0.226"),
        ),
        ZooModel("cnv-w2a2", "bnn_pynq", "cnv_2w2a", (1, 3, 32, 32),
                 "VGG-style CNV, 2-bit weights/activations, max-pool, CIFAR-10 (32x32x3)"),
        ZooModel("tfc-w2a2", "bnn_pynq", "tfc_2w2a", (1, 1, 28, 28),
                 "TFC MLP 784-64-64-64-10, 2-bit weights/activations, MNIST"),
        ZooModel("cnv-w1a1", "bnn_pynq", "cnv_1w1a", (1, 3, 32, 32),
                 "CNV, binarized (bipolar weights/activations, 8-bit input layer): XNOR-popcount layers, CIFAR-10"),
        ZooModel("lfc-w1a1", "bnn_pynq", "lfc_1w1a", (1, 1, 28, 28),
                 "LFC MLP 784-1024-1024-1024-10, binarized (bipolar input too): XNOR-popcount layers, MNIST"),
        ZooModel("resnet8-w4a4", "finnsplit", "resnet8_4w4a", (1, 3, 32, 32),
                 "small residual net: 3 brevitas QuantBasicBlocks (16/32/64 ch., shared quantizer at each join), "
                 "4-bit, CIFAR-10", ("UINT8", "1/255", "", ""), dynamo=False),
        ZooModel("resnet18-w4a4", "bnn_pynq", "resnet18_4w4a", (1, 3, 32, 32),
                 "ResNet-18 (brevitas_examples QuantResNet), 4-bit weights/activations, CIFAR-10",
                 ("UINT8", "1/255", "", ""), dynamo=False),
        ZooModel("proxylessnas-w4a4", "finnsplit", "proxylessnas_mobile14_4b_f1024", (1, 3, 224, 224),
                 "ProxylessNAS-Mobile14 (brevitas_examples): inverted residual units joined by a shared quantizer, "
                 "4-bit (8-bit first layer weights), final block 1024 channels to fit a Zedboard, ImageNet",
                 ("UINT8", "1/255", "128/255", "128/255"), dynamo=False),
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
    name: str, path: str | Path, seed: int = 0, checkpoint: str | Path | None = None, dynamo: bool = True,
    exporter: str = "brevitas-0.13", save_state: str | Path | None = None,
) -> Path:
    """Export zoo model `name` to QONNX at `path`; random weights unless `checkpoint` is given.

    exporter "brevitas-0.10" exports with FINN's brevitas in its own interpreter, from the same
    weights brevitas 0.13 exports. `save_state`: also write the weights exported (a state_dict).
    """
    if exporter not in EXPORTERS:
        raise FinnsplitError(f"unknown exporter {exporter!r}; known: {', '.join(EXPORTERS)}")
    entry = _entry(name)
    if exporter == "brevitas-0.10":
        return export_legacy([(name, Path(path))], seed, {name: Path(checkpoint)} if checkpoint else None)[0]
    import torch
    from brevitas.export import export_qonnx

    model = _weighted(entry, seed, checkpoint)
    if save_state is not None:
        torch.save(model.state_dict(), save_state)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(entry.input_shape, generator=torch.Generator().manual_seed(seed))
    export_qonnx(model, example, export_path=str(path), dynamo=dynamo and entry.dynamo)
    _record_input_quant(path, entry)
    return path


def export_legacy(
    jobs: list[tuple[str, Path]], seed: int = 0, checkpoints: dict[str, Path] | None = None, opset: int = 13
) -> list[Path]:
    """Export zoo models with brevitas 0.10 (TorchScript, `onnx.brevitas` domain), one subprocess for all.

    A model without a checkpoint (a state_dict, by model name) gets the seeded random weights `export`
    gives it, made here with brevitas 0.13 and loaded by brevitas 0.10 (their state_dicts agree), so
    both exports hold the same network.
    """
    import tempfile

    checkpoints = checkpoints or {}
    with tempfile.TemporaryDirectory(prefix="finnsplit-zoo-") as scratch:
        specs = []
        for name, path in jobs:
            entry = _entry(name)
            state = Path(checkpoints.get(name) or Path(scratch) / f"{name}.pth")
            if name not in checkpoints:
                import torch

                torch.save(_weighted(entry, seed, None).state_dict(), state)
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            specs.append({"family": entry.family, "config": entry.config, "shape": list(entry.input_shape),
                          "checkpoint": str(state), "output": str(Path(path).resolve()), "opset": opset})
        jobs_file = Path(scratch) / "jobs.json"
        jobs_file.write_text(json.dumps(specs))
        _run_legacy(jobs_file)
    for name, path in jobs:
        _record_input_quant(Path(path), MODELS[name])
    return [Path(path) for _, path in jobs]


def legacy_python() -> str:
    """An interpreter with brevitas 0.10: $FINNSPLIT_BREVITAS010_PYTHON, else FINN's .venv-finn."""
    explicit = os.environ.get(LEGACY_PYTHON_VARIABLE)
    if explicit:
        return explicit
    for root in dict.fromkeys([Path(__file__).resolve().parents[1], Path.cwd().resolve()]):
        python = root / ".venv-finn" / "bin" / "python"
        if python.exists():
            return str(python)
    raise FinnsplitError(
        f"brevitas 0.10 was not found: no .venv-finn here and {LEGACY_PYTHON_VARIABLE} is not set; run "
        "`bash scripts/setup-finn.sh` (FINN's venv has brevitas 0.10.0) or point the variable at a Python with it")


def _run_legacy(jobs_file: Path) -> None:
    """Run splitter/zoo_legacy.py on `jobs_file` in the brevitas 0.10 interpreter."""
    python = legacy_python()
    script = Path(__file__).with_name("zoo_legacy.py")
    try:
        # Not `python script`: that would put splitter/ first on sys.path, where inspect.py shadows the stdlib's.
        done = subprocess.run([python, "-c", _RUN_SCRIPT, str(script), str(jobs_file)], capture_output=True,
                              text=True, timeout=1800, cwd=jobs_file.parent)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FinnsplitError(f"the brevitas 0.10 exporter ({python}) did not run: {exc}") from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise FinnsplitError(f"the brevitas 0.10 exporter ({python}) failed:\n{tail}")


def _entry(name: str) -> ZooModel:
    if name not in MODELS:
        raise FinnsplitError(f"unknown zoo model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def _weighted(entry: ZooModel, seed: int, checkpoint: str | Path | None):
    """The model with its checkpoint's weights, or seeded random ones."""
    import torch

    torch.manual_seed(seed)
    model = entry.build()
    if checkpoint is not None:
        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise FinnsplitError(f"checkpoint {str(checkpoint)!r} is not a PyTorch file of tensors (a state_dict saved "
                                 "with torch.save); torch.load(weights_only=True) refused it") from None
        except (OSError, RuntimeError, ValueError, EOFError) as exc:  # an unreadable or truncated file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FinnsplitError(f"checkpoint {str(checkpoint)!r} cannot be read as a state_dict: {first}") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        try:
            model.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, AttributeError) as exc:  # brevitas fills its lazy scales; torch says the rest
            problem = _state_mismatch(model.state_dict(), state) or str(exc).strip().splitlines()[0]
            raise FinnsplitError(f"checkpoint {str(checkpoint)!r} does not fit zoo model {entry.name!r}: {problem}") \
                from None
        model.eval()
    else:
        _randomize(model, seed, entry.input_shape)
    return model


def _state_mismatch(expected: dict, given: object) -> str:
    """Why state_dict `given` does not load into a model whose state_dict is `expected` ('' if not found here).

    Keys only in `given` are not counted: brevitas' activation scales appear in a model's state_dict
    only after it has run, and a checkpoint holds them.
    """
    if not isinstance(given, dict):
        return f"it holds a {type(given).__name__}, not a state_dict"
    missing = [k for k in expected if k not in given]
    shaped = [k for k in expected if k in given and hasattr(given[k], "shape")
              and tuple(given[k].shape) != tuple(expected[k].shape)]
    parts = []
    if shaped:
        k = shaped[0]
        parts.append(f"{len(shaped)} tensors of other shapes (e.g. {k}: {tuple(given[k].shape)} in the checkpoint, "
                     f"{tuple(expected[k].shape)} in the model)")
    if missing:
        parts.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
    return "; ".join(parts)


def _record_input_quant(path: Path, entry: ZooModel) -> None:
    """Store the zoo model's input quantization in the ONNX metadata (finnsplit reads it back)."""
    if entry.input_quant is None:
        return
    import onnx

    model = onnx.load(str(path))
    for key, value in zip(("input_dtype", "input_scale", "mean", "std"), entry.input_quant, strict=True):
        prop = model.metadata_props.add()
        prop.key, prop.value = f"finnsplit.{key}", value
    onnx.save(model, str(path))

"""Export zoo models with brevitas 0.10, FINN's pinned version, in an interpreter that has it (FINN's venv).

Run as a script, never imported by finnsplit (whose brevitas is 0.13):

    python -c "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')" splitter/zoo_legacy.py JOBS.json

(not `python splitter/zoo_legacy.py`, which would put splitter/ on sys.path, whose inspect.py shadows
the standard library's).

JOBS.json is a list of {"family", "config", "shape", "checkpoint", "output", "opset"}: the model
definition in brevitas_examples (family "bnn_pynq" or "imagenet", config e.g. "cnv_1w1a"; or "finnsplit":
splitter/zoo_resnet.py beside this script), the input
shape, a state_dict to load (strict), and where to write the QONNX file. splitter.zoo writes the
jobs and the checkpoints (seeded random weights made with brevitas 0.13, or the user's own).
Standard library, torch and brevitas only. brevitas 0.10 runs on torch 2.x only through the
TorchScript exporter (`dynamo=False`) and with `Tensor.rename(None)` as a no-op (brevitas calls it
on tensors TorchScript cannot name).
"""

from __future__ import annotations

import json
import sys


def _patch_rename(torch) -> None:
    """Make `tensor.rename(None)` return the tensor itself; other renames keep torch's behaviour."""
    original = torch.Tensor.rename

    def rename(self, *names, **rename_map):
        if names == (None,) and not rename_map:
            return self
        return original(self, *names, **rename_map)

    torch.Tensor.rename = rename


def _model(family: str, config: str):
    if family == "finnsplit":  # splitter/zoo_resnet.py, loaded by path: this script never imports splitter
        import os
        import runpy

        here = os.path.dirname(os.path.abspath(__file__))
        return runpy.run_path(os.path.join(here, "zoo_resnet.py"))["model_with_cfg"](config)
    if family == "bnn_pynq":
        from brevitas_examples.bnn_pynq.models import model_with_cfg

        return model_with_cfg(config, pretrained=False)[0]
    if family == "imagenet":
        from brevitas_examples.imagenet_classification.models import model_with_cfg

        return model_with_cfg(config, pretrained=None)[0]
    raise SystemExit(f"zoo_legacy: unknown model family {family!r}")


def main(argv: list[str]) -> int:
    """Run every export job of the JSON file named last in argv; returns the exit status."""
    import brevitas
    import torch
    from brevitas.export import export_qonnx

    if not brevitas.__version__.startswith("0.10"):
        print(f"zoo_legacy: this interpreter has brevitas {brevitas.__version__}, not 0.10", file=sys.stderr)
        return 3
    _patch_rename(torch)
    with open(argv[-1]) as f:
        jobs = json.load(f)
    for job in jobs:
        model = _model(job["family"], job["config"])
        state = torch.load(job["checkpoint"], map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state, strict=True)
        model.eval()
        example = torch.zeros(job["shape"])
        export_qonnx(model, example, export_path=job["output"], opset_version=job["opset"], dynamo=False)
        print(f"zoo_legacy: wrote {job['output']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Either brevitas exporter, the same dataflow layers: brevitas 0.10 (FINN's pin: TorchScript, opset 13,
onnx.brevitas domain, Quant -> Transpose -> MatMul, TensorNorm's Pow) and brevitas 0.13 (dynamo,
opset 18+, Gemm), both from the same weights, imported as FINN does (docs/lowering.md#import)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import ZOO

from splitter.graph import DataflowGraph
from splitter.load import load_and_lower
from splitter.verify import check_layers


def differences(new: DataflowGraph, old: DataflowGraph) -> list[str]:
    """Every difference in op type, attributes and integer parameters, layer by layer."""
    out = [] if len(new.layers) == len(old.layers) else [f"{len(new.layers)} layers vs {len(old.layers)}"]
    for a, b in zip(new.layers, old.layers, strict=False):
        if (a.name, a.op_type) != (b.name, b.op_type):
            out.append(f"{a.name} ({a.op_type}) vs {b.name} ({b.op_type})")
        out += [f"{a.name}.{key}: {a.attrs.get(key)} vs {b.attrs.get(key)}"
                for key in sorted(set(a.attrs) | set(b.attrs)) if a.attrs.get(key) != b.attrs.get(key)]
        out += [f"{a.name}.{key} differs" for key in sorted(set(a.params) | set(b.params))
                if key not in a.params or key not in b.params or not np.array_equal(a.params[key], b.params[key])]
    return out


@pytest.mark.parametrize("name", ZOO)
def test_both_exporters_lower_to_the_same_layers(name: str, zoo_dir: Path, zoo_legacy_dir: Path) -> None:
    _, new = load_and_lower(str(zoo_dir / f"{name}.onnx"), None, name)
    _, old = load_and_lower(str(zoo_legacy_dir / f"{name}.onnx"), None, name)
    found = differences(new, old)
    if name not in ("mobilenet-v1-w4a4", "resnet8-w4a4"):
        assert found == []
        np.testing.assert_array_equal(new.output_affine.scale, old.output_affine.scale)
        return
    # brevitas 0.10's TruncAvgPool2d keeps its input's scale after truncating by 2^shift (MobileNet: 6 bits,
    # the window has 49 values; resnet8: 2 bits, 64 values), 0.13 rescales by 2^shift / k^2; the pool's
    # integers agree, and so does every layer but the last bias, whose integers are in steps of
    # (pool scale x weight scale): the networks really differ there.
    bias = new.layers[-1]
    assert (bias.op_type, bias.attrs["Func"]) == ("ChannelwiseOp", "add")
    assert found and all(f.startswith(f"{bias.name}.") for f in found), found


@pytest.mark.parametrize("name", ["cnv-w2a2", "tfc-w2a2"])
def test_brevitas_010_exports_lower_without_manual_cleanup(name: str, zoo_legacy_dir: Path) -> None:
    raw = onnx.load(str(zoo_legacy_dir / f"{name}.onnx"))
    ops = [n.op_type for n in raw.graph.node]
    assert {(o.domain, o.version) for o in raw.opset_import} == {("", 13), ("onnx.brevitas", 1)}
    assert "Transpose" in ops and "Pow" in ops and "Gemm" not in ops  # what stopped the lowering before
    model, graph = load_and_lower(str(zoo_legacy_dir / f"{name}.onnx"), None, name)
    assert "Transpose" not in {n.op_type for n in model.graph.node}
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    checks, _ = check_layers(graph, model, np.random.default_rng(3).uniform(-1, 1, shape).astype(np.float32))
    assert checks and all(c.mismatches == 0 for c in checks)

"""Writing a deployment bundle: per partition a QONNX sub-model, a program, FINN configs; one manifest.

Layout and manifest fields: docs/bundle.md. The bundle is written into a scratch directory beside
the target and renamed into place at the end, so an interrupted build never leaves a half bundle
where a complete one was.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import onnx

from core.manifest import (
    FORMAT,
    VERSION,
    Boundary,
    BundleError,
    FinnIO,
    HostInput,
    HostOutput,
    HostSection,
    Manifest,
    ModelInfo,
    ModelInput,
    TensorEntry,
    file_entry,
    write_manifest,
)
from core.manifest import Partition as PartitionEntry
from core.manifest import Plan as PlanEntry
from core.manifest.schema import frozen
from core.packing import packed_size
from splitter import program
from splitter.bundle.finn_graph import finn_hw_model
from splitter.bundle.host_stages import host_stages
from splitter.bundle.submodel import sub_models
from splitter.cost import LayerCost, Resources
from splitter.finn.config import CONFIG_FILE, FOLDING_FILE, MODEL_FILE, write_build_config
from splitter.folding import apply_folding, finn_folding_config, finn_node_order
from splitter.graph import DataflowGraph, TensorSpec
from splitter.lowering.onnx_view import graph_input
from splitter.partition import Partition, Plan

Progress = Callable[[str], None]
QONNX_FILE = "qonnx_model.onnx"
# What FINN's build_dataflow_directory reads from a partition directory (model.onnx is FINN's HW-layer
# graph, docs/finn.md#the-hw-layer-graph), plus the QONNX sub-model for FINN's front end, and our program.
PARTITION_FILES = {"model": MODEL_FILE, "qonnx": QONNX_FILE, "program": "program.fsprog", "folding": FOLDING_FILE,
                   "finn_build": CONFIG_FILE}


def write_bundle(
    model: onnx.ModelProto, graph: DataflowGraph, plan: Plan, out_dir: str | Path,
    source: dict[str, Any] | None = None, progress: Progress = lambda _: None, replace: bool = True,
) -> Path:
    """Write the bundle for `plan` to `out_dir`; returns the manifest's path."""
    out = Path(out_dir)
    _check_target(out, replace)
    scratch = out.parent / f".{out.name}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        manifest = _write_contents(model, graph, plan, scratch, source or {}, progress)
        write_manifest(scratch, manifest)
        _swap_into_place(scratch, out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return out / "manifest.json"


def _check_target(out: Path, replace: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise BundleError(f"output {out} exists and is not a directory")
    if (out / "manifest.json").is_file():
        if not replace:
            raise BundleError(f"output {out} already holds a bundle (use --force to replace it)")
        return
    if any(out.iterdir()):
        raise BundleError(f"output {out} is a non-empty directory that is not a finnsplit bundle; refusing to "
                          "write into it")


def _swap_into_place(scratch: Path, out: Path) -> None:
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    scratch.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _write_contents(
    model: onnx.ModelProto, graph: DataflowGraph, plan: Plan, root: Path, source: dict[str, Any], progress: Progress
) -> Manifest:
    folds = [f for p in plan.partitions for f in p.foldings]
    folded = dataclasses.replace(graph, layers=[apply_folding(x, f) for x, f in zip(graph.layers, folds, strict=True)])
    progress(f"cutting the QONNX model into {len(plan.partitions)} sub-models")
    subs = sub_models(model, graph, [p.start for p in plan.partitions[1:]])
    parts = []
    for p, sub in zip(plan.partitions, subs, strict=True):
        progress(f"writing partition {p.index}: {len(p.layer_names)} layers for {p.board.name}")
        parts.append(_write_partition(root, folded, p, sub))
    return Manifest(
        format=FORMAT,
        version=VERSION,
        model=ModelInfo(graph.name, source.get("file"), source.get("sha256")),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        versions=frozen(_versions()),
        plan=_plan_entry(plan),
        host=_host_entry(graph, root, model),
        input=tensor_entry(graph.input),
        output=tensor_entry(graph.output),
        partitions=tuple(parts),
    )


def tensor_entry(spec: TensorSpec, onnx_shape: list[int] | None = None) -> TensorEntry:
    """Manifest entry of a tensor crossing a link: NHWC shape, datatype, dense packed size."""
    wire = f"{spec.dtype.name}:{','.join(map(str, spec.shape))}"
    return TensorEntry(spec.name, spec.dtype.name, tuple(spec.shape), wire,
                       packed_size(spec.num_elements, spec.dtype), None if onnx_shape is None else tuple(onnx_shape))


def boundary_entry(specs: list[TensorSpec], onnx_shapes: list[list[int]]) -> Boundary:
    """Manifest entry of a partition boundary: its tensors in wire order (docs/bundle.md#multi-tensor-boundaries)."""
    return Boundary(tuple(tensor_entry(spec, shape) for spec, shape in zip(specs, onnx_shapes, strict=True)))


def _write_partition(root: Path, graph: DataflowGraph, p: Partition, sub: onnx.ModelProto) -> PartitionEntry:
    part_dir = root / f"partition-{p.index}"
    part_dir.mkdir()
    paths = {key: part_dir / name for key, name in PARTITION_FILES.items()}
    onnx.save(sub, str(paths["qonnx"]))
    piece = graph.slice(p.start, p.stop, f"{graph.name}_p{p.index}")
    onnx.save(finn_hw_model(piece, p.foldings, p.costs), str(paths["model"]))
    program.write(piece, paths["program"])
    folding = finn_folding_config(piece.layers, p.foldings, p.board, graph.tensors)
    paths["folding"].write_text(json.dumps(folding, indent=2) + "\n")
    write_build_config(part_dir, p.board)
    return PartitionEntry(
        index=p.index,
        dir=part_dir.name,
        board=p.board.name,
        part=p.board.part,
        replicas=p.replicas,
        layers=tuple(p.layer_names),
        input=boundary_entry(piece.inputs, [_io_shape(i) for i in sub.graph.input]),
        output=boundary_entry(piece.outputs, [_io_shape(o) for o in sub.graph.output]),
        files=frozen({key: file_entry(root, path) for key, path in paths.items()}),
        finn_io=_finn_io(p, piece),
        predicted=frozen(_predicted(p, list(folding)[1:],
                                    finn_node_order(piece.layers, [len(c.nodes) for c in p.costs]))),
    )


def _finn_io(p: Partition, piece: DataflowGraph) -> FinnIO:
    """Elements per word of FINN's IODMA buffers: the first layer's input fold, the last's output fold.

    FINN packs each word (SIMD or PE elements of the first/last node's folded shape) to whole bytes
    separately; the board's finn-zynq backend converts between that and the dense wire format.
    """
    # a boundary of several tensors: each tensor's own IODMA, at the fold of the layer reading / writing it
    ins = [next(c.in_width for x, c in zip(piece.layers, p.costs, strict=True) if s.name in x.inputs)
           // s.dtype.bitwidth for s in piece.inputs]
    outs = [next(c.out_width for x, c in zip(reversed(piece.layers), reversed(p.costs), strict=True)
                 if s.name in x.outputs) // s.dtype.bitwidth for s in piece.outputs]
    return FinnIO(ins[0] if len(ins) == 1 else tuple(ins), outs[0] if len(outs) == 1 else tuple(outs))


def _io_shape(info: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value for d in info.type.tensor_type.shape.dim]


def _predicted(p: Partition, node_names: list[str], order: list[int]) -> dict[str, Any]:
    """The plan's prediction of partition `p`; its layers in FINN's node order (`order`, folding.finn_node_order)."""
    util = p.utilization
    entries = [_layer_entry(node, layer, c) for node, (layer, c) in zip(node_names, _nodes(p), strict=True)]
    return {
        "fps": round(p.fps, 3),
        "compute_fps": round(p.compute_fps, 3),
        "link_fps": round(p.link_fps, 3),
        "cycles": p.cycles,
        "bottleneck": p.bottleneck,
        "clock_mhz": p.board.clock_mhz,
        "resources": {k: round(v, 1) for k, v in p.resources.as_dict().items()},
        "utilization_pct": {k: round(100 * v, 2) for k, v in util.items()},
        "within_usable": p.within_usable,
        "power_w": round(p.power_w, 3),
        "bytes_in": p.bytes_in,
        "bytes_out": p.bytes_out,
        "finn_terms": finn_resources(sum((c.finn for c in p.costs), Resources())),
        "layers": [entries[i] for i in order],
    }


def _nodes(p: Partition) -> list[tuple[str, LayerCost]]:
    """(layer name, cost) per FINN node, in graph order; a standalone threshold's link counts with it."""
    out = []
    for name, cost in zip(p.layer_names, p.costs, strict=True):
        if not cost.parts:
            out.append((name, cost))
            continue
        *first, last = cost.parts
        link = cost.correction("inner_link")
        out += [(name, part) for part in first]
        out.append((name, dataclasses.replace(last, corrections=(*last.corrections, ("inner_link", link)))))
    return out


def finn_resources(res: Resources) -> dict[str, float]:
    """Resources under the keys of FINN's estimate_layer_resources.json."""
    return {"LUT": res.lut, "BRAM_18K": res.bram18, "URAM": res.uram, "DSP": res.dsp}


def _layer_entry(node: str, layer: str, cost: LayerCost) -> dict[str, Any]:
    """One layer's prediction: FINN's node name, cycles, FINN's term and each correction apart."""
    return {
        "node": node,
        "layer": layer,
        "impl": cost.impl,
        "cycles": cost.cycles,
        "finn": finn_resources(cost.finn),
        "corrections": {name: {k: round(v, 3) for k, v in res.as_dict().items() if v}
                        for name, res in cost.corrections},
    }


def _plan_entry(plan: Plan) -> PlanEntry:
    return PlanEntry(plan.strategy, round(plan.fps, 3), plan.limited_by, plan.boards_used, tuple(plan.unused_boards),
                     round(plan.power_w, 3))


def _host_entry(graph: DataflowGraph, root: Path, model: onnx.ModelProto) -> HostSection:
    """What the laptop does before the first board and after the last (docs/bundle.md#manifest)."""
    iq = graph.input_quant
    model_input = graph_input(model)
    files = {}
    if iq is None:
        host_input = HostInput("integer", graph.input.dtype.name)
    else:
        host_input = HostInput(iq.kind, iq.dtype.name, iq.scale, tuple(iq.mean), iq.std)
        if iq.kind == "onnx":
            (root / "host").mkdir(exist_ok=True)
            path = root / "host" / "input_quant.onnx"
            path.write_bytes(iq.model)
            files["input_quant"] = file_entry(root, path)
    affine = graph.output_affine
    if affine is None:
        host_output = HostOutput("integer")
    else:
        host_output = HostOutput("affine", tuple(affine.scale.astype(float).reshape(-1).tolist()),
                                 tuple(affine.bias.astype(float).reshape(-1).tolist()))
    host_input, host_output = host_stages(graph, root, host_input, host_output, files)  # input ops, output stage
    return HostSection(frozen(files), ModelInput(model_input.name, tuple(_io_shape(model_input))), host_input,
                       host_output, graph.onnx_output)


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("finnsplit", "onnx", "onnxruntime", "qonnx", "numpy", "brevitas"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    versions["program_format"] = str(program.VERSION)
    return versions

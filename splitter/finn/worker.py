"""Runs inside FINN's interpreter: FINN's flow up to its estimates, and FINN's execution of a partition.

`finnsplit finn-build --estimates-only` starts `python -m splitter.finn.worker PARTITION_DIR ...` in
FINN's own interpreter (FINN's docker, .venv-finn or $FINNSPLIT_FINN_PYTHON; env.py) with this
checkout on PYTHONPATH. It needs the standard library, numpy and FINN, never finnsplit's own
dependencies. It writes OUT_DIR/summary.json (docs/finn.md#estimates-without-vivado):

- "nodes": every node of FINN's final graph in order, with op type, name and folding attributes;
- "reports": FINN's estimate_layer_cycles / estimate_layer_resources / estimate_network_performance;
- "warnings": what FINN warned about (e.g. ApplyConfig's unused configurations);
- "executed": with --inputs, FINN's execution of the HW graph: the outputs go to OUT_DIR/outputs.npz,
  and every node FINN can run after specialization (the RTL variants, under exec_mode "cppsim") is
  run on the generic graph's inputs and compared with the generic graph's outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

ESTIMATE_STEPS = [
    "step_qonnx_to_finn",
    "step_tidy_up",
    "step_streamline",
    "step_convert_to_hw",
    "step_create_dataflow_partition",
    "step_specialize_layers",
    "step_target_fps_parallelization",
    "step_apply_folding_config",
    "step_minimize_bit_width",
    "step_generate_estimate_reports",
]
# Later steps that need no Xilinx tool: hw_codegen writes the HLS sources and fills the RTL templates.
CODEGEN_STEPS = ["step_hw_codegen"]
REPORTS = ("estimate_layer_cycles", "estimate_layer_resources", "estimate_network_performance",
           "op_and_param_counts")
FOLDING_ATTRS = ("PE", "SIMD", "ram_style", "ram_style_thresholds", "resType", "mem_mode", "parallel_window",
                 "runtime_writeable_weights", "depthwise", "noActivation", "binaryXnorMode", "inputDataType",
                 "weightDataType", "outputDataType", "accDataType")
SUMMARY = "summary.json"


def main(argv: list[str] | None = None) -> int:
    """Run FINN's estimate flow on one partition directory; 0 on success, 1 if FINN failed."""
    parser = argparse.ArgumentParser(prog="python -m splitter.finn.worker")
    parser.add_argument("partition_dir", type=Path)
    parser.add_argument("--output-dir", default="finn_estimates", help="relative to the partition directory")
    parser.add_argument("--codegen", action="store_true", help="also run step_hw_codegen")
    parser.add_argument("--inputs", type=Path, help="npz of integer NHWC inputs to execute with FINN")
    parser.add_argument("--target-fps", type=int, help="let FINN's SetFolding choose the folding for this rate "
                                                       "(instead of the partition's folding_config.json)")
    args = parser.parse_args(argv)
    part = args.partition_dir.resolve()
    out = part / args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, object] = {"partition_dir": str(part), "ok": False}
    started = time.time()
    try:
        summary.update(_estimate(part, out, args.codegen, args.target_fps))
        if args.inputs is not None:
            summary["executed"] = _execute(part, out, args.inputs, str(summary["steps"][-1]))
        summary["ok"] = True
    # FINN fails with anything from AssertionError to KeyError; all mean "FINN refused this partition".
    except Exception as exc:
        summary["error"] = f"{type(exc).__name__}: {exc}"
        summary["traceback"] = traceback.format_exc()
    summary["seconds"] = round(time.time() - started, 3)
    summary["finn_version"] = _finn_version()
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    if not summary["ok"]:
        print(f"FINN failed on {part.name}: {summary['error']}", file=sys.stderr)
        print(summary["traceback"], file=sys.stderr)
    return 0 if summary["ok"] else 1


def _estimate(part: Path, out: Path, codegen: bool, target_fps: int | None = None) -> dict[str, object]:
    """FINN's flow on part/model.onnx with the partition's own config, steps up to the estimates."""
    import finn.builder.build_dataflow as builder
    from finn.builder.build_dataflow_config import DataflowBuildConfig

    from splitter.finn.registry import prepare_board

    config = json.loads((part / "dataflow_build_config.json").read_text())
    steps = ESTIMATE_STEPS + (CODEGEN_STEPS if codegen else [])
    config.update(output_dir=str(out), steps=steps, generate_outputs=["estimate_reports"],
                  save_intermediate_models=True, enable_build_pdb_debug=False, verbose=False)
    if target_fps is not None:
        config.update(target_fps=target_fps, folding_config_file=None)
    notes: list[str] = []
    prepare_board(str(config["board"]), str(config["fpga_part"]), notes.append)
    cfg = DataflowBuildConfig.from_dict(config) if hasattr(DataflowBuildConfig, "from_dict") else \
        DataflowBuildConfig.from_json(json.dumps(config))
    caught: list[str] = []
    failure = _Tee(sys.stderr)
    with _in_directory(part), _recording_warnings(caught), _process_state_restored():
        sys.stderr = failure  # FINN prints a failed step's traceback to stderr and returns -1
        code = builder.build_dataflow_cfg(str(part / "model.onnx"), cfg)
    if code != 0:
        step = ([line for line in _log_tail(out / "build_dataflow.log", 50) if "Running step" in line] or ["?"])[-1]
        raise RuntimeError(f"{failure.exception() or f'FINN returned {code}'} (in {step.split('Running step: ')[-1]})")
    final = out / "intermediate_models" / f"{steps[-1]}.onnx"
    return {"steps": steps, "notes": notes, "warnings": caught, "nodes": _nodes(final),
            "attribute_errors": attribute_errors(part / "model.onnx"),
            "reports": {name: _read_json(out / "report" / f"{name}.json") for name in REPORTS}}


def _nodes(model_path: Path) -> list[dict[str, object]]:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    model = ModelWrapper(str(model_path))
    nodes = []
    for node in model.graph.node:
        entry: dict[str, object] = {"name": node.name, "op_type": node.op_type, "domain": node.domain}
        if node.domain.startswith("finn.custom_op.fpgadataflow"):
            inst = getCustomOp(node)
            declared = inst.get_nodeattr_types()
            entry["attrs"] = {k: _plain(inst.get_nodeattr(k)) for k in FOLDING_ATTRS if k in declared}
        nodes.append(entry)
    return nodes


def attribute_errors(model_path: Path) -> list[str]:
    """Attributes of the partition's HW graph that FINN's op does not declare, or declares of another kind."""
    from onnx import AttributeProto
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    kinds = {AttributeProto.INT: "i", AttributeProto.INTS: "ints", AttributeProto.STRING: "s",
             AttributeProto.FLOAT: "f", AttributeProto.FLOATS: "floats", AttributeProto.STRINGS: "strings"}
    errors = []
    for node in ModelWrapper(str(model_path)).graph.node:
        declared = getCustomOp(node).get_nodeattr_types()
        for attr in node.attribute:
            if attr.name not in declared:
                errors.append(f"{node.name} ({node.op_type}): FINN declares no attribute {attr.name}")
            elif kinds.get(attr.type) != declared[attr.name][0]:
                errors.append(f"{node.name}: attribute {attr.name} is {kinds.get(attr.type)}, FINN expects "
                              f"{declared[attr.name][0]}")
    return errors


def _execute(part: Path, out: Path, inputs_path: Path, final_step: str) -> dict[str, object]:
    """FINN's execution of the generic HW graph on each input, and of every node it can run specialized."""
    import numpy as np
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.custom_op.registry import getCustomOp

    # qonnx checks every output value against its datatype in a Python loop (minutes per MobileNet
    # frame); the same check runs vectorized below, on FINN's unrounded outputs.
    os.environ["SANITIZE_QUANT_TENSORS"] = "0"
    generic = ModelWrapper(str(part / "model.onnx"))
    # The last step's graph: specialized, folded and named (step_specialize_layers drops node names).
    specialized = ModelWrapper(str(out / "intermediate_models" / f"{final_step}.onnx"))
    inputs = np.load(inputs_path)
    # a partition cut inside a residual block has several graph inputs / outputs: tensor k of frame F
    # is the npz entry F#k (splitter.finn_check.frame_keys), in graph order
    in_names = [i.name for i in generic.graph.input]
    out_names = [o.name for o in generic.graph.output]
    frames = sorted({key.split("#")[0] for key in inputs.files})
    results, checked, range_errors = {}, {}, []
    for key in frames:
        keys = [key] if len(in_names) == 1 else [f"{key}#{k}" for k in range(len(in_names))]
        feed = {name: inputs[k].astype(np.float32) for name, k in zip(in_names, keys, strict=True)}
        context = execute_onnx(generic, feed, return_full_exec_context=True)
        range_errors += _range_errors(generic, context, key)
        if len(out_names) == 1:
            results[key] = context[out_names[0]]
        else:
            results.update({f"{key}#{k}": context[name] for k, name in enumerate(out_names)})
        for name, ok in _run_specialized(specialized, generic, context, getCustomOp).items():
            checked.setdefault(name, True)
            checked[name] = checked[name] and ok
    np.savez(out / "outputs.npz", **results)
    return {"inputs": frames, "outputs": "outputs.npz", "range_errors": range_errors,
            "specialized_nodes_run": checked,
            "specialized_nodes_skipped": [n.name for n in specialized.graph.node if n.name not in checked]}


def _run_specialized(specialized, generic, context: dict, get_op) -> dict[str, bool]:
    """Run each RTL node of the specialized graph on the generic graph's input of that layer."""
    import numpy as np

    out: dict[str, bool] = {}
    if len(specialized.graph.node) != len(generic.graph.node):
        raise RuntimeError(f"FINN's graph has {len(specialized.graph.node)} nodes, the partition's "
                           f"{len(generic.graph.node)}: the flow added or removed layers")
    for spec_node, gen_node in _matched_nodes(specialized, generic):
        if not spec_node.domain.endswith(".rtl"):
            continue  # HLS variants execute only as C++ compiled against Vitis HLS headers
        inst = get_op(spec_node)
        inst.set_nodeattr("exec_mode", "cppsim")
        local = {spec_node.input[0]: context[gen_node.input[0]]}
        for name in spec_node.input[1:]:
            local[name] = specialized.get_initializer(name)
        expected = context[gen_node.output[0]]
        local[spec_node.output[0]] = np.zeros_like(expected)
        inst.execute_node(local, specialized.graph)
        if spec_node.op_type == "ConvolutionInputGenerator_rtl" and inst.get_nodeattr("depthwise"):
            expected = _interleaved(inst, expected)
        out[spec_node.name] = bool(np.array_equal(local[spec_node.output[0]], expected))
    return out


def _matched_nodes(specialized, generic) -> list:
    """(specialized node, generic node) pairs, matched through the dataflow from the graph input.

    FINN renames the tensors (GiveReadableTensorNames) and may order a branching graph's nodes
    otherwise (SortGraph), so neither names nor positions match; the node reading the matched inputs
    with the matching op type does.
    """
    def data_inputs(model, node) -> list[str]:
        return [name for name in node.input if model.get_initializer(name) is None]

    tensors = {s.name: g.name for s, g in zip(specialized.graph.input, generic.graph.input, strict=True)}
    pairs, used = [], set()
    for spec_node in specialized.graph.node:
        wanted = [tensors.get(name) for name in data_inputs(specialized, spec_node)]
        match = next((n for n in generic.graph.node if n.name not in used and spec_node.op_type.startswith(n.op_type)
                      and data_inputs(generic, n) == wanted), None)
        if match is None:
            raise RuntimeError(f"FINN's node {spec_node.op_type} reading {list(spec_node.input)} has no counterpart "
                               "in the partition's graph: the flow changed its structure")
        used.add(match.name)
        tensors.update(zip(spec_node.output, match.output, strict=True))
        pairs.append((spec_node, match))
    return pairs


def _interleaved(swg, windows):
    """A depthwise window stream as FINN's SWG_rtl emits it: channels interleaved by SIMD, as its VVAU reads."""
    oh, ow = swg.get_nodeattr("OFMDim")
    kh, kw = swg.get_nodeattr("ConvKernelDim")
    channels, simd = swg.get_nodeattr("IFMChannels"), swg.get_nodeattr("SIMD")
    out = windows.reshape(1, oh, ow, kh * kw, channels // simd, simd).transpose(0, 1, 2, 4, 3, 5)
    return out.reshape(1, oh, ow, channels * kh * kw)


def _range_errors(model, context: dict, key: str) -> list[str]:
    """Tensors whose values are not integers of their annotated FINN datatype."""
    import numpy as np

    errors = []
    for node in model.graph.node:
        for name in node.output:
            dtype = model.get_tensor_datatype(name)
            values = context[name]
            ok = np.all(values == np.round(values)) and np.all((values >= dtype.min()) & (values <= dtype.max()))
            if not ok:
                errors.append(f"{key}: {name} has values outside {dtype.name}")
    return errors


class _Tee:
    """A stderr that also keeps what was written, to name the exception of a failed FINN step."""

    def __init__(self, stream) -> None:
        self.stream, self.text = stream, []

    def write(self, data: str) -> int:
        self.text.append(data)
        return self.stream.write(data)

    def flush(self) -> None:
        self.stream.flush()

    def exception(self) -> str:
        """The last 'SomeError: message' line written, or ""."""
        lines = [line.strip() for line in "".join(self.text).splitlines()]
        errors = [line for line in lines if line.split(":")[0].endswith(("Error", "Exception")) and ":" in line]
        return errors[-1] if errors else ""


@contextlib.contextmanager
def _in_directory(path: Path) -> Iterator[None]:
    """Relative paths in the build config resolve in the partition directory, as build_dataflow_directory does."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@contextlib.contextmanager
def _recording_warnings(caught: list[str]) -> Iterator[None]:
    """Keep FINN's warnings for the summary and still let them reach FINN's log."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        caught.append(f"{category.__name__}: {' '.join(str(message).split())}")
        original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


@contextlib.contextmanager
def _process_state_restored() -> Iterator[None]:
    """FINN's builder replaces sys.stdout/err on failure paths and configures the root logger."""
    stdout, stderr = sys.stdout, sys.stderr
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _read_json(path: Path) -> object | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _log_tail(path: Path, lines: int = 4) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()][-lines:]


def _finn_version() -> str | None:
    """The version setup-finn.sh records beside FINN's source, else the package's (FINN's own says 0.0.0)."""
    from importlib import metadata

    try:
        import finn.builder.build_dataflow as builder

        tag = Path(builder.__file__).resolve().parents[3] / ".finnsplit-version"
        return tag.read_text().strip() if tag.is_file() else metadata.version("finn")
    except (ImportError, OSError, metadata.PackageNotFoundError):
        return None


if __name__ == "__main__":
    sys.exit(main())

"""FINN's IODMAs of a partition with several graph inputs or outputs (docs/finn.md#multi-tensor-boundaries).

The .hwh parser picks up idma1/odma1; FINN's driver names the DMA of each graph input and output; and two
behaviours of FINN v0.10.1 that a bitstream of such a partition runs into, reproduced in FINN's Python
(InsertIODMA, Floorplan, CreateDataflowPartition and make_zynq_proj's naming loop need no Vivado): tripwires
that fail once FINN changes, so that docs/finn.md and the board agent's DMA mapping are revisited.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_finn_flow import finn_python  # noqa: F401 - fixture

from splitter.finn import HwhError, dma_order, iodma_ranges
from splitter.finn.env import FinnPython

HWH = Path(__file__).parents[1] / "data" / "finn-accel-kv260.hwh"
SECOND = ('<MEMRANGE ADDRESSBLOCK="Reg0" BASEVALUE="0xA0002000" HIGHVALUE="0xA0002FFF" INSTANCE="idma1" '
          'MEMTYPE="REGISTER" SLAVEBUSINTERFACE="s_axi_control_0"/>'
          '<MEMRANGE ADDRESSBLOCK="Reg0" BASEVALUE="0xA0003000" HIGHVALUE="0xA0003FFF" INSTANCE="odma1" '
          'MEMTYPE="REGISTER" SLAVEBUSINTERFACE="s_axi_control_0"/></MEMORYMAP>')


def test_hwh_of_a_two_tensor_partition_maps_every_iodma(tmp_path: Path) -> None:
    hwh = tmp_path / "finn-accel.hwh"
    hwh.write_text(HWH.read_text().replace("</MEMORYMAP>", SECOND, 1))
    assert iodma_ranges(hwh) == {
        "idma0": {"base": "0xA0000000", "range": 4096}, "idma1": {"base": "0xA0002000", "range": 4096},
        "odma0": {"base": "0xA0001000", "range": 4096}, "odma1": {"base": "0xA0003000", "range": 4096}}


def _driver(tmp_path: Path, inputs: str, outputs: str) -> Path:
    """FINN v0.10.1's template_driver.py io_shape_dict, filled as make_pynq_driver fills it."""
    path = tmp_path / "driver.py"
    path.write_text('io_shape_dict = {\n    "idt" : [DataType[\'UINT4\'], DataType[\'UINT4\']],\n'
                    f'    "input_dma_name" : {inputs},\n    "output_dma_name" : {outputs},\n'
                    '    "number_of_external_weights": 0,\n    "num_inputs" : 2,\n    "num_outputs" : 1,\n}\n')
    return path


def test_dma_order_reads_finns_driver(tmp_path: Path) -> None:
    assert dma_order(_driver(tmp_path, "['idma1', 'idma0']", "['odma0']")) == {
        "inputs": ["idma1", "idma0"], "outputs": ["odma0"]}
    with pytest.raises(HwhError, match="input_dma_name"):
        dma_order(_driver(tmp_path, "$INPUT_DMA_NAME$", "['odma0']"))
    with pytest.raises(HwhError, match="not readable"):
        dma_order(tmp_path / "none.py")


PROBE = r'''
import json, os, sys
os.environ.setdefault("FINN_BUILD_DIR", sys.argv[1])
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.transformation.infer_shapes import InferShapes
from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
from finn.transformation.fpgadataflow.floorplan import Floorplan
from finn.transformation.fpgadataflow.insert_iodma import InsertIODMA
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

def vi(n):
    return helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 4, 8])

common = dict(domain="finn.custom_op.fpgadataflow", backend="fpgadataflow", NumChannels=8, PE=1,
              numInputVectors=[1, 4, 4])

def dup(x, outs, dt):
    return helper.make_node("DuplicateStreams", [x], outs, NumOutputStreams=2, inputDataType=dt, **common)

def add(ins, y, dt):
    return helper.make_node("AddStreams", ins, [y], inputDataType=dt, **common)

def model_of(nodes, inputs, outputs, types):
    names = {t for n in nodes for t in [*n.input, *n.output]} - set(inputs) - set(outputs)
    graph = helper.make_graph(nodes, "g", [vi(x) for x in inputs], [vi(x) for x in outputs],
                              value_info=[vi(x) for x in sorted(names)])
    model = ModelWrapper(helper.make_model(graph, producer_name="probe"))
    for name, dt in types.items():
        model.set_tensor_datatype(name, DataType[dt])
    model = model.transform(InferShapes()).transform(SpecializeLayers("xc7z020clg400-1"))
    return model.transform(GiveUniqueNodeNames())

out = {}
# 1. a join reading both graph inputs (the skip at input 1), a fork writing a graph output from output 1
m = model_of([add(["a", "b"], "s", "UINT4"), dup("s", ["d0", "d1"], "UINT5"), dup("d0", ["e0", "e1"], "UINT5"),
              add(["e0", "e1"], "y", "UINT5")], ["a", "b"], ["y", "d1"],
             {"a": "UINT4", "b": "UINT4", "s": "UINT5", "d0": "UINT5", "d1": "UINT5", "e0": "UINT5", "e1": "UINT5",
              "y": "UINT6"})
m, _ = InsertIODMA(64).apply(m)
out["wiring"] = [[n.op_type, list(n.input), list(n.output)] for n in m.graph.node]
# 2. every graph input at port 0 of its consumer, every output at port 0 of its producer: the numbers
def block(x, y, dt):
    return [dup(x, [x + "0", x + "1"], dt), add([x + "0", x + "1"], y, dt)]
types = {n: "UINT4" for n in ("a", "b", "a0", "a1", "b0", "b1")} | {n: "UINT5" for n in ("m", "m0", "m1", "q", "p")}
m = model_of(block("a", "m", "UINT4") + block("m", "p", "UINT5") + block("b", "q", "UINT4"), ["a", "b"], ["p", "q"],
             types)
m = m.transform(InsertIODMA(64)).transform(Floorplan())
parent = m.transform(CreateDataflowPartition(partition_model_dir=os.path.join(sys.argv[1], "parts")))
idma = odma = 0
names = {}
for node in parent.graph.node:  # make_zynq_proj's naming loop (FINN v0.10.1, MakeZYNQProject.apply)
    producer = parent.find_producer(node.input[0]) if len(node.input) else None
    if producer is None:
        names[f"idma{idma}"] = node.input[0]
        idma += 1
    elif parent.find_consumers(node.output[0]) == []:
        names[f"odma{odma}"] = node.output[0]
        odma += 1
out["names"] = names
print("PROBE " + json.dumps(out))
'''


def test_finn_v0_10_1_iodma_wiring_and_numbering(finn_python: FinnPython, tmp_path: Path) -> None:  # noqa: F811
    """InsertIODMA rewires port 0 only: a join reading its second input from a graph input, and a fork writing
    a graph output from its second output, are mis-wired. make_zynq_proj numbers the DMAs in node order, not
    the graph's: idma0 reads the second input b, odma0 writes the second output q (docs/finn.md)."""
    done = subprocess.run([finn_python.python, "-c", PROBE, str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env=finn_python.env, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("PROBE ")), None)
    assert line is not None, done.stderr[-3000:]
    out = json.loads(line[len("PROBE "):])
    wiring = {tuple(outs): (op, ins) for op, ins, outs in out["wiring"]}
    join = next(ins for op, ins in wiring.values() if op == "AddStreams_hls" and "b" in ins)
    assert join[1] == "b" and join[0] != "a"  # b's DMA output went to port 0: a is read by nothing
    assert not any("a" in ins for op, ins in wiring.values() if op == "IODMA_hls")
    fork = next(outs for outs, (op, ins) in wiring.items() if op == "DuplicateStreams_hls" and ins == ["s"])
    assert fork[1] == "d1" and fork[0] != "d0"  # d1's DMA input replaced the main output d0
    assert out["names"] == {"idma0": "b", "idma1": "a", "odma0": "q", "odma1": "p"}


# ---- finnsplit's own IODMAs (splitter/finn/iodma.py): every tensor on the port it uses ------------------------

OURS = r'''
import json, os, sys
from types import SimpleNamespace
import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
from finn.transformation.fpgadataflow.floorplan import Floorplan
from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
from finn.transformation.fpgadataflow.insert_iodma import InsertIODMA
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
from finn.util.basic import pynq_native_port_width
from splitter.finn.iodma import InsertPortIODMA, step_finnsplit_insert_iodma
from splitter.finn.registry import prepare_board

generic_path, specialized_path, board, part, work = sys.argv[1:6]
prepare_board(board, part, lambda line: None)
width = pynq_native_port_width[board]

def ports(model):
    """(op type without _hls/_rtl, port) each graph input feeds and each graph output leaves, in graph order."""
    def base(node):
        return node.op_type.rsplit("_", 1)[0] if node.op_type.endswith(("_hls", "_rtl")) else node.op_type
    ins = [(base(c), list(c.input).index(i.name)) for i in model.graph.input for c in [model.find_consumer(i.name)]]
    outs = [(base(p), list(p.output).index(o.name)) for o in model.graph.output for p in [model.find_producer(o.name)]]
    return ins, outs

def dma_ends(model):
    """ports() of the graph between the IODMAs: what each IODMA feeds, and what each one drains."""
    ins, outs = [], []
    for i in model.graph.input:
        dma = model.find_consumer(i.name)
        assert dma.op_type == "IODMA_hls" and getCustomOp(dma).get_nodeattr("direction") == "in"
        c = model.find_consumer(dma.output[0])
        ins.append((c.op_type.rsplit("_", 1)[0], list(c.input).index(dma.output[0])))
    for o in model.graph.output:
        dma = model.find_producer(o.name)
        assert dma.op_type == "IODMA_hls" and getCustomOp(dma).get_nodeattr("direction") == "out"
        p = model.find_producer(dma.input[0])
        outs.append((p.op_type.rsplit("_", 1)[0], list(p.output).index(dma.input[0])))
    return ins, outs

def bypassed(model):
    """The model with every IODMA replaced by an Identity (IODMA_hls executes as nothing in Python)."""
    model = ModelWrapper(model.model.__deepcopy__())
    for k, node in enumerate(model.graph.node):
        if node.op_type == "IODMA_hls":
            model.graph.node.remove(node)
            model.graph.node.insert(k, helper.make_node("Identity", list(node.input), list(node.output)))
    return model

out = {}
# 1. the generic partition graph: same wiring, same execution, as the partition without IODMAs
generic = ModelWrapper(generic_path)
with_dma = generic.transform(InsertPortIODMA(width))
out["generic_ports"] = ports(generic)
out["generic_dma_ends"] = dma_ends(with_dma)
rng = np.random.default_rng(0)
feed = {}
for i in generic.graph.input:
    dt = generic.get_tensor_datatype(i.name)
    feed[i.name] = rng.integers(dt.min(), dt.max() + 1, generic.get_tensor_shape(i.name)).astype(np.float32)
want = execute_onnx(generic, feed)
got = execute_onnx(bypassed(with_dma), feed)
out["executed_equal"] = [bool(np.array_equal(want[o.name], got[o.name])) for o in generic.graph.output]
out["executed_outputs"] = len(generic.graph.output)
# 2. FINN's flow: our step, then ZynqBuild's prep up to CreateDataflowPartition (FINN v0.10.1 make_zynq_proj.py)
model = ModelWrapper(specialized_path)
before = ports(model)
model = step_finnsplit_insert_iodma(model, SimpleNamespace(board=board))
widths = sorted({getCustomOp(n).get_nodeattr("intfWidth") for n in model.get_nodes_by_op_type("IODMA_hls")})
dmas = len(model.get_nodes_by_op_type("IODMA_hls"))
model = model.transform(InferDataLayouts())
after_finn_insert = None
for trn in [InsertIODMA(width), InsertDWC(), SpecializeLayers(part), Floorplan(),
            CreateDataflowPartition(partition_model_dir=os.path.join(work, "parts"))]:
    if isinstance(trn, CreateDataflowPartition):
        out["before_partition"] = dma_ends(model)
        out["dmas_after_finn"] = len(model.get_nodes_by_op_type("IODMA_hls"))
    model = model.transform(trn)
    model = model.transform(GiveUniqueNodeNames())
    model = model.transform(GiveReadableTensorNames())
out.update(before=before, dmas=dmas, widths=widths, board_width=width)
# the parent graph: one StreamingDataflowPartition per IODMA, the layers in one or more (Floorplan starts a new
# one at a node an IODMA feeds, at any port); what each DMA feeds, through the partition's own graph
parent = model
def kernel(node):
    return ModelWrapper(getCustomOp(node).get_nodeattr("model"))
def feeds(k):
    dma = parent.find_consumer(parent.graph.input[k].name)
    sdp = parent.find_consumer(dma.output[0])
    return ports(kernel(sdp))[0][list(sdp.input).index(dma.output[0])]
def drains(k):
    dma = parent.find_producer(parent.graph.output[k].name)
    sdp = parent.find_producer(dma.input[0])
    return ports(kernel(sdp))[1][list(sdp.output).index(dma.input[0])]
out["partitioned"] = [[feeds(k) for k in range(len(parent.graph.input))],
                      [drains(k) for k in range(len(parent.graph.output))]]
out["sdps"] = len(parent.graph.node)
# make_zynq_proj's naming loop, then make_pynq_driver's input_dma_name / output_dma_name
names, idma, odma = {}, 0, 0
for node in parent.graph.node:
    producer = parent.find_producer(node.input[0]) if len(node.input) else None
    if producer is None:
        names[node.name] = f"idma{idma}"; idma += 1
    elif parent.find_consumers(node.output[0]) == []:
        names[node.name] = f"odma{odma}"; odma += 1
out["order"] = {"inputs": [names[parent.find_consumer(i.name).name] for i in parent.graph.input],
                "outputs": [names[parent.find_producer(o.name).name] for o in parent.graph.output]}
print("OURS " + json.dumps(out))
'''


def _cut_inside_a_block(tmp_path: Path) -> Path:
    """resnet8-w4a4 on six Zedboards: the plan cuts inside blocks (tests/finn/test_finn_flow.py)."""
    from splitter.build import BuildConfig, build
    from splitter.zoo import export

    export("resnet8-w4a4", tmp_path / "resnet8.onnx", seed=0)
    bundle = tmp_path / "bundle"
    build(BuildConfig(model=str(tmp_path / "resnet8.onnx"), output=str(bundle), boards="zedboard:6", finn="no",
                      replicate=False))
    return bundle


def test_our_iodmas_keep_every_tensor_on_its_port(finn_python: FinnPython, tmp_path: Path) -> None:  # noqa: F811
    """On every resnet8 partition with several boundary tensors: after step_finnsplit_insert_iodma and ZynqBuild's
    prep up to CreateDataflowPartition, each graph input feeds the port it fed and each output leaves the port it
    left; FINN's InsertIODMA adds none; the generic graph with the DMAs executes as without; the driver's DMA
    order names one DMA per tensor."""
    from splitter.finn.estimates import run_estimates

    bundle = _cut_inside_a_block(tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    multi = [p for p in manifest["partitions"] if len(p["input"]["tensors"]) > 1 or len(p["output"]["tensors"]) > 1]
    assert len(multi) >= 2
    run_estimates(bundle, [p["index"] for p in multi], log=lambda line: None, python=finn_python)
    seen_port_1 = False
    for part in multi:
        folder = bundle / part["dir"]
        final = folder / "finn_estimates" / "intermediate_models" / "step_generate_estimate_reports.onnx"
        done = subprocess.run([finn_python.python, "-c", OURS, str(folder / "model.onnx"), str(final), "Zedboard",
                               part["part"], str(tmp_path / f"work{part['index']}")], capture_output=True, text=True,
                              timeout=900, env=finn_python.environment(tmp_path / "finn-build"), check=False)
        line = next((x for x in done.stdout.splitlines() if x.startswith("OURS ")), None)
        assert line is not None, done.stderr[-3000:]
        out = json.loads(line[len("OURS "):])
        counts = [len(part["input"]["tensors"]), len(part["output"]["tensors"])]
        assert [len(x) for x in out["before"]] == counts
        assert out["generic_dma_ends"] == out["generic_ports"]
        assert out["executed_equal"] == [True] * out["executed_outputs"]
        assert out["dmas"] == sum(counts) == out["dmas_after_finn"]  # FINN's InsertIODMA skipped every one
        assert out["before_partition"] == out["before"]
        assert [[tuple(x) for x in side] for side in out["partitioned"]] == [[tuple(x) for x in side]
                                                                            for side in out["before"]]
        assert out["widths"] and max(out["widths"]) <= out["board_width"] == 64
        assert sorted(out["order"]["inputs"]) == [f"idma{k}" for k in range(counts[0])]
        assert sorted(out["order"]["outputs"]) == [f"odma{k}" for k in range(counts[1])]
        seen_port_1 |= any(port == 1 for side in out["before"] for _, port in side)
    assert seen_port_1  # a tensor FINN's InsertIODMA would mis-wire was among them

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

"""What FINN's build_dataflow_directory does, as far as finnsplit's runner can tell.

build_dataflow_cfg is the same build from a config object (the runner's path for a partition that
needs finnsplit's own IODMA step): it records the step names instead of running them. Both change
into the directory (or expect to be in it), replace sys.stdout for good (as FINN's main does), logs, and writes a
bitfile and reports, or fails as `FAKE_FINN_MODE` / `FAKE_FINN_FAIL_DIRS` tell it. Each call is kept in
CALLS with the board tables it saw.
"""

import io
import json
import os
import sys

from finn.util import basic

CALLS = []


def build_dataflow_directory(path_to_cfg_dir):
    with open(os.path.join(path_to_cfg_dir, "dataflow_build_config.json")) as f:
        cfg = json.load(f)
    cwd = os.getcwd()
    os.chdir(path_to_cfg_dir)
    return _build(path_to_cfg_dir, cfg, cwd, "build_dataflow_directory")


def build_dataflow_cfg(model_filename, cfg):
    """FINN's build from a DataflowBuildConfig; its steps may be callables (their __name__ is recorded)."""
    fields = dict(vars(cfg))
    if fields.get("steps") is not None:
        fields["steps"] = [s if isinstance(s, str) else s.__name__ for s in fields["steps"]]
    return _build(os.path.dirname(model_filename), fields, os.getcwd(), "build_dataflow_cfg")


def _build(path_to_cfg_dir, cfg, cwd, entry):
    CALLS.append({"dir": path_to_cfg_dir, "board": cfg["board"], "cwd": cwd, "entry": entry,
                  "steps": cfg.get("steps"), "part_map": dict(basic.pynq_part_map),
                  "part_map_all": dict(basic.part_map), "port_width": dict(basic.pynq_native_port_width),
                  "retired": set(basic.retired_pynq_boards)})
    sys.stdout = io.StringIO()
    out = cfg["output_dir"]
    os.makedirs(out + "/report", exist_ok=True)
    with open(out + "/build_dataflow.log", "a") as f:
        f.write("Running step: step_qonnx_to_finn [1/19]\n")
    mode = os.environ.get("FAKE_FINN_MODE", "ok")
    if os.path.basename(path_to_cfg_dir) in os.environ.get("FAKE_FINN_FAIL_DIRS", "").split(","):
        mode = "fail"
    if mode == "raise":
        raise RuntimeError("Synthesis failed, no bitfile found")
    if mode == "fail":
        with open(out + "/build_dataflow.log", "a") as f:
            f.write("ERROR: size of variable 'srl' is too large\n")
        return -1
    os.makedirs(out + "/bitfile", exist_ok=True)
    with open(out + "/bitfile/finn-accel.bit", "wb") as f:
        f.write(b"bitstream of " + os.path.basename(path_to_cfg_dir).encode())
    with open(os.environ["FAKE_FINN_HWH"], "rb") as src, open(out + "/bitfile/finn-accel.hwh", "wb") as f:
        f.write(src.read())
    with open(out + "/report/estimate_network_performance.json", "w") as f:
        json.dump({"critical_path_cycles": 1200, "max_cycles": 802816, "max_cycles_node_name": "MVAU_hls_3",
                   "estimated_throughput_fps": 124.56, "estimated_latency_ns": 12000.0}, f)
    return 0

"""FINN integration: build configs per board, FINN detection, and the runner against a stand-in FINN.

FINN cannot be installed here (PyPI's `finn` is an empty placeholder), so the runner tests put a small
stand-in package `finn` on sys.path holding only what run_build touches: the builder entry point,
the board maps of finn.util.basic and the Zynq shell template. The patched TCL board chain is run in
a real tclsh with Vivado's commands replaced by recording procs. A stand-in `bootgen` on PATH records
its arguments and writes the .bit.bin where bootgen does; the .hwh the stand-in FINN leaves is a
trimmed real one (tests/data/finn-accel-kv260.hwh).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from manifest_fixtures import TENSOR, manifest_json, partition_json

from core.errors import FinnsplitError
from core.manifest import BundleError, FinnBuild, file_entry, load_manifest
from splitter.boards import load_board
from splitter.finn import (
    BootgenError,
    BundleLayoutError,
    FinnBuildError,
    FinnConfigError,
    FinnError,
    FinnStatus,
    FinnUnavailableError,
    HwhError,
    MultiTensorBoundaryError,
    bootgen_arch,
    dataflow_build_config,
    finn_status,
    iodma_ranges,
    make_bitbin,
    record_finn_build,
    run_build,
    run_builds,
    synth_clk_period_ns,
    write_build_config,
)
from splitter.finn.__main__ import main as finn_main

# DataflowBuildConfig fields and DataflowOutputType values of FINN main
# (src/finn/builder/build_dataflow_config.py); a key FINN does not know would be dropped silently.
FINN_FIELDS = {
    "output_dir", "synth_clk_period_ns", "generate_outputs", "specialize_layers_config_file",
    "folding_config_file", "target_fps", "folding_two_pass_relaxation", "verify_steps", "verify_input_npy",
    "verify_expected_output_npy", "verify_save_full_context", "verify_save_rtlsim_waveforms",
    "stitched_ip_gen_dcp", "signature", "mvau_wwidth_max", "standalone_thresholds", "minimize_bit_width",
    "board", "shell_flow_type", "fpga_part", "auto_fifo_depths", "split_large_fifos", "auto_fifo_strategy",
    "force_python_rtlsim", "large_fifo_mem_style", "fifosim_input_throttle", "fifosim_save_waveform",
    "hls_clk_period_ns", "default_swg_exception", "vitis_platform", "vitis_floorplan_file",
    "vitis_opt_strategy", "save_intermediate_models", "enable_hw_debug", "enable_build_pdb_debug", "verbose",
    "steps", "start_step", "stop_step", "max_multithreshold_bit_width", "rtlsim_batch_size",
    "rtlsim_use_vivado_comps", "input_range_info",
}  # fmt: skip
FINN_OUTPUTS = {"stitched_ip", "estimate_reports", "out_of_context_synth", "rtlsim_performance", "bitfile",
                "pynq_driver", "deployment_package"}  # fmt: skip

BOARDS = [  # (board file, FINN board name, part)
    ("zedboard", "Zedboard", "xc7z020clg484-1"),
    ("pynq-z1", "Pynq-Z1", "xc7z020clg400-1"),
    ("pynq-z2", "Pynq-Z2", "xc7z020clg400-1"),
    ("ultra96-v2", "Ultra96-V2", "xczu3eg-sbva484-1-i"),
    ("zcu104", "ZCU104", "xczu7ev-ffvc1156-2-e"),
    ("kv260", "KV260_SOM", "xck26-sfvc784-2LV-c"),
]


# ---- build config (no FINN needed) ----------------------------------------------------------


def test_zedboard_config() -> None:
    config = dataflow_build_config(load_board("zedboard"))
    assert config["synth_clk_period_ns"] == 10.0  # 100 MHz
    assert config["board"] == "Zedboard" and config["fpga_part"] == "xc7z020clg484-1"
    assert config["shell_flow_type"] == "vivado_zynq"
    assert config["output_dir"] == "finn_output" and config["folding_config_file"] == "folding_config.json"
    assert config["generate_outputs"] == [
        "estimate_reports", "stitched_ip", "bitfile", "pynq_driver", "deployment_package",
    ]  # fmt: skip
    assert config["split_large_fifos"] is True and config["auto_fifo_depths"] is True
    assert config["standalone_thresholds"] is False and config["minimize_bit_width"] is False
    assert config["mvau_wwidth_max"] == 36 and config["save_intermediate_models"] is True
    assert config["enable_build_pdb_debug"] is False  # FINN's default True would wait in pdb on failure
    assert "target_fps" not in config and "steps" not in config
    assert json.loads(json.dumps(config)) == config


@pytest.mark.parametrize(("name", "finn_board", "part"), BOARDS)
def test_config_per_board(name: str, finn_board: str, part: str) -> None:
    config = dataflow_build_config(load_board(name))
    assert (config["board"], config["fpga_part"], config["shell_flow_type"]) == (finn_board, part, "vivado_zynq")
    assert set(config) <= FINN_FIELDS
    assert set(config["generate_outputs"]) <= FINN_OUTPUTS


def test_clock_period_survives_finns_truncating_fclk() -> None:
    # FINN's MakeZYNQProject: fclk_mhz = int(1 / (period_ns * 0.001)); 1000/60 alone gives 59
    assert int(1 / ((1000 / 60) * 0.001)) == 59
    zed = load_board("zedboard")
    for mhz in range(10, 401):
        period = dataflow_build_config(dataclasses.replace(zed, clock_mhz=float(mhz)))["synth_clk_period_ns"]
        assert int(1 / (period * 0.001)) == mhz
        assert 0 <= 1000 / mhz - period < 1e-6
    assert synth_clk_period_ns(187.5) == pytest.approx(5.333333)


def test_target_fps_steps_and_bad_values(tmp_path: Path) -> None:
    zed = load_board("zedboard")
    config = dataflow_build_config(zed, target_fps=123.6, steps=["step_qonnx_to_finn", "step_tidy_up"])
    assert config["target_fps"] == 124 and config["steps"] == ["step_qonnx_to_finn", "step_tidy_up"]
    for bad in ({"target_fps": 0}, {"target_fps": float("nan")}, {"steps": []}, {"steps": ["ok", ""]}):
        with pytest.raises(FinnConfigError):
            dataflow_build_config(zed, **bad)
    with pytest.raises(FinnConfigError, match="no shell flow"):
        dataflow_build_config(dataclasses.replace(zed, family="versal"))
    custom = dataclasses.replace(zed, name="myboard", finn_board=None)
    assert dataflow_build_config(custom)["board"] == "myboard"  # registered under its own name
    path = write_build_config(tmp_path, zed)
    assert path.name == "dataflow_build_config.json" and json.loads(path.read_text()) == dataflow_build_config(zed)


# ---- detection without FINN -----------------------------------------------------------------


@pytest.fixture
def no_finn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment with nothing of FINN: no variables, no Xilinx tools on PATH."""
    for name in ("FINN_ROOT", "FINN_BUILD_DIR", "XILINX_VIVADO", "FINN_TOOL_DIR_OVERRIDE"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    _forget_finn_modules()


def test_finn_status_reports_what_is_missing(no_finn: None) -> None:
    status = finn_status()
    assert isinstance(status, FinnStatus) and not status.available
    reasons = ["FINN_ROOT not set", "FINN_BUILD_DIR not set", "XILINX_VIVADO not set", "vivado not on PATH",
               "vitis_hls not on PATH", "bootgen not on PATH"]  # fmt: skip
    if importlib.util.find_spec("finn") is None:  # true here; inside FINN's docker the builder imports
        reasons.append("python package finn.builder.build_dataflow not importable (ModuleNotFoundError")
    for reason in reasons:
        assert reason in status.why
    assert status.vivado is None and status.finn_root is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.available = True  # type: ignore[misc]


def test_run_build_without_finn(no_finn: None, tmp_path: Path) -> None:
    partition = make_partition(tmp_path / "bundle" / "partition-0", "zedboard")
    with pytest.raises(FinnUnavailableError, match="vivado not on PATH") as exc:
        run_build(partition)
    assert isinstance(exc.value, FinnsplitError) and "docs/finn.md" in str(exc.value)
    with pytest.raises(BundleLayoutError, match=r"no model\.onnx"):
        run_build(tmp_path)
    assert finn_main(["--status"]) == 1


# ---- the runner against a stand-in FINN (tests/fakes/) ---------------------------------------------

REPO = Path(__file__).parents[2]
FAKES = Path(__file__).parents[1] / "fakes"  # the stand-in FINN and Xilinx tools (tests/fakes/README.md)
HWH = Path(__file__).parents[1] / "data" / "finn-accel-kv260.hwh"
HWH_IODMA = {"idma0": {"base": "0xA0000000", "range": 4096}, "odma0": {"base": "0xA0001000", "range": 4096}}


def _forget_finn_modules() -> None:
    for name in [m for m in sys.modules if m == "finn" or m.startswith("finn.")]:
        del sys.modules[name]


@pytest.fixture
def fake_finn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The stand-in FINN importable, its variables set and `vivado`/`vitis_hls` executables on PATH."""
    root = shutil.copytree(FAKES / "finn", tmp_path / "fake-finn")
    tools = tmp_path / "xilinx-bin"
    tools.mkdir()
    for tool in ("vivado", "vitis_hls"):
        shutil.copy(FAKES / "xilinx_tool.sh", tools / tool)
        (tools / tool).chmod(0o755)
    (tools / "bootgen").write_text(f"#!{sys.executable}\n{(FAKES / 'bootgen.py').read_text()}")
    (tools / "bootgen").chmod(0o755)
    monkeypatch.setenv("FAKE_BOOTGEN_LOG", str(tmp_path / "bootgen.log"))
    monkeypatch.setenv("FAKE_FINN_HWH", str(HWH))
    monkeypatch.delenv("FAKE_BOOTGEN_FAIL", raising=False)
    monkeypatch.delenv("FAKE_FINN_FAIL_DIRS", raising=False)
    monkeypatch.setenv("PATH", str(tools))
    monkeypatch.setenv("FINN_ROOT", str(root))
    monkeypatch.setenv("FINN_BUILD_DIR", str(tmp_path / "finn-build"))
    monkeypatch.setenv("XILINX_VIVADO", "/tools/Xilinx/Vivado/2022.2")
    monkeypatch.delenv("FINN_TOOL_DIR_OVERRIDE", raising=False)
    monkeypatch.delenv("FAKE_FINN_MODE", raising=False)
    _forget_finn_modules()
    monkeypatch.syspath_prepend(str(root))
    yield SimpleNamespace(
        builder=importlib.import_module("finn.builder.build_dataflow"),
        basic=importlib.import_module("finn.util.basic"),
        templates=importlib.import_module("finn.transformation.fpgadataflow.templates"),
        tools=tools,
    )
    _forget_finn_modules()


def make_partition(directory: Path, board: str) -> Path:
    """A partition directory as `finnsplit build` writes it, as far as FINN reads it."""
    directory.mkdir(parents=True)
    (directory / "model.onnx").write_bytes(b"the stand-in FINN does not read the model")
    (directory / "folding_config.json").write_text('{"Defaults": {}}')
    write_build_config(directory, load_board(board))
    return directory


def test_finn_status_with_finn(fake_finn: SimpleNamespace) -> None:
    status = finn_status()
    assert status.available and status.why == ""
    assert status.vivado == str(fake_finn.tools / "vivado") and status.vivado_version == "2022.2"
    assert status.bootgen == str(fake_finn.tools / "bootgen")


def test_zedboard_build_registers_board_and_returns_bitfile(fake_finn: SimpleNamespace, tmp_path: Path) -> None:
    partition = make_partition(tmp_path / "bundle" / "partition-0", "zedboard")
    cwd, stdout, lines = Path.cwd(), sys.stdout, []
    bitfile = run_build(partition, log=lines.append)
    assert bitfile == partition / "finn_output" / "bitfile" / "finn-accel.bit" and bitfile.is_file()
    (call,) = fake_finn.builder.CALLS
    assert call["dir"] == str(partition) and call["board"] == "Zedboard"
    # registered before FINN ran, in every map FINN reads
    assert call["part_map"]["Zedboard"] == "xc7z020clg484-1" and call["port_width"]["Zedboard"] == 64
    assert call["part_map_all"]["Zedboard"] == "xc7z020clg484-1"
    template = fake_finn.templates.custom_zynq_shell_template
    assert template.index('$BOARD == "Zedboard"') < template.index('puts "Unrecognized board"')
    assert template.count("%s") == 1  # still FINN's format string with one argument
    # what the stand-in FINN left behind is undone
    assert Path.cwd() == cwd and sys.stdout is stdout
    result = json.loads((bitfile.parent / "finn_result.json").read_text())
    assert result["bitfile_sha256"] == hashlib.sha256(b"bitstream of partition-0").hexdigest()
    assert result["hwh"] == "finn-accel.hwh" and result["board"] == "Zedboard"
    assert result["estimate_network_performance"]["estimated_throughput_fps"] == 124.56
    assert any("registered board Zedboard" in line for line in lines)
    # a second build registers nothing twice
    run_build(make_partition(tmp_path / "bundle" / "partition-1", "zedboard"), log=lines.append)
    assert fake_finn.templates.custom_zynq_shell_template.count('$BOARD == "Zedboard"') == 1


def test_retired_zynq7000_board_is_reenabled(fake_finn: SimpleNamespace, tmp_path: Path) -> None:
    lines: list[str] = []
    run_build(make_partition(tmp_path / "p", "pynq-z2"), log=lines.append)
    (call,) = fake_finn.builder.CALLS
    assert call["board"] == "Pynq-Z2" and call["retired"] == {"Pynq-Z1"}
    assert call["part_map"] == {"Pynq-Z1": "xc7z020clg400-1", "Pynq-Z2": "xc7z020clg400-1",
                                "Ultra96-V2": "xczu3eg-sbva484-1-i", "ZCU104": "xczu7ev-ffvc1156-2-e"}  # fmt: skip
    assert any("PR #1659" in line for line in lines) and not any("registered" in line for line in lines)


@pytest.mark.parametrize(("mode", "message"), [("fail", "returned -1"), ("raise", "RuntimeError: Synthesis failed")])
def test_failed_build(fake_finn: SimpleNamespace, tmp_path: Path, monkeypatch, mode: str, message: str) -> None:
    partition = make_partition(tmp_path / "bundle" / "partition-3", "zcu104")
    monkeypatch.setenv("FAKE_FINN_MODE", mode)
    cwd = Path.cwd()
    with pytest.raises(FinnBuildError) as exc:
        run_build(partition, log=lambda line: None)
    text = str(exc.value)
    assert message in text and str(partition) in text
    assert str(partition / "finn_output" / "build_dataflow.log") in text and "step_qonnx_to_finn" in text
    if mode == "fail":
        assert "size of variable 'srl' is too large" in text  # the tail of FINN's log
    assert Path.cwd() == cwd and not (partition / "finn_output" / "bitfile").exists()


def test_run_builds_reads_manifest(fake_finn: SimpleNamespace, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    for k in range(2):
        make_partition(bundle / f"partition-{k}", "zedboard")
    manifest = manifest_json([partition_json(0, other=1), partition_json(1)])
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert run_builds(bundle, [1], log=lambda line: None) == [bundle / "partition-1/finn_output/bitfile/finn-accel.bit"]
    assert [Path(c["dir"]).name for c in fake_finn.builder.CALLS] == ["partition-1"]
    assert len(run_builds(bundle, log=lambda line: None)) == 2
    with pytest.raises(BundleLayoutError, match=r"no partition \[5\]"):
        run_builds(bundle, [5])
    (bundle / "manifest.json").write_text(json.dumps(manifest_json([{**partition_json(0), "index": "0"}])))
    with pytest.raises(BundleLayoutError, match=r"'partitions\[0\]\.index' must be an integer, got '0'"):
        run_builds(bundle)
    (bundle / "manifest.json").write_text(json.dumps(manifest_json([partition_json(0), partition_json(0)])))
    with pytest.raises(BundleLayoutError, match="partition 0 is listed twice"):
        run_builds(bundle)
    (bundle / "manifest.json").write_text(json.dumps({"partitions": [{"index": 0, "dir": "partition-0"}]}))
    with pytest.raises(BundleLayoutError, match=r"cannot read the bundle manifest: .*format None"):
        run_builds(bundle)
    (bundle / "manifest.json").unlink()
    with pytest.raises(BundleLayoutError, match="cannot read the bundle manifest"):
        run_builds(bundle)


def test_module_entry_point(fake_finn: SimpleNamespace, tmp_path: Path, capsys) -> None:
    bundle = tmp_path / "bundle"
    make_partition(bundle / "p0", "kv260")
    (bundle / "manifest.json").write_text(json.dumps(manifest_json([partition_json(0, dir="p0")])))
    assert finn_main(["--status"]) == 0
    assert finn_main([str(bundle)]) == 0
    assert capsys.readouterr().out.strip().endswith("p0/finn_output/bitfile/finn-accel.bit")
    assert finn_main([str(bundle), "--partition", "7"]) == 1


# ---- what a board needs: .bit.bin, IODMA addresses, the manifest entry ---------------------------


def make_bundle(root: Path, boards: list[str]) -> Path:
    """A bundle as `finnsplit build` writes it, as far as run_builds and load_manifest read it."""
    parts = []
    for k, board in enumerate(boards):
        part = make_partition(root / f"partition-{k}", board)
        files = {
            "model": file_entry(root, part / "model.onnx"),
            "finn_build": file_entry(root, part / "dataflow_build_config.json"),
        }
        parts.append(partition_json(k, dir=part.name, board=board, files={n: e.to_json() for n, e in files.items()}))
    (root / "manifest.json").write_text(json.dumps(manifest_json(parts)))
    return root


def bootgen_calls(tmp_path: Path) -> list[dict]:
    log = tmp_path / "bootgen.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_iodma_ranges_of_a_real_hwh() -> None:
    # The PS's MEMORYMAP, not idma0's own (zynq_ps memory, one range of it MEMTYPE REGISTER)
    assert iodma_ranges(HWH) == HWH_IODMA


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t[: len(t) // 2], "not readable XML"),
        (lambda t: t.replace("EDKSYSTEM", "PROJECT"), "not a Vivado hardware"),
        (lambda t: t.replace('INSTANCE="odma0" IS_DATA', 'INSTANCE="other0" IS_DATA'), "for odma0"),
        (lambda t: t.replace('HIGHVALUE="0xA0000FFF"', 'HIGHVALUE="0xA000OFFF"'), "not hex addresses"),
        (lambda t: t.replace('HIGHVALUE="0xA0000FFF"', 'HIGHVALUE="0x9FFFFFFF"'), "below BASEVALUE"),
        (
            lambda t: t.replace(
                '</MEMORYMAP>\n      <PERIPHERALS>\n        <PERIPHERAL INSTANCE="idma0"/>',
                '<MEMRANGE BASEVALUE="0xA0002000" HIGHVALUE="0xA0002FFF" INSTANCE="idma0" '
                'MEMTYPE="REGISTER"/></MEMORYMAP><PERIPHERALS><PERIPHERAL INSTANCE="idma0"/>',
            ),
            "idma0 is mapped twice",
        ),
    ],
)
def test_unusable_hwh(tmp_path: Path, edit, message: str) -> None:
    bad = tmp_path / "finn-accel.hwh"
    bad.write_text(edit(HWH.read_text()))
    with pytest.raises(HwhError, match=message) as exc:
        iodma_ranges(bad)
    assert exc.value.path == str(bad) and str(bad) in str(exc.value)
    with pytest.raises(HwhError, match="missing"):
        iodma_ranges(tmp_path / "none.hwh")


@pytest.mark.parametrize(("name", "finn_board", "part"), BOARDS)
def test_bootgen_arch_per_part(name: str, finn_board: str, part: str) -> None:
    assert bootgen_arch(part) == ("zynq" if part.startswith("xc7z") else "zynqmp")
    with pytest.raises(FinnConfigError, match="xcvc1902"):
        bootgen_arch("xcvc1902-vsva2197-2MP-e")


def test_builds_record_bitbin_iodma_and_estimates(fake_finn: SimpleNamespace, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle", ["zedboard", "kv260"])
    load_manifest(bundle)  # a bundle without FINN builds loads as before
    assert run_builds(bundle, log=lambda line: None) == [
        bundle / f"partition-{k}/finn_output/bitfile/finn-accel.bit" for k in range(2)
    ]
    # bootgen ran in the bitfile's folder on a BIF naming it, with the part's architecture
    calls = bootgen_calls(tmp_path)
    assert [c["args"] for c in calls] == [
        ["-image", "finn-accel.bif", "-arch", arch, "-process_bitstream", "bin", "-w"] for arch in ("zynq", "zynqmp")
    ]
    assert [Path(c["cwd"]) for c in calls] == [bundle / f"partition-{k}/finn_output/bitfile" for k in range(2)]
    assert calls[0]["bif"] == "all:\n{\n    finn-accel.bit\n}\n"
    assert calls[1]["bif"] == "all:\n{\n    [destination_device = pl] finn-accel.bit\n}\n"
    manifest = load_manifest(bundle, verify=True)  # checks the new files' sizes and hashes too
    for k, (part, arch) in enumerate(zip(manifest.partitions, ("zynq", "zynqmp"), strict=True)):
        finn = part.finn
        assert finn is not None
        folder = bundle / f"partition-{k}/finn_output/bitfile"
        names = {"bitfile": "finn-accel.bit", "bitbin": "finn-accel.bit.bin", "hwh": "finn-accel.hwh"}
        assert {key: e.path for key, e in finn.files.items()} == {
            key: f"partition-{k}/finn_output/bitfile/{name}" for key, name in names.items()
        }
        bit = (folder / "finn-accel.bit").read_bytes()
        assert (folder / "finn-accel.bit.bin").read_bytes()[:8] == bit[3::-1] + bit[7:3:-1]  # the stand-in's swap
        assert finn.iodma == HWH_IODMA and finn.arch == arch
        assert finn.estimates["max_cycles"] == 802816 and finn.versions["vivado"] == "2022.2"
        result = json.loads((folder / "finn_result.json").read_text())
        assert result["bitbin"] == "finn-accel.bit.bin" and result["iodma"] == HWH_IODMA
        assert result["bitbin_sha256"] == finn.files["bitbin"].sha256
    assert not list(bundle.glob(".manifest.json.*.tmp"))
    # a board must not load a corrupted bitstream
    bitbin = bundle / "partition-1/finn_output/bitfile/finn-accel.bit.bin"
    bitbin.write_bytes(b"\xff" + bitbin.read_bytes()[1:])
    with pytest.raises(BundleError, match=r"partition-1/finn_output/bitfile/finn-accel\.bit\.bin is corrupted"):
        load_manifest(bundle)


def _cut_inside_a_block(bundle: Path, index: int) -> None:
    """Give partition `index` of a forged bundle two input tensors, as a cut inside a residual block does."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    tensors = [{**TENSOR, "tensor": name} for name in ("branch", "skip")]
    manifest["partitions"][index]["input"] = {"tensors": tensors, "wire": "+".join(t["wire"] for t in tensors),
                                              "packed_bytes": sum(t["packed_bytes"] for t in tensors)}
    manifest["partitions"][index]["finn_io"]["in_word_elems"] = [1, 1]
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_a_multi_tensor_partition_builds_with_finnsplits_iodma_step(fake_finn: SimpleNamespace, tmp_path: Path) -> None:
    """FINN v0.10.1 mis-wires a second boundary tensor's IODMA: such a partition is built with
    step_finnsplit_insert_iodma right before step_synthesize_bitfile; the others as before."""
    bundle = make_bundle(tmp_path / "bundle", ["zedboard", "zedboard"])
    _cut_inside_a_block(bundle, 1)
    cwd = Path.cwd()
    assert len(run_builds(bundle, log=lambda line: None)) == 2
    single, multi = fake_finn.builder.CALLS
    assert single["entry"] == "build_dataflow_directory" and single["steps"] is None
    steps = importlib.import_module("finn.builder.build_dataflow_config").default_build_dataflow_steps
    at = steps.index("step_synthesize_bitfile")
    assert multi["entry"] == "build_dataflow_cfg" and multi["board"] == "Zedboard"
    assert multi["steps"] == [*steps[:at], "step_finnsplit_insert_iodma", *steps[at:]]
    assert Path.cwd() == cwd and load_manifest(bundle, verify=True).partitions[1].finn is not None


def test_a_multi_tensor_partition_without_a_bitfile_step_is_refused(fake_finn: SimpleNamespace,
                                                                    tmp_path: Path) -> None:
    """A step list without step_synthesize_bitfile leaves our IODMA step no place: `finn-build` refuses, without
    a traceback, with exit code 2, before anything is written to the bundle (docs/finn.md#multi-tensor-boundaries)."""
    bundle = make_bundle(tmp_path / "bundle", ["zedboard", "zedboard"])
    _cut_inside_a_block(bundle, 1)
    config = bundle / "partition-1" / "dataflow_build_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "steps": ["step_qonnx_to_finn"]}))
    before = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(fake_finn.builder.__file__).parents[2]), str(REPO)])}
    done = subprocess.run([sys.executable, "-c", "from cli.main import main; main()", "finn-build", str(bundle)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("error: refusing")
    for words in ("partition 1 (partition-1): inputs branch, skip", "InsertIODMA", "step_synthesize_bitfile",
                  "--estimates-only", "between residual blocks"):
        assert words in done.stderr
    assert fake_finn.builder.CALLS == [] and not bootgen_calls(tmp_path)
    assert {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()} == before
    # the same refusal from run_build and from run_builds; partition 0 still builds
    with pytest.raises(MultiTensorBoundaryError, match="partition 1 "):
        run_build(bundle / "partition-1", log=lambda line: None)
    with pytest.raises(MultiTensorBoundaryError, match="partition 1 "):
        run_builds(bundle, log=lambda line: None)
    assert fake_finn.builder.CALLS == [] and load_manifest(bundle, verify=False).partitions[1].finn is None
    assert run_builds(bundle, [0], log=lambda line: None) == [bundle / "partition-0/finn_output/bitfile/finn-accel.bit"]


def test_partial_build_keeps_finished_partitions(fake_finn: SimpleNamespace, tmp_path: Path, monkeypatch) -> None:
    bundle = make_bundle(tmp_path / "bundle", ["zedboard", "zedboard", "zedboard"])
    monkeypatch.setenv("FAKE_FINN_FAIL_DIRS", "partition-1")
    with pytest.raises(FinnBuildError, match="partition-1"):
        run_builds(bundle, log=lambda line: None)
    assert [p.finn is not None for p in load_manifest(bundle).partitions] == [True, False, False]
    monkeypatch.delenv("FAKE_FINN_FAIL_DIRS")
    run_builds(bundle, [1, 2], log=lambda line: None)
    assert all(p.finn is not None for p in load_manifest(bundle).partitions)
    # a failed rebuild withdraws that partition's record: its files are no longer the recorded ones
    monkeypatch.setenv("FAKE_FINN_FAIL_DIRS", "partition-2")
    with pytest.raises(FinnBuildError):
        run_builds(bundle, [2], log=lambda line: None)
    assert [p.finn is not None for p in load_manifest(bundle).partitions] == [True, True, False]


def test_bootgen_missing_or_failing(fake_finn: SimpleNamespace, tmp_path: Path, monkeypatch) -> None:
    partition = make_partition(tmp_path / "bundle" / "partition-0", "zedboard")
    (fake_finn.tools / "bootgen").unlink()
    with pytest.raises(FinnUnavailableError, match="bootgen not on PATH"):
        run_build(partition, log=lambda line: None)  # before hours of FINN, not after
    assert fake_finn.builder.CALLS == []
    bitfile = tmp_path / "finn-accel.bit"
    bitfile.write_bytes(b"bitstream")
    with pytest.raises(BootgenError, match="bootgen not on PATH") as exc:
        make_bitbin(bitfile, "xc7z020clg484-1")
    assert isinstance(exc.value, FinnError) and exc.value.bitfile == str(bitfile)
    (fake_finn.tools / "bootgen").write_text(f"#!{sys.executable}\n{(FAKES / 'bootgen.py').read_text()}")
    (fake_finn.tools / "bootgen").chmod(0o755)
    monkeypatch.setenv("FAKE_BOOTGEN_FAIL", "1")
    with pytest.raises(BootgenError, match=r"exited with 1: \[ERROR\]  : stand-in bootgen told to fail"):
        run_build(partition, log=lambda line: None)


def test_malformed_hwh_fails_the_build(fake_finn: SimpleNamespace, tmp_path: Path, monkeypatch) -> None:
    bundle = make_bundle(tmp_path / "bundle", ["zedboard"])
    broken = tmp_path / "broken.hwh"
    broken.write_text(HWH.read_text()[:5000])
    monkeypatch.setenv("FAKE_FINN_HWH", str(broken))
    hwh = bundle / "partition-0/finn_output/bitfile/finn-accel.hwh"
    with pytest.raises(HwhError, match=f"{hwh}: not readable XML"):
        run_builds(bundle, log=lambda line: None)
    assert load_manifest(bundle).partitions[0].finn is None


def test_concurrent_records_are_not_lost(tmp_path: Path) -> None:
    # Builds of several partitions may run at once (one FINN container each) on the same bundle.
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    n = 24
    parts = [partition_json(k) for k in range(n)]
    (bundle / "manifest.json").write_text(json.dumps(manifest_json(parts)))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: record_finn_build(bundle, k, FinnBuild(files={}, iodma={"k": k})), range(n)))
    recorded = json.loads((bundle / "manifest.json").read_text())["partitions"]
    assert [p.get("finn", {}).get("iodma") for p in recorded] == [{"k": k} for k in range(n)]
    with pytest.raises(BundleLayoutError, match="index 99"):
        record_finn_build(bundle, 99, FinnBuild(files={}, iodma={}))


# ---- the TCL branch in a real Tcl interpreter ---------------------------------------------------

TCLSH = shutil.which("tclsh")
VIVADO_PROCS = """
proc current_project {} { return proj }
proc set_property {args} { puts "set_property $args" }
proc get_board_parts {args} { return $::installed_parts }
"""


@pytest.mark.skipif(TCLSH is None, reason="needs tclsh")
@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        (
            "avnet.com:zedboard:part0:1.3 avnet.com:zedboard:part0:1.4",
            "set_property board_part avnet.com:zedboard:part0:1.4 proj",  # the newest version
        ),
        ("", "WARNING: no board files match *:zedboard:part0:*; building Zedboard without a board preset"),
    ],
)
def test_zedboard_tcl_branch_runs(fake_finn: SimpleNamespace, tmp_path: Path, installed: str, expected: str) -> None:
    run_build(make_partition(tmp_path / "p", "zedboard"), log=lambda line: None)
    chain = fake_finn.templates.custom_zynq_shell_template % ("Zedboard",)
    script = f"set installed_parts {{{installed}}}\n{VIVADO_PROCS}\n{chain}"
    out = subprocess.run([TCLSH], input=script, capture_output=True, text=True, check=True, timeout=10).stdout
    assert out.splitlines() == [expected, "ZYNQ_TYPE zynq_7000"]

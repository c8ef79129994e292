"""The manifest's types (core.manifest): one reader, one writer, and a BundleError naming the file and
field for anything malformed, at any depth (never a KeyError, TypeError or traceback)."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from manifest_fixtures import TENSOR, manifest_json, partition_json

from core.manifest import (
    BundleError,
    FinnBuild,
    load_manifest,
    parse_manifest,
    update_manifest,
    write_manifest,
)

SHA = "ab" * 32


def full_manifest() -> dict[str, Any]:
    """A manifest using every optional part: a two-tensor boundary, host stages, a FINN build, estimates."""
    two = {"tensors": [{**TENSOR, "onnx_shape": [1, 4]}, {**TENSOR, "tensor": "skip", "onnx_shape": [1, 4]}],
           "wire": "UINT8:1,4+UINT8:1,4", "packed_bytes": 8}
    one = {**TENSOR, "onnx_shape": [1, 4], "tensors": [{**TENSOR, "onnx_shape": [1, 4]}]}
    finn = {"files": {"bitbin": {"path": "partition-1/a.bit.bin", "bytes": 3, "sha256": SHA}}, "arch": "zynq",
            "iodma": {"idma0": {"base": "0x40000000", "range": 4096}}, "estimates": {"max_cycles": 5},
            "versions": {"finn": "0.10", "vivado": "2022.2"}}
    data = manifest_json([partition_json(0, input=one, output=two),
                          partition_json(1, input=two, output=one, finn_estimates={"ok": True}, finn=finn)])
    data["host"]["files"] = {"output_stage": {"path": "host/output_stage.onnx", "bytes": 1, "sha256": SHA}}
    data["host"]["input"] = {"kind": "onnx", "dtype": "INT2", "scale": 1.0, "mean": [], "std": 1.0,
                             "ops": ["Mul", "Quant"], "factor": 2, "shift": [1, 2, 3]}
    data["host"]["output"] = {"kind": "affine", "scale": [0.5], "bias": [0.0],
                              "stage": {"input": "y", "shape": [1, 10], "ops": ["Softmax"]}}
    return data


def write(root: Path, data: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(json.dumps(data, indent=2) + "\n")
    return root


def test_an_unchanged_manifest_is_written_byte_for_byte(tmp_path: Path) -> None:
    for k, data in enumerate((manifest_json([partition_json(0)]), full_manifest())):
        root = write(tmp_path / str(k), data)
        before = (root / "manifest.json").read_bytes()
        write_manifest(root, load_manifest(root, verify=False))
        assert (root / "manifest.json").read_bytes() == before
        assert not list(root.glob(".manifest.json.*"))  # the temporary file is gone


def test_the_types_read_every_field(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, full_manifest()), verify=False)
    first, second = manifest.partitions
    assert [t.tensor for t in first.output.tensors] == ["x", "skip"]
    assert first.output.wire == "UINT8:1,4+UINT8:1,4" and first.output.packed_bytes == 8
    assert second.finn is not None and second.finn.files["bitbin"].path == "partition-1/a.bit.bin"
    assert second.finn.iodma["idma0"]["base"] == "0x40000000" and second.finn_estimates == {"ok": True}
    assert manifest.host.input.shift == (1, 2, 3) and manifest.host.output.stage.ops == ("Softmax",)
    assert [f.path for f in manifest.all_files()] == ["host/output_stage.onnx", "partition-1/a.bit.bin"]
    assert manifest.partition(1) is second and manifest.boards == 2
    with pytest.raises(BundleError, match="no partition 7"):
        manifest.partition(7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.replicas = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        first.predicted["fps"] = 0  # type: ignore[index]  # open-ended entries are read-only mappings


def test_changes_go_through_replace_and_the_one_writer(tmp_path: Path) -> None:
    root = write(tmp_path, manifest_json([partition_json(0), partition_json(1)]))
    finn = FinnBuild(files={}, iodma={"idma0": {"base": "0x1", "range": 16}}, arch="zynq")
    update_manifest(root, lambda m: m.replace_partition(1, finn=finn))
    data = json.loads((root / "manifest.json").read_text())
    assert data["partitions"][1]["finn"] == {"files": {}, "arch": "zynq", "iodma": {"idma0": {"base": "0x1",
                                                                                              "range": 16}}}
    assert "finn" not in data["partitions"][0]
    assert load_manifest(root).partitions[1].finn == finn
    update_manifest(root, lambda m: m.replace_partition(1, finn=None))
    assert json.loads((root / "manifest.json").read_text()) == manifest_json([partition_json(0), partition_json(1)])


def test_a_version_1_manifest_loads_and_is_written_as_version_2(tmp_path: Path) -> None:
    data = manifest_json([partition_json(0, input=dict(TENSOR), output=dict(TENSOR))], version=1)
    manifest = load_manifest(write(tmp_path, data), verify=False)
    assert manifest.version == 1 and manifest.partitions[0].input.tensors[0].tensor == "x"
    write_manifest(tmp_path, manifest)
    again = json.loads((tmp_path / "manifest.json").read_text())
    assert again["version"] == 2 and again["partitions"][0]["input"] == {**TENSOR, "tensors": [TENSOR]}


@pytest.mark.parametrize(("change", "field"), [
    (lambda m: m.pop("plan"), "'plan' is missing"),
    (lambda m: m.update(model=[]), "'model' must be an object, got []"),
    (lambda m: m["input"].update(packed_bytes=True), "'input.packed_bytes' must be an integer, got True"),
    (lambda m: m["host"]["model_input"].update(shape=[1, "4"]), "'host.model_input.shape' must be a list of integers"),
    (lambda m: m["host"]["output"].update(stage={"input": "y", "shape": [1], "ops": "Softmax"}),
     "'host.output.stage.ops' must be a list, got 'Softmax'"),
    (lambda m: m.update(partitions="all"), "'partitions' must be a list"),
    (lambda m: m["partitions"][0].update(replicas="2"), "'partitions[0].replicas' must be an integer, got '2'"),
    (lambda m: m["partitions"][0].pop("finn_io"), "'partitions[0].finn_io' is missing"),
    (lambda m: m["partitions"][0]["finn_io"].pop("in_word_elems"), "'partitions[0].finn_io.in_word_elems' is missing"),
    (lambda m: m["partitions"][0]["input"].update(tensors=[]), "'partitions[0].input.tensors' must be a non-empty"),
    (lambda m: m["partitions"][0]["output"]["tensors"][0].update(shape="1,4"),
     "'partitions[0].output.tensors[0].shape' must be a list, got '1,4'"),
    (lambda m: m["partitions"][0].update(finn={"files": {}}), "'partitions[0].finn.iodma' is missing"),
    (lambda m: m["partitions"][0].update(files={"model": {"path": "../x", "bytes": 1, "sha256": SHA}}),
     "file path '../x' has an empty, '.' or '..' component"),
    (lambda m: m["partitions"][0].update(files={"model": {"path": "m", "bytes": -1, "sha256": SHA}}),
     "m: 'bytes' must be a non-negative integer, got -1"),
    (lambda m: m["partitions"][0].update(predicted=[1]), "'partitions[0].predicted' must be an object, got [1]"),
])
def test_a_malformed_manifest_names_its_file_and_field(tmp_path: Path, change: Any, field: str) -> None:
    data = manifest_json([partition_json(0)])
    change(data)
    root = write(tmp_path, data)
    with pytest.raises(BundleError) as err:
        load_manifest(root, verify=False)
    assert str(root / "manifest.json") in str(err.value) and field in str(err.value), str(err.value)


def _places(value: object, path: tuple = ()) -> Iterator[tuple]:
    """Every path (keys and indices) into parsed JSON `value`."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield (*path, key)
        yield from _places(child, (*path, key))


def test_no_malformed_field_at_any_depth_escapes_as_another_error(tmp_path: Path) -> None:
    """Each field removed or replaced by a value of each JSON type: a BundleError or a manifest, nothing else."""
    good = full_manifest()
    tried = 0
    for place in _places(good):
        for wrong in ("<removed>", None, True, 7, "x", [], {}, [{}]):
            data = copy.deepcopy(good)
            parent = data
            for key in place[:-1]:
                parent = parent[key]
            if wrong == "<removed>":
                del parent[place[-1]]
            else:
                parent[place[-1]] = wrong
            try:
                parse_manifest(data, "m.json")
            except BundleError as exc:
                assert str(exc).startswith("m.json: "), (place, wrong, exc)
            tried += 1
    assert tried > 500

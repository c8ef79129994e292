"""Small but complete manifests for tests that forge a bundle by hand (docs/bundle.md#manifest)."""

from __future__ import annotations

import copy
from typing import Any

from core.manifest import FORMAT, VERSION

TENSOR = {"tensor": "x", "dtype": "UINT8", "shape": [1, 4], "wire": "UINT8:1,4", "packed_bytes": 4}


def partition_json(index: int, **fields: Any) -> dict[str, Any]:
    """Partition `index` of a forged manifest: every key `finnsplit build` writes, `fields` overriding."""
    boundary = {**TENSOR, "tensors": [dict(TENSOR)]}
    return {"index": index, "dir": f"partition-{index}", "board": "zedboard", "part": "xc7z020clg484-1",
            "replicas": 1, "layers": [], "input": copy.deepcopy(boundary), "output": copy.deepcopy(boundary),
            "files": {},
            "finn_io": {"in_word_elems": 1, "out_word_elems": 1},
            "predicted": {"fps": 1.0, "cycles": 1, "clock_mhz": 100.0, "layers": []}, **fields}


def manifest_json(partitions: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A forged manifest.json's content: the given partitions, every other key a small valid value."""
    return {"format": FORMAT, "version": VERSION, "model": {"name": "forged"}, "created": "2026-01-01T00:00:00Z",
            "versions": {}, "plan": {"strategy": "balanced", "fps": 1.0, "limited_by": "-", "boards_used": 1,
                                     "unused_boards": [], "power_w": 1.0},
            "host": {"files": {}, "model_input": {"name": "x", "shape": [1, 4]},
                     "input": {"kind": "integer", "dtype": "UINT8"}, "output": {"kind": "integer"}, "onnx_output": "y"},
            "input": copy.deepcopy(TENSOR), "output": copy.deepcopy(TENSOR), "partitions": partitions, **fields}

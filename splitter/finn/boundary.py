"""Which partitions of a bundle carry several tensors across a boundary (docs/finn.md#multi-tensor-boundaries).

A cut inside a residual block gives the partition's FINN graph several inputs or outputs. FINN
v0.10.1's InsertIODMA (run by step_synthesize_bitfile) wires each IODMA to port 0 of the node the
tensor meets, whichever port it uses, so FINN alone would build such a partition's bitstream wrong
without a word. The runner adds its own IODMA step (steps.py) to such a partition's build and refuses a
build whose step list leaves it no place; this module finds them from the manifest (standard library only).
"""

from __future__ import annotations

import json
from pathlib import Path

from core.manifest import Partition
from splitter.finn.config import CONFIG_FILE
from splitter.finn.errors import MultiTensorBoundaryError
from splitter.finn.record import read_manifest
from splitter.finn.steps import applies


def boundary_tensors(part: Partition) -> tuple[list[str], list[str]]:
    """The partition's input and output tensor names, in boundary order."""
    return [t.tensor for t in part.input.tensors], [t.tensor for t in part.output.tensors]


def is_multi_tensor(part: Partition) -> bool:
    """True when either boundary of the partition carries more than one tensor."""
    inputs, outputs = boundary_tensors(part)
    return len(inputs) > 1 or len(outputs) > 1


def refuse_multi_tensor(bundle_dir: Path, indices: list[int]) -> None:
    """Raise MultiTensorBoundaryError naming every partition in `indices` with a multi-tensor boundary whose
    build steps leave finnsplit's IODMA step no place (no step_synthesize_bitfile in its step list)."""
    parts = [p for p in read_manifest(bundle_dir).partitions if p.index in indices and is_multi_tensor(p)
             and not applies(_steps(Path(bundle_dir) / p.dir))]
    if parts:
        raise MultiTensorBoundaryError([(p.index, p.dir, *boundary_tensors(p)) for p in parts])


def _steps(partition_dir: Path) -> list[str] | None:
    """The `steps` of a partition's build config (None: FINN's default steps, or no readable config)."""
    try:
        steps = json.loads((partition_dir / CONFIG_FILE).read_text()).get("steps")
    except (OSError, ValueError, AttributeError):
        return None  # read_build_config reports an unreadable config when the build starts
    return steps if isinstance(steps, list) else None


def partition_entry(partition_dir: Path) -> Partition | None:
    """The manifest entry of `partition_dir` when it lies in a bundle, else None."""
    where = Path(partition_dir).resolve()
    bundle = where.parent
    if not (bundle / "manifest.json").is_file():
        return None
    matches = [p for p in read_manifest(bundle).partitions if (bundle / p.dir).resolve() == where]
    return matches[0] if len(matches) == 1 else None

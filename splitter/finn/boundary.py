"""Which partitions of a bundle carry several tensors across a boundary (docs/finn.md#multi-tensor-boundaries).

A cut inside a residual block gives the partition's FINN graph several inputs or outputs. FINN
v0.10.1's InsertIODMA (run by step_synthesize_bitfile) wires each IODMA to port 0 of the node the
tensor meets, whichever port it uses, so FINN alone would build such a partition's bitstream wrong
without a word. The runner refuses to; this module finds them from the manifest (standard library only).
"""

from __future__ import annotations

from pathlib import Path

from core.manifest import Partition
from splitter.finn.errors import MultiTensorBoundaryError
from splitter.finn.record import read_manifest


def boundary_tensors(part: Partition) -> tuple[list[str], list[str]]:
    """The partition's input and output tensor names, in boundary order."""
    return [t.tensor for t in part.input.tensors], [t.tensor for t in part.output.tensors]


def is_multi_tensor(part: Partition) -> bool:
    """True when either boundary of the partition carries more than one tensor."""
    inputs, outputs = boundary_tensors(part)
    return len(inputs) > 1 or len(outputs) > 1


def refuse_multi_tensor(bundle_dir: Path, indices: list[int]) -> None:
    """Raise MultiTensorBoundaryError naming every partition in `indices` with a multi-tensor boundary."""
    parts = [p for p in read_manifest(bundle_dir).partitions if p.index in indices and is_multi_tensor(p)]
    if parts:
        raise MultiTensorBoundaryError([(p.index, p.dir, *boundary_tensors(p)) for p in parts])


def partition_entry(partition_dir: Path) -> Partition | None:
    """The manifest entry of `partition_dir` when it lies in a bundle, else None."""
    where = Path(partition_dir).resolve()
    bundle = where.parent
    if not (bundle / "manifest.json").is_file():
        return None
    matches = [p for p in read_manifest(bundle).partitions if (bundle / p.dir).resolve() == where]
    return matches[0] if len(matches) == 1 else None

"""Record a partition's finished FINN build in the bundle's manifest.json (docs/bundle.md#manifest).

Standard library only, like the rest of splitter.finn (and core.manifest): it runs in
FINN's docker. load_manifest(verify=True) checks the files recorded here like every other.
Format of the "finn" entry: docs/finn.md#the-manifest-entry. Every change goes through
core.manifest's one writer, under the bundle's lock (builds of several partitions record at once).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.manifest import MANIFEST, BundleError, FinnBuild, Manifest, Partition, file_entry, load_manifest
from core.manifest import update_manifest as _update_manifest
from core.manifest.schema import frozen
from splitter.finn.errors import BundleLayoutError

__all__ = ["MANIFEST", "clear_finn_build", "finn_entry", "read_manifest", "record_finn_build", "update_partition"]


def finn_entry(root: Path, bitfile: Path, result: dict[str, Any]) -> FinnBuild:
    """The manifest's partitions[k].finn for a build: its files, IODMA windows, FINN's estimates."""
    folder = Path(bitfile).parent
    names = {"bitfile": result["bitfile"], "bitbin": result["bitbin"], "hwh": result["hwh"]}
    estimates = result.get("estimate_network_performance")
    return FinnBuild(
        files=frozen({key: file_entry(root, folder / name) for key, name in names.items()}),
        iodma=frozen(result["iodma"]),
        arch=result["bootgen_arch"],
        estimates=None if estimates is None else frozen(estimates),
        versions=frozen({"finn": result.get("finn_version"), "vivado": result.get("vivado_version")}),
        iodma_order=frozen(result["iodma_order"]) if result.get("iodma_order") else None,
    )


def record_finn_build(root: Path, index: int, entry: FinnBuild) -> None:
    """Set partitions[index].finn = `entry` in root/manifest.json, replacing the file atomically."""
    update_partition(root, index, lambda part: dataclasses.replace(part, finn=entry))


def clear_finn_build(root: Path, index: int) -> None:
    """Remove partitions[index].finn, so a rebuild that fails leaves no claim to the old files."""
    update_partition(root, index, lambda part: dataclasses.replace(part, finn=None))


def read_manifest(root: Path) -> Manifest:
    """root/manifest.json, its files unverified (FINN adds some); BundleLayoutError if it cannot be read."""
    try:
        return load_manifest(root, verify=False)
    except BundleError as exc:
        raise BundleLayoutError(Path(root) / MANIFEST, f"cannot read the bundle manifest: {exc}") from None


def update_partition(root: Path, index: int, change: Callable[[Partition], Partition]) -> None:
    """Apply `change` to partitions[index] of root/manifest.json under the manifest lock, atomically."""
    path = Path(root) / MANIFEST

    def changed(manifest: Manifest) -> Manifest:
        parts = [p for p in manifest.partitions if p.index == index]
        if len(parts) != 1:
            raise BundleLayoutError(path, f"expected one partition with index {index}, found {len(parts)}")
        return dataclasses.replace(manifest, partitions=tuple(change(p) if p.index == index else p
                                                              for p in manifest.partitions))

    try:
        _update_manifest(root, changed)
    except BundleError as exc:
        raise BundleLayoutError(path, f"cannot read the bundle manifest: {exc}") from None

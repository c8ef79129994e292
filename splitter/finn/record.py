"""Record a partition's finished FINN build in the bundle's manifest.json (docs/bundle.md#manifest).

Standard library only, like the rest of splitter.finn (and core.manifest): it runs in
FINN's docker. load_manifest(verify=True) checks the files recorded here like every other.
Format of the "finn" entry: docs/finn.md#the-manifest-entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.manifest import file_entry
from splitter.finn.errors import BundleLayoutError

MANIFEST = "manifest.json"
LOCK = ".manifest.json.lock"  # serialises updates by builds of several partitions running at once


def finn_entry(root: Path, bitfile: Path, result: dict[str, Any]) -> dict[str, Any]:
    """The manifest's partitions[k]["finn"] for a build: its files, IODMA windows, FINN's estimates."""
    folder = Path(bitfile).parent
    names = {"bitfile": result["bitfile"], "bitbin": result["bitbin"], "hwh": result["hwh"]}
    return {
        "files": {key: file_entry(root, folder / name) for key, name in names.items()},
        "arch": result["bootgen_arch"],
        "iodma": result["iodma"],
        "estimates": result.get("estimate_network_performance"),
        "versions": {"finn": result.get("finn_version"), "vivado": result.get("vivado_version")},
    }


def record_finn_build(root: Path, index: int, entry: dict[str, Any]) -> None:
    """Set partitions[index]["finn"] = `entry` in root/manifest.json, replacing the file atomically."""
    update_partition(root, index, lambda part: part.__setitem__("finn", entry))


def clear_finn_build(root: Path, index: int) -> None:
    """Remove partitions[index]["finn"], so a rebuild that fails leaves no claim to the old files."""
    update_partition(root, index, lambda part: part.pop("finn", None))


def read_manifest(root: Path) -> Any:
    """The parsed JSON of root/manifest.json, unchecked (BundleLayoutError if it cannot be read)."""
    path = Path(root) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleLayoutError(path, f"cannot read the bundle manifest: {exc}") from None


def update_partition(root: Path, index: int, change: Callable[[dict[str, Any]], object]) -> None:
    """Apply `change` to partitions[index] of root/manifest.json under the manifest lock, atomically."""
    path = Path(root) / MANIFEST
    with _locked(Path(root) / LOCK):
        manifest = read_manifest(root)
        parts = [p for p in manifest.get("partitions", []) if isinstance(p, dict) and p.get("index") == index]
        if len(parts) != 1:
            raise BundleLayoutError(path, f"expected one partition with index {index}, found {len(parts)}")
        change(parts[0])
        write_json_atomic(path, manifest)


def write_json_atomic(path: Path, data: object) -> None:
    """Write `data` as indented JSON to a temporary file beside `path`, then rename it over `path`."""
    # A reader (or a crash) sees the old manifest or the new one, never half of one.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(data, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path` (created if needed) for the read-modify-write."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock

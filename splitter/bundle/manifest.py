"""The bundle manifest: what each board runs, what crosses each link, and the files' checksums.

Standard library only: board agents and FINN's docker read manifests without numpy or onnx.

The format is documented in docs/bundle.md#manifest. Later stages (deployment, orchestration)
read a bundle only through `load_manifest`, which checks the format version and every checksum.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from splitter.errors import FinnsplitError

FORMAT = "finnsplit-bundle"
VERSION = 1


class BundleError(FinnsplitError):
    """A bundle that is missing, of another version, or whose files do not match their checksums."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(root: Path, path: Path) -> dict[str, Any]:
    """Manifest entry of one file of the bundle: relative path, size and SHA-256."""
    # Resolved, so a root reached through a symlink (e.g. FINN's docker mounts) still contains `path`.
    root, path = Path(root).resolve(), Path(path).resolve()
    return {"path": path.relative_to(root).as_posix(), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def write_manifest(root: Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest` as root/manifest.json (keys in insertion order, stable across runs)."""
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def load_manifest(root: str | Path, verify: bool = True) -> dict[str, Any]:
    """Read DIR/manifest.json; with `verify`, check every listed file's size and SHA-256."""
    root = Path(root)
    path = root / "manifest.json"
    if not path.is_file():
        raise BundleError(f"{root} is not a finnsplit bundle: no manifest.json (make one with `finnsplit build`)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: not a finnsplit bundle manifest (format {manifest.get('format')!r})")
    if manifest.get("version") != VERSION:
        raise BundleError(
            f"{path}: bundle format version {manifest.get('version')} is not supported (this finnsplit reads "
            f"{VERSION}); rebuild the bundle with this finnsplit"
        )
    if verify:
        for entry in bundle_files(manifest):
            check_file(root, entry)
    return manifest


def bundle_files(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file entry the manifest lists (host files, each partition's files and FINN build)."""
    entries = list(manifest.get("host", {}).get("files", {}).values())
    for part in manifest.get("partitions", []):
        entries.extend(part.get("files", {}).values())
        # written by splitter.finn.record after `finnsplit finn-build` (docs/finn.md#the-manifest-entry)
        entries.extend(part.get("finn", {}).get("files", {}).values())
    return entries


def check_file(root: Path, entry: dict[str, Any]) -> None:
    """Raise BundleError unless root/entry["path"] exists with the listed size and SHA-256."""
    path = root / entry["path"]
    if not path.is_file():
        raise BundleError(f"bundle {root}: {entry['path']} is missing")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise BundleError(f"bundle {root}: {entry['path']} has {size} bytes, the manifest says {entry['bytes']}")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise BundleError(f"bundle {root}: {entry['path']} is corrupted (SHA-256 {digest[:12]}..., "
                          f"the manifest says {entry['sha256'][:12]}...)")


def partition_files(manifest: dict[str, Any], index: int) -> list[dict[str, Any]]:
    """The file entries of partition `index` (a board holds only its own partition's files)."""
    for part in manifest.get("partitions", []):
        if part.get("index") == index:
            return [*part.get("files", {}).values(), *part.get("finn", {}).get("files", {}).values()]
    raise BundleError(f"the bundle has no partition {index}")

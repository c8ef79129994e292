"""The bundle manifest: what each board runs, what crosses each link, and the files' checksums.

Standard library only: board agents and FINN's docker read manifests without numpy or onnx.

The format is documented in docs/bundle.md#manifest. Later stages (deployment, orchestration)
read a bundle only through `load_manifest`, which checks the format version and every checksum.
Every file path a manifest lists stays inside its bundle (`check_relpath`): checked when a manifest
is written, loaded, uploaded and run (docs/security.md#bundles-stay-in-their-folder).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from core.errors import FinnsplitError

FORMAT = "finnsplit-bundle"
VERSION = 2  # 2: a boundary lists its tensors (`tensors`); a cut inside a residual block carries several
READS = (1, 2)  # version 1 bundles (one tensor per boundary) still load
BUNDLE_ID_HEX = 16  # a bundle's id: the first hex digits of its manifest's SHA-256


class BundleError(FinnsplitError):
    """A bundle that is missing, of another version, or whose files do not match their checksums."""


def check_relpath(path: object, where: str = "manifest") -> str:
    """`path` if it is a bundle-relative POSIX path that stays inside the bundle, else BundleError.

    Refused: non-strings, empty paths, absolute paths, `..`, `.` or empty components, NUL and other
    control characters, backslashes (a Windows separator some tools honour).
    """
    if not isinstance(path, str) or not path:
        raise BundleError(f"{where}: a file path must be a non-empty string, got {path!r}")
    why = ""
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in path):
        why = "contains a NUL or control character"
    elif "\\" in path:
        why = "contains a backslash"
    elif path.startswith("/"):
        why = "is absolute"
    elif any(part in ("", ".", "..") for part in path.split("/")):
        why = "has an empty, '.' or '..' component"
    if why:
        raise BundleError(f"{where}: file path {path!r} {why}; a bundle's files must stay inside the bundle")
    return path


def check_entries(manifest: object, where: str = "manifest") -> None:
    """Raise BundleError unless every file entry is {path (safe, relative), bytes, sha256}."""
    for entry in bundle_files(manifest, where):
        if not isinstance(entry, dict):
            raise BundleError(f"{where}: a file entry must be an object, got {entry!r:.80}")
        check_relpath(entry.get("path"), where)
        size, digest = entry.get("bytes"), entry.get("sha256")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise BundleError(f"{where}: {entry['path']}: 'bytes' must be a non-negative integer, got {size!r:.40}")
        if not isinstance(digest, str) or len(digest) != 64:
            raise BundleError(f"{where}: {entry['path']}: 'sha256' must be 64 hex digits, got {digest!r:.80}")


def bundle_id_of(manifest: bytes) -> str:
    """A bundle's id from its manifest.json bytes (deployment directories are named by it)."""
    return hashlib.sha256(manifest).hexdigest()[:BUNDLE_ID_HEX]


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
    if not path.is_relative_to(root):
        raise BundleError(f"{path} is not inside the bundle {root}")
    relative = check_relpath(path.relative_to(root).as_posix(), str(root))
    return {"path": relative, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def write_manifest(root: Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest` as root/manifest.json (keys in insertion order, stable across runs)."""
    path = root / "manifest.json"
    check_entries(manifest, str(path))
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
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        if not isinstance(manifest, dict):
            raise BundleError(f"{path}: not a finnsplit bundle manifest (a JSON {type(manifest).__name__})")
        raise BundleError(f"{path}: not a finnsplit bundle manifest (format {manifest.get('format')!r})")
    if manifest.get("version") not in READS or isinstance(manifest.get("version"), bool):
        raise BundleError(
            f"{path}: bundle format version {manifest.get('version')} is not supported (this finnsplit reads "
            f"{' and '.join(map(str, READS))}); rebuild the bundle with this finnsplit"
        )
    check_entries(manifest, str(path))
    if verify:
        for entry in bundle_files(manifest):
            check_file(root, entry)
    return manifest


def boundary_tensors(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The tensors a boundary entry carries, in wire order (docs/bundle.md#multi-tensor-boundaries).

    Version 2 lists them under `tensors`; a version 1 entry is its one tensor.
    """
    tensors = entry.get("tensors")
    if tensors is None:
        return [entry]
    if not isinstance(tensors, list) or not tensors or not all(isinstance(t, dict) for t in tensors):
        raise BundleError(f"a boundary's 'tensors' must be a non-empty list of tensor entries, got {tensors!r:.80}")
    return tensors


def bundle_files(manifest: object, where: str = "manifest") -> list[Any]:
    """Every file entry the manifest lists (host files, each partition's files and FINN build)."""
    entries = list(_files(_section(manifest, "host", where), "host", where))
    partitions = manifest.get("partitions", []) if isinstance(manifest, dict) else None
    if not isinstance(partitions, list):
        raise BundleError(f"{where}: 'partitions' must be a list")
    for k, part in enumerate(partitions):
        entries.extend(_files(part, f"partitions[{k}]", where))
        # written by splitter.finn.record after `finnsplit finn-build` (docs/finn.md#the-manifest-entry)
        entries.extend(_files(_section(part, "finn", where), f"partitions[{k}].finn", where))
    return entries


def _section(data: object, key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {}) if isinstance(data, dict) else None
    if not isinstance(value, dict):
        raise BundleError(f"{where}: '{key}' must be an object")
    return value


def _files(section: object, name: str, where: str) -> list[Any]:
    files = section.get("files", {}) if isinstance(section, dict) else None
    if not isinstance(files, dict):
        raise BundleError(f"{where}: '{name}.files' must be an object")
    return list(files.values())


def contained_path(root: Path, relative: object) -> Path:
    """root/relative after checking that it stays inside root, symbolic links resolved; else BundleError."""
    path = Path(root) / check_relpath(relative, str(root))
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise BundleError(f"bundle {root}: {relative} leads outside the bundle (to {path.resolve()})")
    return path


def check_file(root: Path, entry: dict[str, Any]) -> None:
    """Raise BundleError unless root/entry["path"] exists inside root with the listed size and SHA-256."""
    path = contained_path(root, entry["path"])
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
    for k, part in enumerate(manifest.get("partitions", [])):
        if isinstance(part, dict) and part.get("index") == index:
            return [*_files(part, f"partitions[{k}]", "manifest"),
                    *_files(_section(part, "finn", "manifest"), f"partitions[{k}].finn", "manifest")]
    raise BundleError(f"the bundle has no partition {index}")

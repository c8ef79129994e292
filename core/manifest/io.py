"""The one reader and the one writer of manifest.json (docs/bundle.md#manifest).

Standard library only. `load_manifest` checks the format, the version (1 and 2 load), every file
entry and path and, with `verify`, every file's size and SHA-256, then reads the types
(core.manifest.schema). `write_manifest` writes version 2 atomically; `update_manifest` does a
read-change-write under a lock, for FINN builds of several partitions recording at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.manifest.files import BundleError, FileEntry, check_file, check_relpath
from core.manifest.schema import Manifest

FORMAT = "finnsplit-bundle"
VERSION = 2  # 2: a boundary lists its tensors (`tensors`); a cut inside a residual block carries several
READS = (1, 2)  # version 1 bundles (one tensor per boundary) still load
MANIFEST = "manifest.json"
LOCK = ".manifest.json.lock"  # serialises update_manifest calls (builds of several partitions at once)


def load_manifest(root: str | Path, verify: bool = True) -> Manifest:
    """Read DIR/manifest.json; with `verify`, check every listed file's size and SHA-256."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise BundleError(f"{root} is not a finnsplit bundle: no manifest.json (make one with `finnsplit build`)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    return parse_manifest(data, str(path), root if verify else None)


def parse_manifest(data: object, where: str = "manifest", verify_in: Path | None = None) -> Manifest:
    """The manifest in parsed JSON `data` (`where` names it in errors); files checked in `verify_in` if given."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        if not isinstance(data, dict):
            raise BundleError(f"{where}: not a finnsplit bundle manifest (a JSON {type(data).__name__})")
        raise BundleError(f"{where}: not a finnsplit bundle manifest (format {data.get('format')!r})")
    if data.get("version") not in READS or isinstance(data.get("version"), bool):
        raise BundleError(
            f"{where}: bundle format version {data.get('version')} is not supported (this finnsplit reads "
            f"{' and '.join(map(str, READS))}); rebuild the bundle with this finnsplit"
        )
    entries = check_entries(data, where)
    if verify_in is not None:
        for entry in entries:
            check_file(verify_in, entry)
    return Manifest.from_json(data, where)


def write_manifest(root: str | Path, manifest: Manifest) -> Path:
    """Write `manifest` as root/manifest.json, version 2, replacing the file atomically; returns its path."""
    path = Path(root) / MANIFEST
    data = {**manifest.to_json(), "version": VERSION}
    check_entries(data, str(path))
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
    return path


def update_manifest(root: str | Path, change: Callable[[Manifest], Manifest]) -> Manifest:
    """Replace root/manifest.json by `change` of it (read unverified), under the bundle's lock; returns it."""
    with _locked(Path(root) / LOCK):
        manifest = change(load_manifest(root, verify=False))
        write_manifest(root, manifest)
        return manifest


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path` (created if needed) for the read-modify-write."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_entries(manifest: object, where: str = "manifest") -> list[FileEntry]:
    """Every file entry of parsed JSON `manifest`; BundleError unless each is {path (safe), bytes, sha256}."""
    entries = _file_entries(manifest, where)
    for entry in entries:
        if not isinstance(entry, dict):
            raise BundleError(f"{where}: a file entry must be an object, got {entry!r:.80}")
        check_relpath(entry.get("path"), where)
        size, digest = entry.get("bytes"), entry.get("sha256")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise BundleError(f"{where}: {entry['path']}: 'bytes' must be a non-negative integer, got {size!r:.40}")
        if not isinstance(digest, str) or len(digest) != 64:
            raise BundleError(f"{where}: {entry['path']}: 'sha256' must be 64 hex digits, got {digest!r:.80}")
    return [FileEntry(e["path"], e["bytes"], e["sha256"]) for e in entries]


def _file_entries(manifest: object, where: str) -> list[Any]:
    """The raw file entries (host files, each partition's files and FINN build)."""
    entries = list(_files(_section(manifest, "host", where), "host", where))
    partitions = manifest.get("partitions", []) if isinstance(manifest, dict) else None
    if not isinstance(partitions, list):
        raise BundleError(f"{where}: 'partitions' must be a list")
    for k, part in enumerate(partitions):
        entries.extend(_files(part, f"partitions[{k}]", where))
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

"""A bundle's files: their manifest entries, checksums, and the paths that must stay inside the bundle.

Standard library only. Every file path a manifest lists is bundle-relative and stays inside the
bundle (docs/security.md#bundles-stay-in-their-folder).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import FinnsplitError

BUNDLE_ID_HEX = 16  # a bundle's id: the first hex digits of its manifest's SHA-256


class BundleError(FinnsplitError):
    """A bundle that is missing, of another version, or whose files do not match their checksums."""


@dataclass(frozen=True)
class FileEntry:
    """One file of the bundle: its bundle-relative path, size and SHA-256 (docs/bundle.md#manifest)."""

    path: str
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        """The manifest's JSON object for this file."""
        return {"path": self.path, "bytes": self.bytes, "sha256": self.sha256}


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


def file_entry(root: Path, path: Path) -> FileEntry:
    """Manifest entry of one file of the bundle: relative path, size and SHA-256."""
    # Resolved, so a root reached through a symlink (e.g. FINN's docker mounts) still contains `path`.
    root, path = Path(root).resolve(), Path(path).resolve()
    if not path.is_relative_to(root):
        raise BundleError(f"{path} is not inside the bundle {root}")
    relative = check_relpath(path.relative_to(root).as_posix(), str(root))
    return FileEntry(relative, path.stat().st_size, sha256_file(path))


def contained_path(root: Path, relative: object) -> Path:
    """root/relative after checking that it stays inside root, symbolic links resolved; else BundleError."""
    path = Path(root) / check_relpath(relative, str(root))
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise BundleError(f"bundle {root}: {relative} leads outside the bundle (to {path.resolve()})")
    return path


def check_file(root: Path, entry: FileEntry) -> None:
    """Raise BundleError unless root/entry.path exists inside root with the listed size and SHA-256."""
    path = contained_path(root, entry.path)
    if not path.is_file():
        raise BundleError(f"bundle {root}: {entry.path} is missing")
    size = path.stat().st_size
    if size != entry.bytes:
        raise BundleError(f"bundle {root}: {entry.path} has {size} bytes, the manifest says {entry.bytes}")
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise BundleError(f"bundle {root}: {entry.path} is corrupted (SHA-256 {digest[:12]}..., "
                          f"the manifest says {entry.sha256[:12]}...)")

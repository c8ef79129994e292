"""A `run` command: the request (`core.messages.Run`), and the bundle partition it names, verified on
this board's disk.

Remote layout and the command's fields: docs/control-plane.md. Files are checked through the
manifest reader (core.manifest, standard library only) before anything is started.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import FinnsplitError
from core.manifest import BundleError, Partition, bundle_id_of, check_file, contained_path, load_manifest
from core.messages import BUNDLE_ID, Run
from core.safe_json import MessageError

RunRequest = Run  # the fields of a run command (core/messages.py)


class RunError(FinnsplitError):
    """A run command the agent cannot carry out: a malformed request, a missing or corrupted bundle."""


@dataclass(frozen=True)
class PreparedRun:
    """A verified partition, ready to start."""

    request: RunRequest
    bundle_id: str
    bundle_dir: Path
    partition: Partition  # the manifest's partitions[k]
    bitbin: Path | None  # the .bit.bin to load (finn-zynq only)
    program: Path | None = None  # the partition's program file (checked to lie inside the bundle)


def parse_run(cmd: dict[str, Any]) -> RunRequest:
    """Check a run command's fields (`Run.from_fields`); raises RunError naming the first bad one."""
    try:
        return Run.from_fields(cmd)
    except MessageError as exc:
        raise RunError(str(exc)) from None


def write_link_key(remote_root: str | Path, key: str) -> Path:
    """The server's --auth-key-file: `key` in remote_root/run/link.key, readable by root alone."""
    directory = Path(remote_root) / "run"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    path = directory / "link.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(key + "\n")
    return path


def prepare_run(remote_root: str | Path, request: RunRequest) -> PreparedRun:
    """Find the request's bundle and verify its partition's files (size, SHA-256); raises RunError."""
    bundle_id, bundle_dir = resolve_bundle(Path(remote_root), request.bundle)
    manifest_path = bundle_dir / "manifest.json"
    try:
        manifest = load_manifest(bundle_dir, verify=False)
        digest = bundle_id_of(manifest_path.read_bytes())
        if digest != bundle_id:
            raise RunError(f"bundle {bundle_id}: manifest.json is corrupted (its SHA-256 starts {digest})")
        part = manifest.partition(request.partition)
        for entry in part.all_files():
            check_file(bundle_dir, entry)
    except BundleError as exc:
        raise RunError(str(exc)) from None
    bitbin = program = None
    try:
        if request.backend == "emulate":
            program_file = part.files.get("program")
            program = contained_path(bundle_dir, program_file.path if program_file else None)
        if request.backend == "finn-zynq":
            if part.finn is None or "bitbin" not in part.finn.files:
                raise RunError(f"bundle {bundle_id}: partition {request.partition} has no FINN build "
                               "(run `finnsplit finn-build` and deploy again)")
            bitbin = contained_path(bundle_dir, part.finn.files["bitbin"].path)
    except BundleError as exc:
        raise RunError(str(exc)) from None
    return PreparedRun(request, bundle_id, bundle_dir, part, bitbin, program)


def resolve_bundle(remote_root: Path, bundle: str | None) -> tuple[str, Path]:
    """(bundle id, directory) of `bundle`, or of the bundle `current` links to when None."""
    if bundle is None:
        current = remote_root / "current"
        if not current.exists():
            raise RunError(f"run: no bundle given and {current} does not exist (nothing deployed)")
        target = current.resolve()
        bundle = target.name
        if not BUNDLE_ID.match(bundle) or target.parent != (remote_root / "bundles").resolve():
            raise RunError(f"run: {current} points to {target}, not a bundle directory under {remote_root}/bundles")
    directory = remote_root / "bundles" / bundle
    if not directory.is_dir() or directory.is_symlink():
        raise RunError(f"bundle {bundle} is not on this board (no directory {directory})")
    return bundle, directory

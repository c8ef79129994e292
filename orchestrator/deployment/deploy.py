"""Deploy one board's partition of a bundle over SSH: atomic verified uploads, activation, rollback.

The remote layout and `bundle_id` are the contract in docs/control-plane.md#remote-layout-per-board-under-remote_root;
behaviour (skip, reuse, resume, rollback) is described in docs/control-plane.md#deployment-orchestratordeploypy.
A file reaches its final name only by `posix-rename@openssh.com` of a temporary file whose SHA-256 the
board computed, so a board never holds a half-written or corrupted file under a final name.
A BoardSession is not thread safe: deploy to several boards with one session per board and thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import re
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import paramiko

from core.manifest import (
    BundleError,
    FileEntry,
    bundle_id_of,
    check_entries,
    check_file,
    check_relpath,
    load_manifest,
)
from orchestrator.control.fleet import BoardEntry
from orchestrator.deployment import ssh
from orchestrator.deployment.ssh import DeployError, RemoteCommandError
from splitter.progress import ProgressBar

BUNDLE_ID = re.compile(r"[0-9a-f]{16}")


class CorruptUploadError(DeployError):
    """A file whose SHA-256 on the board differs from the manifest's after transfer (nothing was renamed)."""


class UnsafePathError(DeployError):
    """An upload whose final path would lie outside bundles/<bundle_id>/ on the board (nothing was written)."""


class ActivationError(DeployError):
    """A bundle that cannot be activated (not uploaded completely), or no previous bundle to roll back to."""


@dataclass(frozen=True)
class Progress:
    """One step of an upload, for a progress display."""

    path: str  # bundle-relative, e.g. partition-1/model.onnx
    action: str  # "skip" (already on the board), "copy" (from an older bundle on the board), "send"
    done: int  # bytes of this file handled so far
    total: int  # bytes of this file


@dataclass
class UploadReport:
    """What an upload did: files sent, copied on the board from an older bundle, or already in place."""

    board: str
    bundle_id: str
    partition: int
    sent: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_sent: int = 0


ProgressFn = Callable[[Progress], None]


def bundle_id(bundle_dir: str | Path) -> str:
    """The bundle's id: the first 16 hex digits of the SHA-256 of its manifest.json."""
    return bundle_id_of((Path(bundle_dir) / "manifest.json").read_bytes())


class BoardSession:
    """An SSH/SFTP session to one board, rooted at its remote_root."""

    def __init__(self, board: BoardEntry, client: paramiko.SSHClient) -> None:
        """Wrap a connected client (see `connect`)."""
        self.board, self.client = board, client
        self.root = board.remote_root
        try:
            self.sftp = client.open_sftp()
        except (OSError, paramiko.SSHException) as exc:
            client.close()
            raise RemoteCommandError(board, f"cannot start SFTP (is the sftp subsystem enabled?): {exc}") from None

    def __enter__(self) -> BoardSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close SFTP and SSH."""
        self.sftp.close()
        self.client.close()

    def upload(self, bundle_dir: str | Path, index: int, progress: ProgressFn | None = None) -> UploadReport:
        """Put partition `index`'s files and manifest.json under bundles/<bundle_id>/, skipping those in place."""
        bundle_dir = Path(bundle_dir)
        manifest = load_manifest(bundle_dir, verify=False)
        entries = manifest.partition(index).all_files()
        for entry in entries:  # never ship a local file that does not match its manifest
            check_file(bundle_dir, entry)
        bid = bundle_id(bundle_dir)
        report = UploadReport(self.board.name, bid, index)
        target = posixpath.join(self.root, "bundles", bid)
        finals = [self.final_path(target, entry.path) for entry in entries]  # all checked before any write
        reusable: dict[str, list[str]] | None = None
        for entry, final in zip(entries, finals, strict=True):
            if self._holds(final, entry.bytes, entry.sha256):
                self._skip(report, entry.path, entry.bytes, progress)
                continue
            if reusable is None:
                reusable = self._older_files(bid)
            source = next((path for path in reusable.get(entry.sha256, [])
                           if self._holds(path, entry.bytes, entry.sha256)), None)
            if source is not None:
                self._place(final, entry.sha256, lambda tmp, src=source: ssh.run(self.client, self.board,
                                                                                     ["cp", "--", src, tmp]))
                report.copied.append(entry.path)
                _notify(progress, entry.path, "copy", entry.bytes, entry.bytes)
                continue
            self._send(bundle_dir / entry.path, final, entry, report, progress)
        # manifest.json last: its presence says the partition's files are complete (activate checks it)
        local = bundle_dir / "manifest.json"
        entry = FileEntry("manifest.json", local.stat().st_size, hashlib.sha256(local.read_bytes()).hexdigest())
        if self._holds(posixpath.join(target, "manifest.json"), entry.bytes, entry.sha256):
            self._skip(report, "manifest.json", entry.bytes, progress)
        else:
            self._send(local, posixpath.join(target, "manifest.json"), entry, report, progress)
        return report

    def final_path(self, target: str, relative: str) -> str:
        """target/relative, refused (UnsafePathError) unless it lies under `target` (bundles/<id>/)."""
        try:
            check_relpath(relative, f"upload to {target}")
        except BundleError as exc:
            raise UnsafePathError(self.board, str(exc)) from None
        final = posixpath.normpath(posixpath.join(target, relative))
        if not final.startswith(posixpath.normpath(target) + "/"):
            raise UnsafePathError(self.board, f"{relative!r} would be written to {final}, outside {target}")
        return final

    def activate(self, bid: str) -> None:
        """Point `current` at bundles/<bid> (atomic rename of a new symlink), keeping `previous` at the old one."""
        target = self._uploaded_bundle(bid)
        old = self._readlink("current")
        if old == target:
            return
        if old is not None:
            self._switch("previous", old)
        self._switch("current", target)

    def rollback(self) -> str:
        """Swap `current` and `previous`; return the bundle id now current."""
        previous = self._readlink("previous")
        if previous is None:
            raise ActivationError(self.board, f"no previous bundle to roll back to ({self.root}/previous is missing)")
        bid = posixpath.basename(previous)
        target = self._uploaded_bundle(bid)
        old = self._readlink("current")
        self._switch("current", target)
        if old is not None:
            self._switch("previous", old)
        return bid

    def current(self) -> str | None:
        """The id of the active bundle, or None before the first activation."""
        link = self._readlink("current")
        return None if link is None else posixpath.basename(link)

    def remote_sha256(self, path: str) -> str:
        """SHA-256 of a file on the board, computed there by `sha256sum`."""
        out = ssh.run(self.client, self.board, ["sha256sum", "--", path])
        return out.split()[0].lstrip("\\") if out.split() else ""

    @contextlib.contextmanager
    def _sftp(self, what: str) -> Iterator[None]:
        try:
            yield
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteCommandError(self.board, f"{what}: {exc}") from None

    def _holds(self, path: str, size: int, sha256: str) -> bool:
        """Whether the board has `path` with this size and SHA-256 (size first: cheap)."""
        try:
            if self.sftp.stat(path).st_size != size:
                return False
        except OSError:
            return False
        return self.remote_sha256(path) == sha256

    def _older_files(self, bid: str) -> dict[str, list[str]]:
        """SHA-256 -> paths of the files other bundles on the board list (checked again before reuse)."""
        found: dict[str, list[str]] = {}
        bundles = posixpath.join(self.root, "bundles")
        try:
            others = [name for name in self.sftp.listdir(bundles) if name != bid and BUNDLE_ID.fullmatch(name)]
        except OSError:
            return found
        for other in others:
            try:
                with self.sftp.open(posixpath.join(bundles, other, "manifest.json")) as f:
                    manifest: dict[str, Any] = json.loads(f.read())
                for entry in check_entries(manifest):
                    # a manifest lists every partition; the board holds only its own, so keep all candidates
                    source = self.final_path(posixpath.join(bundles, other), entry.path)
                    found.setdefault(entry.sha256, []).append(source)
            except (OSError, ValueError, KeyError, TypeError, AttributeError, BundleError, UnsafePathError):
                continue  # an unreadable older bundle is only a missed shortcut
        return found

    def _send(self, local: Path, final: str, entry: FileEntry, report: UploadReport,
              progress: ProgressFn | None) -> None:
        def put(tmp: str) -> None:
            callback = None if progress is None else (
                lambda done, total: _notify(progress, entry.path, "send", done, total))
            self.sftp.put(str(local), tmp, callback=callback, confirm=True)

        self._place(final, entry.sha256, put)
        report.sent.append(entry.path)
        report.bytes_sent += entry.bytes

    def _place(self, final: str, sha256: str, fill: Callable[[str], object]) -> None:
        """Write `final` via `fill(tmp)`, check tmp's SHA-256 on the board, rename it over `final`."""
        self._makedirs(posixpath.dirname(final))
        tmp = f"{final}.part-{secrets.token_hex(4)}"
        renamed = False
        try:
            with self._sftp(f"writing {tmp}"):
                fill(tmp)
            got = self.remote_sha256(tmp)
            if got != sha256:
                raise CorruptUploadError(self.board, f"corrupted upload of {final}: SHA-256 on the board is "
                                                     f"{got[:12]}..., the manifest says {sha256[:12]}...; the "
                                                     f"temporary file was deleted, upload again")
            with self._sftp(f"renaming {tmp} to {final}"):
                self.sftp.posix_rename(tmp, final)
            renamed = True
        finally:
            if not renamed:
                with contextlib.suppress(OSError, paramiko.SSHException):
                    self.sftp.remove(tmp)

    def _makedirs(self, path: str) -> None:
        bundles = posixpath.join(self.root, "bundles")
        parts = [p for p in path.split("/") if p]
        for depth in range(1, len(parts) + 1):
            directory = "/" + "/".join(parts[:depth])
            try:
                mode = self.sftp.lstat(directory).st_mode
                # below bundles/, a symbolic link could send the upload elsewhere on the board
                if directory.startswith(bundles + "/") and stat.S_ISLNK(mode or 0):
                    raise UnsafePathError(self.board, f"{directory} is a symbolic link; refusing to upload through it")
            except OSError:
                with self._sftp(f"creating directory {directory}"):
                    self.sftp.mkdir(directory)

    def _skip(self, report: UploadReport, path: str, size: int, progress: ProgressFn | None) -> None:
        report.skipped.append(path)
        _notify(progress, path, "skip", size, size)

    def _uploaded_bundle(self, bid: str) -> str:
        """bundles/<bid> relative to remote_root, after checking its manifest.json is the one `bid` names."""
        if not BUNDLE_ID.fullmatch(bid):
            raise ActivationError(self.board, f"{bid!r} is not a bundle id (16 lower-case hex digits)")
        manifest = posixpath.join(self.root, "bundles", bid, "manifest.json")
        try:
            self.sftp.stat(manifest)
        except OSError:
            raise ActivationError(self.board, f"bundle {bid} is not uploaded ({manifest} is missing)") from None
        if not self.remote_sha256(manifest).startswith(bid):
            raise ActivationError(self.board, f"{manifest} does not hash to bundle id {bid}; upload again")
        return f"bundles/{bid}"

    def _readlink(self, name: str) -> str | None:
        try:
            return self.sftp.readlink(posixpath.join(self.root, name))
        except OSError:
            return None

    def _switch(self, name: str, target: str) -> None:
        """Make root/name a symlink to `target` (relative to root) by renaming a new link over it."""
        tmp = posixpath.join(self.root, f"{name}.tmp")
        with self._sftp(f"switching {self.root}/{name} to {target}"):
            with contextlib.suppress(OSError):
                self.sftp.remove(tmp)  # left by an interrupted switch
            self.sftp.symlink(target, tmp)
            self.sftp.posix_rename(tmp, posixpath.join(self.root, name))


def _notify(progress: ProgressFn | None, path: str, action: str, done: int, total: int) -> None:
    if progress is not None:
        progress(Progress(path, action, done, total))


def connect(board: BoardEntry, timeout: float = 10.0) -> BoardSession:
    """A session to `board`: pinned host key, key-file login, SFTP open (orchestrator/deployment/ssh.py)."""
    return BoardSession(board, ssh.connect(board, timeout))


def upload_size(bundle_dir: str | Path, index: int) -> int:
    """Bytes an upload of partition `index` handles: its files and manifest.json."""
    bundle_dir = Path(bundle_dir)
    entries = load_manifest(bundle_dir, verify=False).partition(index).all_files()
    return sum(e.bytes for e in entries) + (bundle_dir / "manifest.json").stat().st_size


class UploadMeter:
    """One progress bar in bytes over the uploads running at once (every board's files), on a terminal only.

    Each upload goes through `deploy`; the bar starts with the first, grows with those that start
    while it runs, and ends when all of them have ended. A file already on the board, or copied
    there from an older bundle, counts as handled. Thread safe: every board uploads in its own thread.
    """

    def __init__(self, label: str = "uploading", stream: TextIO | None = None) -> None:
        """No bar until an upload starts."""
        self.label, self.stream = label, stream
        self._lock = threading.Lock()
        self._count = 0  # uploads started
        self._sizes: dict[int, int] = {}  # running upload -> its bytes
        self._done: dict[tuple[int, str], int] = {}  # (upload, file) -> bytes handled
        self._bar: ProgressBar | None = None

    def deploy(self, board: BoardEntry, bundle_dir: str | Path, index: int, activate: bool = True) -> UploadReport:
        """`deploy(...)`, its bytes shown on the bar."""
        upload = self._start(upload_size(bundle_dir, index))
        try:
            return deploy(board, bundle_dir, index, activate, lambda step: self._handled(upload, step))
        finally:
            self._end(upload)

    def _start(self, size: int) -> int:
        with self._lock:
            if self._bar is None:
                self._bar = ProgressBar(self.label, 0, self.stream, unit="bytes")
            self._count += 1
            self._sizes[self._count] = size
            self._bar.total += size
            self._bar.set(sum(self._done.values()))
            return self._count

    def _handled(self, upload: int, step: Progress) -> None:
        with self._lock:
            self._done[(upload, step.path)] = step.done
            if self._bar is not None:
                self._bar.set(sum(self._done.values()))

    def _end(self, upload: int) -> None:
        with self._lock:
            handled = sum(n for (u, _), n in self._done.items() if u == upload)
            size = self._sizes.pop(upload, 0)
            if self._bar is None:
                return
            self._bar.total -= max(size - handled, 0)  # a failed upload: what it did not send is not waited for
            if self._sizes:
                self._bar.set(sum(self._done.values()))
                return
            self._bar.set(self._bar.total)
            self._bar.close()
            self._bar, self._done = None, {}


def deploy(board: BoardEntry, bundle_dir: str | Path, index: int, activate: bool = True,
           progress: ProgressFn | None = None) -> UploadReport:
    """Upload partition `index` of the bundle to `board` and, with `activate`, make it current."""
    with connect(board) as session:
        report = session.upload(bundle_dir, index, progress)
        if activate:
            session.activate(report.bundle_id)
        return report

"""orchestrator/deployment/deploy.py against a real sshd on loopback, with a real bundle from `finnsplit build`.

The "board" is this machine: remote_root is a temporary directory, so the tests read the result on disk.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from core.manifest import BundleError, check_file, file_entry, load_manifest, write_manifest
from orchestrator.control.fleet import BoardEntry, assign, load_fleet
from orchestrator.deployment.deploy import (
    ActivationError,
    CorruptUploadError,
    Progress,
    UploadMeter,
    bundle_id,
    connect,
    deploy,
    upload_size,
)
from orchestrator.deployment.ssh import AuthError, HostKeyError, UnreachableError
from orchestrator.rigs.services import Sshd as SshdProcess
from orchestrator.rigs.services import keygen

SSHD = Path("/usr/sbin/sshd")
FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]
pytestmark = pytest.mark.skipif(not SSHD.is_file() or os.geteuid() != 0, reason="needs OpenSSH's sshd, run as root")


@dataclass(frozen=True)
class Sshd:
    port: int
    client_key: Path
    known_hosts: Path  # pins the server's real host key
    other_host_key: Path  # public key of a host key the server does not have


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A private sshd on 127.0.0.1 accepting one generated client key, with its host key pinned."""
    tmp = tmp_path_factory.mktemp("sshd")
    client_key = keygen(tmp / "client_key")
    keygen(tmp / "other_key")  # a host key this server does not have
    server = SshdProcess.start(tmp / "server", "127.0.0.1", free_port(), tmp / "client_key.pub")
    known_hosts = tmp / "known_hosts"
    known_hosts.write_text(server.known_hosts_line())
    yield Sshd(server.port, client_key, known_hosts, tmp / "other_key.pub")
    server.stop()


@pytest.fixture(scope="module")
def bundle(zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`finnsplit build cnv-w2a2.onnx --boards 3 --no-replicate --finn no`."""
    out = tmp_path_factory.mktemp("bundle") / "cnv"
    result = subprocess.run([*FINNSPLIT, "build", str(zoo_dir / "cnv-w2a2.onnx"), "--boards", "3", "--no-replicate",
                             "--finn", "no", "-o", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out


def fleet_board(sshd: Sshd, tmp_path: Path, known_hosts: Path | None = None, key: Path | None = None,
                port: int | None = None) -> BoardEntry:
    """The first board of a fleet.yaml written for the local sshd, remote_root under tmp_path."""
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"""\
chain: test
broker: {{host: 127.0.0.1}}
client: {{host: 127.0.0.1}}
remote_root: {tmp_path / "board"}
boards:
""" + "".join(f"""\
  - name: zed{i}
    type: zedboard
    address: 127.0.0.1
    ssh: {{user: root, port: {port or sshd.port}, key: {key or sshd.client_key},
          known_hosts: {known_hosts or sshd.known_hosts}}}
    data_port: {7000 + i}
""" for i in range(3)))
    return load_fleet(fleet).boards[0]


def rebuilt(bundle: Path, tmp_path: Path, index: int, name: str) -> Path:
    """A copy of the bundle whose partition `index` has a changed folding config, manifest updated."""
    copy = shutil.copytree(bundle, tmp_path / name)
    manifest = load_manifest(copy)
    part = manifest.partition(index)
    folding = copy / part.files["folding"].path
    folding.write_text(json.dumps({**json.loads(folding.read_text()), "rebuilt": name}))
    files = {**part.files, "folding": file_entry(copy, folding)}
    write_manifest(copy, manifest.replace_partition(index, files=files))
    return copy


def stray_temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".part-" in p.name or p.name.endswith(".tmp")]


def test_upload_puts_the_partition_and_manifest_in_place(sshd: Sshd, bundle: Path, tmp_path: Path) -> None:
    board = fleet_board(sshd, tmp_path)
    events: list[Progress] = []
    with connect(board) as session:
        report = session.upload(bundle, 1, progress=events.append)
    remote = tmp_path / "board" / "bundles" / bundle_id(bundle)
    assert (remote / "manifest.json").read_bytes() == (bundle / "manifest.json").read_bytes()
    manifest = load_manifest(remote, verify=False)
    entries = manifest.partition(1).all_files()
    for entry in entries:
        check_file(remote, entry)
    assert sorted(p.name for p in remote.iterdir()) == ["manifest.json", "partition-1"]
    assert report.sent == [e.path for e in entries] + ["manifest.json"]
    assert report.bytes_sent == sum(e.bytes for e in entries) + (bundle / "manifest.json").stat().st_size
    assert report.skipped == [] and report.copied == []
    finished = {e.path for e in events if e.action == "send" and e.done == e.total}
    assert finished == set(report.sent)
    assert stray_temporaries(tmp_path / "board") == []


def test_second_upload_skips_everything(sshd: Sshd, bundle: Path, tmp_path: Path) -> None:
    board = fleet_board(sshd, tmp_path)
    first = deploy(board, bundle, 2, activate=False)
    second = deploy(board, bundle, 2, activate=False)
    assert second.bytes_sent == 0 and second.sent == []
    assert second.skipped == first.sent


def test_only_changed_or_missing_files_are_sent(sshd: Sshd, bundle: Path, tmp_path: Path) -> None:
    board = fleet_board(sshd, tmp_path)
    deploy(board, bundle, 2)
    changed = rebuilt(bundle, tmp_path, 2, "v2")
    report = deploy(board, changed, 2)
    files = load_manifest(changed).partitions[2].files
    folding = files["folding"].path
    assert report.sent == [folding, "manifest.json"]
    assert len(report.copied) == len(files) - 1  # unchanged files come from the older bundle on the board
    assert report.bytes_sent == (changed / folding).stat().st_size + (changed / "manifest.json").stat().st_size
    remote = tmp_path / "board" / "bundles" / bundle_id(changed)
    for entry in load_manifest(remote, verify=False).partition(2).all_files():
        check_file(remote, entry)
    # an interrupted upload resumes: a file missing on the board is copied from the older bundle when it
    # has it, sent otherwise; the rest is skipped
    model = files["model"].path
    (remote / model).unlink()
    (remote / folding).unlink()
    resumed = deploy(board, changed, 2)
    assert (resumed.sent, resumed.copied) == ([folding], [model])
    assert resumed.bytes_sent == (changed / folding).stat().st_size
    assert len(resumed.skipped) == len(files) - 2 + 1  # the manifest too


def test_unknown_host_key_is_refused(sshd: Sshd, bundle: Path, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError, match=rf"not in {empty}.*ssh-keyscan -p {sshd.port} 127\.0\.0\.1 >> {empty}"):
        deploy(fleet_board(sshd, tmp_path, known_hosts=empty), bundle, 0)
    assert not (tmp_path / "board").exists()


def test_changed_host_key_is_refused(sshd: Sshd, bundle: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} " + " ".join(sshd.other_host_key.read_text().split()[:2]) + "\n")
    with pytest.raises(HostKeyError, match=r"HOST KEY CHANGED.*ssh-keygen -R"):
        deploy(fleet_board(sshd, tmp_path, known_hosts=wrong), bundle, 0)
    assert not (tmp_path / "board").exists()


def test_key_the_board_does_not_accept(sshd: Sshd, bundle: Path, tmp_path: Path) -> None:
    stranger = keygen(tmp_path / "stranger")
    with pytest.raises(AuthError, match="authentication as root"):
        deploy(fleet_board(sshd, tmp_path, key=stranger), bundle, 0)


def test_unreachable_port(sshd: Sshd, bundle: Path, tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(UnreachableError, match=rf"127\.0\.0\.1:{port}\): cannot reach"):
        deploy(fleet_board(sshd, tmp_path, port=port), bundle, 0)


def test_corrupted_transfer_leaves_nothing_under_the_final_name(sshd: Sshd, bundle: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real_putfo = paramiko.SFTPClient.putfo

    class FlipsOneByte:
        def __init__(self, f) -> None:
            self.f, self.flipped = f, False

        def read(self, n: int) -> bytes:
            data = self.f.read(n)
            if data and not self.flipped:
                self.flipped = True
                return bytes([data[0] ^ 0xFF]) + data[1:]
            return data

    monkeypatch.setattr(paramiko.SFTPClient, "putfo",
                        lambda self, fl, *args, **kwargs: real_putfo(self, FlipsOneByte(fl), *args, **kwargs))
    first = load_manifest(bundle).partition(0).all_files()[0].path
    with pytest.raises(CorruptUploadError, match=rf"corrupted upload of .*/{first}"):
        deploy(fleet_board(sshd, tmp_path), bundle, 0)
    remote = tmp_path / "board" / "bundles" / bundle_id(bundle)
    assert not (remote / first).exists()
    assert stray_temporaries(tmp_path / "board") == []


def test_local_file_that_does_not_match_the_manifest_is_not_uploaded(sshd: Sshd, bundle: Path,
                                                                     tmp_path: Path) -> None:
    tampered = shutil.copytree(bundle, tmp_path / "tampered")
    program = load_manifest(bundle).partition(0).all_files()[1].path
    data = bytearray((tampered / program).read_bytes())
    data[-1] ^= 1
    (tampered / program).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{program} is corrupted"):
        deploy(fleet_board(sshd, tmp_path), tampered, 0)
    assert not (tmp_path / "board").exists()


def test_activate_and_rollback(sshd: Sshd, bundle: Path, tmp_path: Path) -> None:
    board = fleet_board(sshd, tmp_path)
    root = tmp_path / "board"
    newer = rebuilt(bundle, tmp_path, 0, "v2")
    old_id, new_id = bundle_id(bundle), bundle_id(newer)
    with connect(board) as session:
        with pytest.raises(ActivationError, match=f"bundle {old_id} is not uploaded"):
            session.activate(old_id)
        with pytest.raises(ActivationError, match="no previous bundle"):
            session.rollback()
        session.upload(bundle, 0)
        session.activate(old_id)
        assert os.readlink(root / "current") == f"bundles/{old_id}" and not (root / "previous").exists()
        session.upload(newer, 0)
        session.activate(new_id)
        assert (os.readlink(root / "current"), os.readlink(root / "previous")) == (f"bundles/{new_id}",
                                                                                  f"bundles/{old_id}")
        assert (root / "current" / "manifest.json").read_bytes() == (newer / "manifest.json").read_bytes()
        assert session.rollback() == old_id
        assert session.current() == old_id
        assert os.readlink(root / "previous") == f"bundles/{new_id}"
    assert stray_temporaries(root) == []


def test_fleet_assigns_the_bundle_in_partition_order(sshd: Sshd, bundle: Path, tmp_path: Path) -> None:
    fleet_board(sshd, tmp_path)
    assignment = assign(load_fleet(tmp_path / "fleet.yaml"), load_manifest(bundle))
    assert [(k, b.name) for k, b in assignment.placements] == [(0, "zed0"), (1, "zed1"), (2, "zed2")]
    assert assignment.spares == ()


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_upload_meter_shows_every_boards_bytes_on_one_bar(sshd: Sshd, bundle: Path, tmp_path: Path) -> None:
    for k in range(3):
        (tmp_path / f"b{k}").mkdir()
    boards = [fleet_board(sshd, tmp_path / f"b{k}") for k in range(3)]  # three boards' remote roots
    out = Terminal()
    meter = UploadMeter(stream=out)
    with ThreadPoolExecutor(3) as pool:  # as the daemon deploys: every board at once, each in its own thread
        reports = list(pool.map(lambda k: meter.deploy(boards[k], bundle, k), range(3)))
    total = sum(upload_size(bundle, k) for k in range(3))
    assert total == sum(r.bytes_sent for r in reports)
    states = [part.split("\033[K")[0] for part in out.getvalue().split("\r") if part.startswith("uploading [")]
    shown = f"{total / 1e6:.1f} MB" if total >= 1e6 else f"{total / 1e3:.1f} kB"
    assert f"uploading [{'#' * 28}] {shown} of {shown}" in states[-1] and "done in" in states[-1], states[-1]
    assert len(states) >= 2 and out.getvalue().endswith("\n")
    again = Terminal()  # everything is on the boards now: skipped files count as handled
    reports = [UploadMeter(stream=again).deploy(boards[k], bundle, k) for k in range(3)]
    assert all(r.sent == [] for r in reports) and "done in" in again.getvalue()
    piped = io.StringIO()
    UploadMeter(stream=piped).deploy(boards[0], bundle, 0)
    assert piped.getvalue() == ""

"""Bundles stay in their folder: manifests naming paths outside the bundle are refused when written,
loaded, uploaded (real sshd) and run (the real agent), and nothing outside the bundle is touched."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_fixtures import Board, Broker
from cpp_fixtures import server_bin  # noqa: F401  (fixture: builds cpp_server)
from manifest_fixtures import manifest_json, partition_json
from test_deploy import Sshd, fleet_board, sshd  # noqa: F401  (fixture: a real sshd on loopback)

from core.manifest import (
    BundleError,
    Manifest,
    bundle_id_of,
    check_file,
    check_relpath,
    file_entry,
    load_manifest,
    write_manifest,
)
from orchestrator.deployment.deploy import UnsafePathError, connect

UNSAFE = ["../../etc/x", "/etc/passwd", "partition-0/../../x", "partition-0\\..\\x", "a\0b", "", ".", "a//b",
          "partition-0/./x", "line\nbreak", 7, None]


@pytest.mark.parametrize("path", UNSAFE, ids=repr)
def test_unsafe_paths_are_refused(path: object) -> None:
    with pytest.raises(BundleError, match="file path"):
        check_relpath(path)


def test_safe_paths_pass() -> None:
    for path in ("manifest.json", "partition-0/model.onnx", "partition-1/finn_output/bitfile/a.bit.bin", "..a/b.."):
        assert check_relpath(path) == path


def forged_bundle(root: Path, path: str, content: bytes = b"not a program") -> Path:
    """A bundle whose manifest lists `path` for partition 0's program, with that file's true size and hash."""
    root.mkdir(parents=True, exist_ok=True)
    entry = {"path": path, "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    manifest = manifest_json([partition_json(0, files={"program": entry})])
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_a_traversal_manifest_is_refused_when_loaded_and_written(tmp_path: Path) -> None:
    outside = tmp_path / "outside.fsprog"
    outside.write_bytes(b"not a program")  # exists with the listed hash: only the path check can refuse it
    bundle = forged_bundle(tmp_path / "bundle", "../outside.fsprog")
    for verify in (True, False):
        with pytest.raises(BundleError, match=r"'\.\.' component"):
            load_manifest(bundle, verify=verify)
    manifest = json.loads((bundle / "manifest.json").read_text())
    forged = Manifest.from_json(manifest)  # the types do not check paths: the reader and the writer do
    with pytest.raises(BundleError, match=r"'\.\.' component"):
        write_manifest(tmp_path / "bundle", forged)
    with pytest.raises(BundleError, match="not inside the bundle"):
        file_entry(bundle, outside)


def test_a_symbolic_link_out_of_the_bundle_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"root's secret")
    bundle = forged_bundle(tmp_path / "bundle", "partition-0/program.fsprog", b"root's secret")
    (bundle / "partition-0").mkdir()
    (bundle / "partition-0" / "program.fsprog").symlink_to(secret)
    with pytest.raises(BundleError, match="leads outside the bundle"):
        load_manifest(bundle)
    with pytest.raises(BundleError, match="leads outside the bundle"):
        check_file(bundle, load_manifest(bundle, verify=False).partitions[0].files["program"])


def test_uploads_refuse_traversal_and_symbolic_links_on_the_board(sshd: Sshd, tmp_path: Path) -> None:  # noqa: F811
    board = fleet_board(sshd, tmp_path)
    remote_root = tmp_path / "board"
    forged = forged_bundle(tmp_path / "forged", "../../../escaped")
    with connect(board) as session, pytest.raises(BundleError, match=r"'\.\.' component"):
        session.upload(forged, 0)
    assert not remote_root.exists() and not (tmp_path / "escaped").exists()

    with connect(board) as session:
        for bad in ("../x", "/etc/x", "a/../../x"):
            with pytest.raises(UnsafePathError):
                session.final_path(f"{remote_root}/bundles/0123456789abcdef", bad)
        assert session.final_path("/r/bundles/0123456789abcdef", "p/x") == "/r/bundles/0123456789abcdef/p/x"

    # a directory on the board that is a symbolic link would carry the upload elsewhere
    content = b"a program"
    good = forged_bundle(tmp_path / "good", "partition-0/program.fsprog", content)
    (good / "partition-0").mkdir()
    (good / "partition-0" / "program.fsprog").write_bytes(content)
    bid = bundle_id_of((good / "manifest.json").read_bytes())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (remote_root / "bundles" / bid).mkdir(parents=True)
    (remote_root / "bundles" / bid / "partition-0").symlink_to(elsewhere)
    with connect(board) as session, pytest.raises(UnsafePathError, match="is a symbolic link"):
        session.upload(good, 0)
    assert list(elsewhere.iterdir()) == []


@pytest.fixture
def board(tmp_path: Path, server_bin: Path) -> Iterator[Board]:  # noqa: F811
    """A board agent on a fresh broker."""
    broker = Broker(tmp_path)
    b = Board(tmp_path, broker, server_bin)
    yield b
    b.close()
    broker.stop()


def _place(root: Path, bundle: Path) -> str:
    """Put a forged bundle on the board as an upload would (bundles/<id>/manifest.json)."""
    manifest = (bundle / "manifest.json").read_bytes()
    bid = bundle_id_of(manifest)
    (root / "bundles" / bid).mkdir(parents=True)
    (root / "bundles" / bid / "manifest.json").write_bytes(manifest)
    return bid


def test_the_agent_refuses_to_run_a_file_outside_the_bundle(board: Board, tmp_path: Path) -> None:
    evil = tmp_path / "evil.fsprog"
    evil.write_bytes(b"not a program")  # with the listed hash: only the path check stands in the way
    depth = len(board.root.relative_to(tmp_path).parts) + 2  # bundles/<id>/ below remote_root
    bid = _place(board.root, forged_bundle(tmp_path / "forged", "../" * depth + "evil.fsprog"))
    outside_id = "fedcba9876543210"
    (tmp_path / outside_id).mkdir()
    (board.root / "current").symlink_to(tmp_path / outside_id)
    probe = board.probe()
    board.start(probe)
    reply = board.run(probe, bundle=bid, partition=0, next="127.0.0.1:9", backend="emulate")
    assert not reply["ok"] and "must stay inside the bundle" in reply["error"], reply
    status = probe.wait("status", lambda s: s["state"] == "error").payload
    assert "stay inside the bundle" in status["error"]
    reply = board.run(probe, bundle=None, partition=0, next="127.0.0.1:9", backend="emulate")
    assert not reply["ok"] and "not a bundle directory under" in reply["error"], reply
    assert not [m for m in probe.messages if m.leaf == "event"]  # no server was started
    assert evil.read_bytes() == b"not a program" and probe.request("ping")["ok"]

"""The server's protocol-abuse suite: what a stranger on the boards' network can do to an authenticated
chain while it streams — and that the real stream stays bit-exact, in order and complete.

Real server processes, real sockets, and for a peer that vanishes a real network namespace whose
link is cut. Covered: strangers without or with a wrong link key, bogus proofs, frames before the
handshake, strangers at the result port, slowloris handshakes and frames, idle connections, a
connect flood, a stale upstream evicted, a dead upstream freed by keepalive, log injection.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cpp_fixtures import (
    ServerFleet,
    ServerProcess,
    fleet,  # noqa: F401 - fixture
    server_bin,  # noqa: F401 - fixture
)

from orchestrator.dataplane.client import ChainClient, TensorSender
from orchestrator.dataplane.link_auth import new_key, write_key
from orchestrator.dataplane.pipeline_client import ResilientClient
from orchestrator.dataplane.protocol import (
    ConnectionClosed,
    FrameType,
    HandshakeError,
    Hello,
    ProtocolError,
    WireSpec,
    encode_frame,
    read_frame,
)
from orchestrator.rigs.netns import NetworkConfig, VirtualNetwork, netns_available

SPEC = WireSpec.parse("UINT4:1,4,4,8")
KEY = new_key()


def _delay_server(fleet: ServerFleet, next_hop: tuple[str, int], *args: str, name: str = "s0",  # noqa: F811
                  key: bytes | None = KEY, listen: str = "127.0.0.1:0") -> ServerProcess:
    return fleet.start(name, next_hop, "--backend", "delay", "--delay-us", "0", "--spec-in", SPEC.flag(),
                       "--spec-out", SPEC.flag(), *args, key=key, listen=listen)


def _answer(sock: socket.socket) -> str:
    """What the server said before closing: an ERROR's text, "" for a plain close."""
    try:
        frame = read_frame(sock, SPEC.packed_size)
    except ConnectionClosed:
        return ""
    except (ProtocolError, OSError) as exc:
        return f"<{exc}>"
    return frame.payload.decode(errors="replace") if frame.type == FrameType.ERROR else f"<{frame.type.name}>"


class Stream:
    """The real traffic: frames through the chain on a thread while the test attacks it."""

    def __init__(self, client: ResilientClient, count: int, seed: int) -> None:
        """Start streaming `count` random frames."""
        rng = np.random.default_rng(seed)
        self.frames = [rng.integers(0, 16, size=SPEC.shape) for _ in range(count)]
        self.results: list[np.ndarray] = []
        self.error: BaseException | None = None
        self._client = client
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.results = self._client.infer_many(self.frames, timeout_s=120)
        except BaseException as exc:  # reported by check()
            self.error = exc

    def check(self, server: ServerProcess) -> None:
        """Every frame came back bit-exact (the delay backend echoes), none resent."""
        self._thread.join(timeout=150)
        assert self.error is None, self.error
        assert len(self.results) == len(self.frames)
        for got, sent in zip(self.results, self.frames, strict=True):
            np.testing.assert_array_equal(got, sent)
        assert self._client.resent == 0, f"a frame was lost and had to be resent:\n{server.log()}"


@pytest.fixture
def chain(fleet: ServerFleet) -> Iterator[tuple[ServerProcess, ResilientClient]]:  # noqa: F811
    """One authenticated delay server between an authenticated client and its result port."""
    holder: dict[str, ServerProcess] = {}
    client = ResilientClient(SPEC, SPEC, lambda: holder["s"].address if "s" in holder else None, deadline_s=5.0,
                             window=4, key=KEY, last_stage=lambda: "s0")
    holder["s"] = _delay_server(fleet, client.result_address, "--max-upstreams", "2", "--max-handshakes", "4",
                                "--handshake-timeout-ms", "1000", "--io-timeout-ms", "1000")
    yield holder["s"], client
    client.close()


def test_strangers_are_refused_without_learning_the_spec_and_the_stream_is_untouched(
        chain: tuple[ServerProcess, ResilientClient]) -> None:
    server, client = chain
    stream = Stream(client, 400, seed=1)
    answers = {}
    for name, data in {"no key": encode_frame(FrameType.HELLO, 0, Hello("sender", "x", SPEC).encode()),
                       "frames first": encode_frame(FrameType.TENSOR, 2**63, bytes(SPEC.packed_size)) * 3}.items():
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(data)
            answers[name] = _answer(sock)
    with socket.create_connection(server.address, timeout=5) as sock:  # a made-up proof
        sock.sendall(encode_frame(FrameType.HELLO, 0, Hello("sender", "x", SPEC, auth="hmac-sha256",
                                                             nonce="11" * 16).encode()))
        assert read_frame(sock, 0).type == FrameType.AUTH
        sock.sendall(encode_frame(FrameType.AUTH, 0, b"FSPL-AUTH mac=" + b"cd" * 32))
        answers["bogus proof"] = _answer(sock)
    with pytest.raises(HandshakeError, match="failed to authenticate") as wrong:
        TensorSender(server.address, WireSpec.parse("INT8:1,3"), key=new_key())  # another deployment's key
    assert answers["no key"] == "handshake: this link requires authentication"
    assert "TENSOR frame before the handshake" in answers["frames first"]
    assert answers["bogus proof"] == "handshake: authentication failed"
    assert not any("1,4,4,8" in a or "1x4x4x8" in a for a in [*answers.values(), str(wrong.value)])

    # strangers at the client's result port: without the key, and with it but not the last stage
    for key, node in ((None, "s0"), (new_key(), "s0"), (KEY, "board0")):
        with pytest.raises(HandshakeError):
            TensorSender(client.result_address, SPEC, node=node, key=key).send(np.zeros(SPEC.shape, dtype=np.int64))
    stream.check(server)
    assert len(client.port.refused) == 3, client.port.refused
    stats = server.stats(lambda s: s["errors"]["auth"] >= 2)  # a wrong key: the client itself hangs up
    assert stats["frames"]["dropped"] == 0 and stats["errors"]["bad_frame"] >= 1


def test_slowloris_and_idle_connections_lose_their_slots_within_the_deadline(
        chain: tuple[ServerProcess, ResilientClient]) -> None:
    server, client = chain
    hello = encode_frame(FrameType.HELLO, 0, Hello("sender", "slow", SPEC, auth="hmac-sha256",
                                                    nonce="22" * 16).encode())
    began = time.monotonic()
    idle = [socket.create_connection(server.address, timeout=5) for _ in range(4)]
    trickling = [socket.create_connection(server.address, timeout=5) for _ in range(4)]

    def trickle(sock: socket.socket) -> None:
        for byte in hello:  # one byte every 150 ms: each stall is short, the whole never ends in time
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(0.15)

    threads = [threading.Thread(target=trickle, args=(s,), daemon=True) for s in trickling]
    for thread in threads:
        thread.start()
    stream = Stream(client, 200, seed=2)  # meanwhile: the real upstream still gets in and streams
    closed = [_answer(sock) for sock in idle + trickling]
    assert time.monotonic() - began < 3.0, closed  # handshake deadline 1 s, not per stall
    # an authenticated peer trickling a frame's payload is cut off after the frame deadline (1 s) too
    insider = TensorSender(server.address, SPEC, node="insider", key=KEY)
    frame = encode_frame(FrameType.TENSOR, 1, bytes(SPEC.packed_size), session=insider._session)
    insider._sock.sendall(frame[:30])
    cut = time.monotonic()
    with contextlib.suppress(OSError):  # the server closes the connection meanwhile
        for byte in frame[30:60]:  # 100 ms between bytes, 3 s for 30 bytes
            insider._sock.sendall(bytes([byte]))
            time.sleep(0.1)
    log = server.wait_log("not complete within 1000 ms")
    assert time.monotonic() - cut < 5.0 and "insider" in log
    insider._sock.close()
    stream.check(server)
    for sock in idle + trickling:
        sock.close()
    assert server.stats()["frames"]["dropped"] == 0


def test_a_connect_flood_neither_locks_out_nor_disturbs_the_real_upstream(
        chain: tuple[ServerProcess, ResilientClient]) -> None:
    server, client = chain
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{server.port}"], capture_output=True, text=True,
                               check=True).stdout.split()
    assert int(listening[2]) == int(Path("/proc/sys/net/core/somaxconn").read_text())  # the backlog is SOMAXCONN
    stream = Stream(client, 600, seed=3)
    flood: list[socket.socket] = []
    for _ in range(400):
        with_data = len(flood) % 2 == 0
        try:
            sock = socket.create_connection(server.address, timeout=5)
            if with_data:
                sock.sendall(b"FSPL")
            flood.append(sock)
        except OSError:
            continue
    threads = int(next(line.split()[1] for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines()
                       if line.startswith("Threads:")))
    assert threads <= 2 + 4 + 16 + 8, threads  # upstreams + handshakes + winding down + the pipeline's own
    late = TensorSender(server.address, SPEC, node="late", key=KEY)  # a new authenticated upstream still gets in
    late.close()
    stream.check(server)
    for sock in flood:
        sock.close()
    stats = server.stats(lambda s: s["errors"]["evicted"] > 0)
    assert stats["frames"]["dropped"] == 0


def test_a_newly_authenticated_upstream_evicts_a_stale_one(fleet: ServerFleet) -> None:  # noqa: F811
    with ChainClient(SPEC, SPEC, key=KEY, last_stage="s0") as client:
        server = _delay_server(fleet, client.result_address, "--max-upstreams", "1")
        stale = TensorSender(server.address, SPEC, node="predecessor", key=KEY)
        stale.send(np.ones(SPEC.shape, dtype=np.int64))
        client.receiver.receive(timeout=10)
        client.connect(server.address)  # the slot is taken by the silent predecessor: it is evicted
        frames = [np.full(SPEC.shape, i % 16) for i in range(20)]
        for got, sent in zip(client.infer_many(frames), frames, strict=True):
            np.testing.assert_array_equal(got, sent)
        server.wait_log("evicting the least recently active upstream")
        stale._sock.settimeout(5)
        assert stale._sock.recv(100) == b""  # the predecessor's connection was closed
        stale.close()


def test_peer_text_is_escaped_in_the_log(fleet: ServerFleet) -> None:  # noqa: F811
    with ChainClient(SPEC, SPEC) as client:
        server = _delay_server(fleet, client.result_address, key=None)
        sock = socket.create_connection(server.address, timeout=5)
        sock.sendall(encode_frame(FrameType.HELLO, 0, Hello("sender", "liar", SPEC).encode()))
        assert read_frame(sock, 0).type == FrameType.HELLO
        sock.sendall(encode_frame(FrameType.ERROR, 0, b"oops\n12:00:00.000 s0 ERROR forged line\x1b[2J"))
        log = server.wait_log("reports: oops")
        sock.close()
    assert "forged line" in log and not any(line.startswith("12:00:00.000") for line in log.splitlines())
    assert "\\x0a12:00:00.000 s0 ERROR forged line\\x1b[2J" in log


AGENTLESS_UPSTREAM = """
import sys, time
from orchestrator.dataplane.client import TensorSender
from orchestrator.dataplane.link_auth import read_key
from orchestrator.dataplane.protocol import WireSpec
import numpy as np
address, spec = (sys.argv[1], int(sys.argv[2])), WireSpec.parse(sys.argv[3])
sender = TensorSender(address, spec, node="doomed", key=read_key(sys.argv[4]))
sender.send(np.zeros(sender.spec.shape, dtype=np.int64))
print("ready", flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(netns_available() is not None, reason=str(netns_available()))
def test_keepalive_frees_the_slot_of_an_upstream_that_lost_power(fleet: ServerFleet, tmp_path: Path) -> None:  # noqa: F811
    with VirtualNetwork(NetworkConfig(1)) as network, ChainClient(SPEC, SPEC, key=KEY, last_stage="s0") as client:
        server = _delay_server(fleet, client.result_address, "--max-upstreams", "1", "--dead-peer-ms", "2000",
                               listen=f"{network.host_address}:0")
        key_file = write_key(tmp_path / "link.key", KEY)
        upstream = subprocess.Popen(network.command(0, [sys.executable, "-c", AGENTLESS_UPSTREAM, network.host_address,
                                                        str(server.port), SPEC.flag(), str(key_file)]),
                                    stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
        try:
            assert upstream.stdout is not None and upstream.stdout.readline().strip() == "ready"
            client.receiver.receive(timeout=10)
            server.stats(lambda s: s["upstreams"] == 1)
            cut = time.monotonic()
            subprocess.run(["ip", "link", "set", f"{network.config.prefix}b0h", "down"], check=True)  # power loss
            server.stats(lambda s: s["upstreams"] == 0, timeout=15)
            assert time.monotonic() - cut < 8.0
            assert "dropping" in server.wait_log("Connection timed out", timeout=5)  # ETIMEDOUT from the kernel
        finally:
            upstream.kill()
            upstream.wait(timeout=10)

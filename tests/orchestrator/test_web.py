"""The daemon's HTTP server (orchestrator/web/server.py) on a real socket, and the dashboard's rates
(orchestrator/web/dashboard.py) from stats lines as the servers write them. The daemon with its
dashboard and ingress on a virtual fleet: tests/orchestrator/test_dashboard_ingress.py."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import time

import pytest

from orchestrator.web.dashboard import _Rate
from orchestrator.web.server import Response, Route, WebError, WebServer, json_response, parse_address


def _boom(_request):
    raise KeyError("a bug")


def _deny(headers: dict[str, str]) -> None:
    if headers.get("authorization") != "Bearer ok":
        raise WebError(401, "authentication required")


@pytest.fixture
def server():
    routes = {("GET", "/"): Route(lambda _r: Response(200, b"<html></html>", "text/html")),
              ("POST", "/echo"): Route(lambda r: json_response({"n": len(r.body)}), _deny, max_body=1000),
              ("GET", "/boom"): Route(_boom)}
    web = WebServer(("127.0.0.1", 0), routes, max_connections=4)
    yield web
    web.close()


def _ask(web: WebServer, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection(*web.address, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    answer = conn.getresponse()
    data = answer.read()
    conn.close()
    return answer.status, data


def test_every_answer_is_json_and_names_the_cause(server: WebServer) -> None:
    assert _ask(server, "GET", "/")[0] == 200
    assert _ask(server, "POST", "/echo", b"x" * 10, {"Authorization": "Bearer ok"}) == (200, b'{"n": 10}')
    cases = [("GET", "/nope", None, {}, 404, "no such endpoint"),
             ("PUT", "/echo", None, {}, 405, "use POST"),
             ("POST", "/echo", b"x" * 10, {}, 401, "authentication required"),  # before the body is read
             ("POST", "/echo", b"x" * 2000, {"Authorization": "Bearer ok"}, 413, "over this endpoint's limit"),
             ("GET", "/boom", None, {}, 500, "internal error (KeyError)")]
    for method, path, body, headers, status, words in cases:
        got, data = _ask(server, method, path, body, headers)
        assert got == status and words in json.loads(data)["error"], (path, got, data)
    with socket.create_connection(server.address, timeout=10) as raw:  # not HTTP at all
        raw.sendall(b"\x16\x03\x01garbage\r\n\r\n")
        assert b'"error"' in raw.recv(1000)
    assert _ask(server, "GET", "/")[0] == 200  # and the server goes on


def test_addresses_are_checked() -> None:
    assert parse_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_address("[::1]:0") == ("::1", 0)
    for bad in ("8080", "host:", "host:99999", ":80"):
        with pytest.raises(WebError, match="HOST:PORT"):
            parse_address(bad)
    taken = WebServer(("127.0.0.1", 0), {})
    try:
        with pytest.raises(WebError, match="cannot listen"):
            WebServer(taken.address, {})
    finally:
        taken.close()


def _line(uptime: float, out: int, compute_ms: float) -> dict:
    return {"uptime_s": uptime, "frames": {"in": out, "computed": out, "out": out},
            "stage_total_ms": {"compute": compute_ms, "recv_wait": 0.0, "send": out * 0.1}}


def test_rates_from_stats_lines_keep_their_means_through_idle_intervals() -> None:
    rate = _Rate()
    assert rate.update(_line(1.0, 0, 0.0), 0.0)[0] == 0.0  # a baseline
    fps, means = rate.update(_line(1.5, 50, 100.0), 0.5)
    assert fps == pytest.approx(100.0) and means["compute_ms"] == pytest.approx(2.0)
    fps, means = rate.update(_line(2.0, 50, 100.0), 1.0)  # no frames: 0 fps, the last mean stays
    assert fps == 0.0 and means["compute_ms"] == pytest.approx(2.0) and means["send_ms"] == pytest.approx(0.1)
    assert rate.update(_line(2.0, 50, 100.0), 1.5)[0] == 0.0  # the same line again changes nothing
    assert rate.update(_line(0.5, 3, 9.0), 2.0)[0] == 0.0  # a restarted server: a new baseline, never negative
    fps, means = rate.update(_line(1.0, 13, 19.0), 2.5)
    assert fps == pytest.approx(20.0) and means["compute_ms"] == pytest.approx(1.0)
    assert rate.update(_line(1.0, 13, 19.0), 2.5 + 4)[0] == 0.0  # stats stopped: the board sends nothing now


def _drip(address: tuple[str, int], head: bytes, body_bytes: int, tls: ssl.SSLContext | None = None,
          every_s: float = 0.2) -> tuple[bytes, int]:
    """A slow client: `head` at once, then one body byte every `every_s` (each well within the per-operation
    timeout); returns what the server answered and how many body bytes it took before it stopped listening."""
    raw = socket.create_connection(address, timeout=10)
    conn = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
    with conn:
        conn.sendall(head)
        sent = 0
        conn.settimeout(every_s)
        while sent < body_bytes:
            try:
                answer = conn.recv(4096)  # the server has answered, or closed the connection
                break
            except TimeoutError:
                pass
            try:
                conn.sendall(b"x")
            except OSError:
                answer = b""
                break
            sent += 1
        else:
            answer = b""
        conn.settimeout(10)
        while answer and not answer.endswith(b"}"):
            more = conn.recv(4096)
            if not more:
                break
            answer += more
    return answer, sent


def _self_signed(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for localhost, and a client context trusting it."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem"), "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    return server, client


@pytest.mark.parametrize("tls", [False, True])
def test_a_slow_drip_client_gets_408_at_the_request_deadline(tls: bool, tmp_path) -> None:
    contexts = _self_signed(tmp_path) if tls else (None, None)
    routes = {("POST", "/echo"): Route(lambda r: json_response({"n": len(r.body)}), max_body=10_000)}
    web = WebServer(("127.0.0.1", 0), routes, tls=contexts[0], timeout_s=1.0, request_s=1.5)
    try:
        head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        answer, sent = _drip(web.address, head, 1000, contexts[1])
        # a byte every 0.2 s never trips the 1 s per-operation timeout: only the deadline stops it
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"did not arrive within 1.5 s" in answer and b"Connection: close" in answer
        assert sent < 1000
        # the request line and headers dripped: the connection is closed without an answer
        answer, sent = _drip(web.address, b"POST /echo HTTP/1.1\r\n", 1000, contexts[1])
        assert answer == b"" and sent < 1000
        # a prompt client on a keep-alive connection: idle time before a request is not part of its deadline
        conn = (http.client.HTTPSConnection("localhost", web.address[1], context=contexts[1], timeout=10) if tls
                else http.client.HTTPConnection(*web.address, timeout=10))
        for _ in range(3):  # the third request starts over 1.5 s after the first one's first byte
            conn.request("POST", "/echo", body=b"y" * 100)
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b'{"n": 100}')
            time.sleep(0.9)  # idle, under the per-operation timeout
        conn.close()
    finally:
        web.close()

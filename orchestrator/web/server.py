"""A small HTTP(S) server for the daemon's dashboard and ingress (docs/dashboard.md, docs/ingress.md).

The standard library's threading HTTP server, hardened for a LAN: a bounded number of connections
(more are closed at once), a timeout on every socket operation (idle connections go), a deadline for
each whole request from its first byte (a client dripping bytes cannot hold a connection: 408 and
closed), a body size cap checked against Content-Length before anything is read, authorization before the body is read,
TLS handshakes in the connection's own thread, and every answer JSON (errors too: `{"error": ...}`,
never a traceback or the default HTML page). A handler that raises gets a 500 naming the exception
type; the server goes on.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.errors import FinnsplitError

log = logging.getLogger("orchestrator.web.server")
DRAIN_LIMIT = 1 << 20  # an unread body up to this size is read and dropped before an error is sent


class RequestDeadline(TimeoutError):
    """A request whose bytes did not all arrive within the request deadline."""


class _DeadlineReader(io.RawIOBase):
    """A connection's bytes, each read bounded by the per-operation timeout and by the request's deadline.

    The deadline starts with the first byte of a request (`next_request()` re-arms it), so a
    keep-alive connection's idle wait is the per-operation timeout's business alone.
    """

    def __init__(self, sock: socket.socket, timeout_s: float, request_s: float) -> None:
        self.sock, self.timeout_s, self.request_s = sock, timeout_s, request_s
        self.deadline: float | None = None

    def next_request(self) -> None:
        """The next byte read starts a new request's clock."""
        self.deadline = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is None:
            self.sock.settimeout(self.timeout_s)
        else:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise RequestDeadline(f"request not complete within {self.request_s:g} s")
            self.sock.settimeout(min(self.timeout_s, left))
        try:
            got = self.sock.recv_into(buffer)
        except TimeoutError:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise RequestDeadline(f"request not complete within {self.request_s:g} s") from None
            raise
        if got and self.deadline is None:
            self.deadline = time.monotonic() + self.request_s
        return got


class WebError(FinnsplitError):
    """A request that cannot be served, with the HTTP status to answer."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """`message` is what the client reads in `{"error": message}`."""
        super().__init__(message)
        self.status, self.headers = status, headers or {}


@dataclass(frozen=True)
class Request:
    """One request as a handler sees it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    peer: str


@dataclass(frozen=True)
class Response:
    """One answer."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(payload: Any, status: int = 200) -> Response:
    """A JSON answer."""
    return Response(status, json.dumps(payload).encode())


@dataclass(frozen=True)
class Route:
    """What serves one method and path: `authorize(headers)` raises WebError before the body is read."""

    handler: Callable[[Request], Response]
    authorize: Callable[[dict[str, str]], None] | None = None
    max_body: int = 0  # bytes; 0: no body accepted


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT (port 0: any free port) as (host, port); WebError naming the text otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise WebError(0, f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    return host.strip("[]"), int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], routes: dict[tuple[str, str], Route], tls: ssl.SSLContext | None,
                 max_connections: int, timeout_s: float, request_s: float) -> None:
        self.routes, self.tls, self.timeout_s, self.request_s = routes, tls, timeout_s, request_s
        self.slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):  # a connection flood: the newest are closed at once
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.info("connection from %s failed", client_address[0] if client_address else "?")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "finnsplit"
    sys_version = ""

    def setup(self) -> None:
        self.request.settimeout(self.server.timeout_s)
        # headers and body are separate writes: without this, Nagle waits for the client's delayed ACK (40 ms)
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.tls is not None:
            self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()
        self.rfile.close()  # the base class's reader: replaced by one that keeps the request deadline
        self._reader = _DeadlineReader(self.connection, self.server.timeout_s, self.server.request_s)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        self._reader.next_request()
        super().handle_one_request()  # a TimeoutError reading the request line or headers closes the connection

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's own errors (a malformed request line, headers too long) as JSON."""
        self._answer(Response(code, json.dumps({"error": message or explain or "bad request"}).encode()), close=True)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        length = self.headers.get("Content-Length", "0")
        self._unread = int(length) if length.isdigit() else 0
        try:
            response = self._dispatch(method, path)
        except WebError as exc:
            response = Response(exc.status, json.dumps({"error": str(exc)}).encode(), headers=exc.headers)
        except Exception as exc:  # a bug in a handler: one 500, the server goes on
            log.exception("%s %s failed", method, path)
            response = Response(500, json.dumps({"error": f"internal error ({type(exc).__name__})"}).encode())
        self._answer(response, close=response.status >= 400)

    def _dispatch(self, method: str, path: str) -> Response:
        route = self.server.routes.get((method, path))
        if route is None:
            allowed = sorted(m for m, p in self.server.routes if p == path)
            if allowed:
                raise WebError(405, f"{method} {path}: use {' or '.join(allowed)}", {"Allow": ", ".join(allowed)})
            raise WebError(404, f"no such endpoint: {path}")
        headers = {k.lower(): v for k, v in self.headers.items()}
        if route.authorize is not None:
            route.authorize(headers)
        return route.handler(Request(method, path, headers, self._body(headers, route.max_body),
                                     self.client_address[0]))

    def _body(self, headers: dict[str, str], limit: int) -> bytes:
        if "transfer-encoding" in headers:
            raise WebError(411, "chunked bodies are not accepted: send Content-Length")
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit():
            raise WebError(400, f"Content-Length {length_text[:20]!r} is not a number")
        length = int(length_text)
        if length > limit:
            raise WebError(413, f"body of {length:,} B is over this endpoint's limit of {limit:,} B")
        try:
            body = self.rfile.read(length) if length else b""
        except RequestDeadline:
            self._unread = 0  # nothing more is read from this client: the answer, then the connection closes
            raise WebError(408, f"the request did not arrive within {self.server.request_s:g} s "
                                f"({self.server.timeout_s:g} s at most between bytes)") from None
        self._unread = 0
        if len(body) != length:
            raise WebError(400, f"body ended after {len(body):,} of {length:,} B")
        return body

    def _answer(self, response: Response, close: bool) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in response.headers.items():
                self.send_header(name, value)
            if close:  # after an error the rest of the stream (an unread body) cannot be trusted
                self.send_header("Connection", "close")
                self.close_connection = True
                # closing with unread bytes resets the connection, and the client would never read
                # why it was refused: a small body is read and dropped first
                if 0 < getattr(self, "_unread", 0) <= DRAIN_LIMIT:
                    self.rfile.read(self._unread)
            self.end_headers()
            self.wfile.write(response.body)
        except OSError:
            self.close_connection = True


class WebServer:
    """Serves `routes` on `address` from a background thread until `close()`."""

    def __init__(self, address: tuple[str, int], routes: dict[tuple[str, str], Route],
                 tls: ssl.SSLContext | None = None, max_connections: int = 32, timeout_s: float = 10.0,
                 request_s: float = 60.0) -> None:
        """Bind now (WebError naming the address if it cannot), serve in a thread.

        `timeout_s`: at most this long for any one socket operation (an idle connection is closed);
        `request_s`: a whole request (line, headers, body) from its first byte (a 64 MiB body at 2 MB/s).
        """
        try:
            self._server = _Server(address, routes, tls, max_connections, timeout_s, request_s)
        except OSError as exc:
            raise WebError(0, f"cannot listen on {address[0]}:{address[1]}: {exc.strerror or exc}") from None
        self.tls = tls is not None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the real port when 0 was asked)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """The server's base URL."""
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{shown}:{port}/"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return all(info[4][0].startswith("127.") or info[4][0] == "::1" for info in infos)

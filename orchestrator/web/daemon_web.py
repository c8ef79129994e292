"""The daemon's web side: the live dashboard and the ingress, started beside its reconcile loop.

`finnsplit daemon BUNDLE --fleet F --web HOST:PORT --ingress HOST:PORT` (docs/dashboard.md,
docs/ingress.md). Both read the orchestrator that a FleetSession runs; the ingress streams through
the session's resilient client, which nothing else in the daemon uses.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

from orchestrator.control.fleet import Fleet
from orchestrator.control.session import FleetSession
from orchestrator.dataplane.ingress import Ingress, IngressSetupError, read_token, server_tls
from orchestrator.web.dashboard import DashboardState, RecentLog
from orchestrator.web.dashboard_page import PAGE
from orchestrator.web.server import Response, Route, WebServer, is_loopback, json_response, parse_address

Log = Callable[[str], None]
ANY_HOST = ("0.0.0.0", "::", "")


def default_token_file(fleet: Fleet) -> Path:
    """fleet-secrets/ingress.token: beside the fleet CA's certificate that `finnsplit fleet init` wrote."""
    if fleet.broker.ca_file is None:
        raise IngressSetupError("the ingress needs the fleet's secrets (broker.ca_file in the fleet file; "
                                "`finnsplit fleet init`)")
    return Path(fleet.broker.ca_file).parent / "ingress.token"


def check_options(fleet: Fleet, web: str | None, ingress: str | None, token_file: str | None) -> None:
    """Refuse a bad HOST:PORT or an unusable token before anything is deployed."""
    for address in (web, ingress):
        if address:
            parse_address(address)
    if ingress:
        read_token(Path(token_file) if token_file else default_token_file(fleet))


def start_ingress(stack: contextlib.ExitStack, session: FleetSession, address: str, token_file: str | None,
                  say: Log) -> Ingress:
    """Serve the ingress on `address` (HTTPS, the fleet CA's certificate, the fleet's token) until `stack` closes."""
    host, port = parse_address(address)
    fleet, manifest, bundle = session.orch.fleet, session.orch.manifest, session.orch.bundle_dir
    token_path = Path(token_file) if token_file else default_token_file(fleet)
    token = read_token(token_path)
    secrets_dir = default_token_file(fleet).parent
    hosts = [fleet.client_host, "127.0.0.1", "localhost"] if host in ANY_HOST else [host]
    ingress = Ingress(session.client, manifest, bundle, token, lambda: session.orch.state)
    stack.callback(ingress.close)
    server = WebServer((host, port), ingress.routes(), server_tls(secrets_dir, hosts))
    stack.callback(server.close)
    ingress.address = server.url
    say(f"ingress at {server.url}v1/infer (token {token_path}, CA {fleet.broker.ca_file}; docs/ingress.md)")
    return ingress


def start_dashboard(stack: contextlib.ExitStack, session: FleetSession, address: str, recent: RecentLog | None,
                    ingress: Ingress | None, say: Log) -> WebServer:
    """Serve the dashboard on `address` (read-only, plain HTTP) until `stack` closes."""
    host, port = parse_address(address)
    state = DashboardState(session.orch, recent, ingress.stats if ingress else None)
    stop = threading.Event()
    sampler = threading.Thread(target=state.run, args=(stop,), daemon=True)
    sampler.start()
    stack.callback(sampler.join, 5)
    stack.callback(stop.set)
    routes = {("GET", "/"): Route(lambda _r: Response(200, PAGE.encode(), "text/html; charset=utf-8")),
              ("GET", "/api/state"): Route(lambda _r: json_response(state.snapshot()))}
    server = WebServer((host, port), routes)
    stack.callback(server.close)
    say(f"dashboard at {server.url}" + ("" if is_loopback(host) else
                                         " (read-only, unauthenticated: reachable by anyone on this network)"))
    return server

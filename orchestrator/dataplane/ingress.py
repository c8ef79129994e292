"""The daemon's ingress: other programs send frames to a running `finnsplit daemon` (docs/ingress.md).

HTTPS + JSON: `POST /v1/infer` with tensors (base64 of raw little-endian values) or JPEG/PNG
images, authenticated by the fleet's ingress token (`finnsplit fleet init` makes it) as a bearer
token, over TLS with a certificate the fleet's CA signs. Every request is checked completely
(token, size, JSON, shape, dtype, every image decodes) before any of it reaches the pipeline, so a
bad request gets an error naming what is wrong and the stream of everyone else goes on.

Requests from any number of senders are queued; one worker takes what is waiting, sends it as one
stream through the daemon's resilient client (it survives failovers) and hands every request back
exactly its own frames' results, in its order: results of different senders never mix.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import json
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import FinnsplitError
from core.manifest import Manifest
from orchestrator.control.pki import issue_server_cert
from orchestrator.dataplane.bundle_io import HostInputError, finish_output, prepare_input
from orchestrator.dataplane.pipeline_client import ResilientClient
from orchestrator.dataplane.user_io import UserInputError, load_image, outputs_are_labels, preprocessing_for, top_k
from orchestrator.web.server import Request, Response, Route, WebError, json_response

DTYPES = ("uint8", "int8", "uint16", "int16", "int32", "int64", "float32", "float64")
TOKEN_HEADER = "authorization"
MAX_BODY = 64 * 1024 * 1024  # one request's JSON: about 80 frames of 224x224x3 float32 in base64


class IngressSetupError(FinnsplitError):
    """The ingress cannot start: no token file, a token others can read, no fleet CA."""


def read_token(path: str | Path) -> bytes:
    """The ingress token in `path`, refused if missing, empty, or readable by group or others."""
    path = Path(path)
    if not path.is_file():
        raise IngressSetupError(f"{path}: no ingress token; `finnsplit fleet init --fleet FLEET.yaml` makes one")
    if path.stat().st_mode & 0o077:
        raise IngressSetupError(f"{path}: group or others can read the ingress token (chmod 600 it)")
    token = path.read_bytes().strip()
    if len(token) < 16:
        raise IngressSetupError(f"{path}: the ingress token is too short ({len(token)} characters, at least 16)")
    return token


def server_tls(secrets_dir: Path, hosts: list[str]) -> ssl.SSLContext:
    """A TLS server context with a certificate for `hosts` signed by the fleet's CA (secrets_dir/ingress/)."""
    if not (secrets_dir / "ca.key").is_file():
        raise IngressSetupError(f"{secrets_dir}: no fleet CA (ca.key); run `finnsplit fleet init`")
    out = secrets_dir / "ingress"
    out.mkdir(mode=0o700, exist_ok=True)
    cert, key = issue_server_cert(secrets_dir, out, "ingress", hosts)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


@dataclass
class _Job:
    tensors: list[np.ndarray]
    done: threading.Event = field(default_factory=threading.Event)
    outputs: list[np.ndarray] = field(default_factory=list)
    error: str | None = None


@dataclass
class IngressCounters:
    """What the dashboard shows of the ingress."""

    requests: int = 0
    frames: int = 0
    refused: int = 0
    failed: int = 0
    pending: int = 0


class Ingress:
    """Validates requests, queues their frames for the pipeline and answers each with its own results."""

    def __init__(self, client: ResilientClient, manifest: Manifest, bundle_dir: str | Path, token: bytes,
                 state: Callable[[], str], max_frames: int = 256, timeout_s: float = 120.0) -> None:
        """`client`: the daemon's resilient client (only this worker uses it); `state()`: the pipeline's state."""
        self.client, self.manifest, self.bundle_dir = client, manifest, Path(bundle_dir)
        self.token, self.state, self.max_frames, self.timeout_s = token, state, max_frames, timeout_s
        self.shape = [int(d) for d in manifest.host.model_input.shape]
        self.max_body = MAX_BODY
        self.counters = IngressCounters()
        self.address = ""
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, daemon=True)
        self._worker.start()

    def routes(self) -> dict[tuple[str, str], Route]:
        """The ingress's endpoints."""
        return {("POST", "/v1/infer"): Route(self.infer, self.authorize, self.max_body),
                ("GET", "/v1/model"): Route(self.model, self.authorize)}

    def stats(self) -> dict[str, Any]:
        """The dashboard's `ingress` section."""
        c = self.counters
        return {"ingress": {"address": self.address, "requests": c.requests, "frames": c.frames,
                            "refused": c.refused, "failed": c.failed, "pending": c.pending}}

    # ---- requests -------------------------------------------------------------------------------
    def authorize(self, headers: dict[str, str]) -> None:
        """Refuse a request without the right bearer token (before its body is read)."""
        given = headers.get(TOKEN_HEADER)
        if given is None:
            self._count("refused")
            raise WebError(401, "authentication required: send 'Authorization: Bearer TOKEN' with the fleet's "
                                "ingress token (fleet-secrets/ingress.token, docs/ingress.md)",
                           {"WWW-Authenticate": 'Bearer realm="finnsplit"'})
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.token):
            self._count("refused")
            raise WebError(403, "wrong ingress token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def model(self, _request: Request) -> Response:
        """What the model takes and gives (so a client can shape its tensors)."""
        return json_response({"bundle": self.manifest.model.name, "input_shape": self.shape,
                              "output_shape": list(self.manifest.output.shape), "max_frames": self.max_frames,
                              "outputs_are_labels": outputs_are_labels(self.manifest)})

    def infer(self, request: Request) -> Response:
        """`POST /v1/infer`: run the request's frames, answer with their results."""
        try:
            raws, top = self._parse(request.body)
            tensors = [prepare_input(self.manifest, self.bundle_dir, raw) for raw in raws]
        except (UserInputError, HostInputError) as exc:
            self._count("refused")
            raise WebError(400, str(exc)) from None
        except WebError:
            self._count("refused")
            raise
        state = self.state()
        if state in ("starting", "waiting", "degraded"):
            raise WebError(503, f"the pipeline is {state}, not running; try again later", {"Retry-After": "5"})
        began = time.perf_counter()
        job = _Job(tensors)
        with self._lock:
            self.counters.requests += 1
            self.counters.pending += len(tensors)
        self._queue.put(job)
        if not job.done.wait(self.timeout_s + 30):
            raise WebError(504, f"no results within {self.timeout_s + 30:g} s")
        if job.error is not None:
            raise WebError(503, f"the pipeline did not deliver: {job.error}")
        return json_response(self._answer(job.outputs, top, time.perf_counter() - began))

    def _parse(self, body: bytes) -> tuple[list[np.ndarray], int | None]:
        try:
            request = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise WebError(400, f"body is not JSON: {exc}") from None
        if not isinstance(request, dict):
            raise WebError(400, "body must be a JSON object with 'tensors' or 'images'")
        unknown = set(request) - {"tensors", "images", "top"}
        if unknown:
            raise WebError(400, f"unknown fields {sorted(unknown)}; known: tensors, images, top")
        if ("tensors" in request) == ("images" in request):
            raise WebError(400, "give exactly one of 'tensors' and 'images'")
        top = request.get("top")
        if top is not None and (not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= 1000):
            raise WebError(400, f"'top' must be an integer 1..1000, got {str(top)[:40]}")
        raws = self._tensors(request["tensors"]) if "tensors" in request else self._images(request["images"])
        return raws, top

    def _tensors(self, given: object) -> list[np.ndarray]:
        if not isinstance(given, dict) or set(given) != {"dtype", "shape", "data"}:
            raise WebError(400, "'tensors' must be {\"dtype\", \"shape\", \"data\"} (docs/ingress.md)")
        dtype, shape, data = given["dtype"], given["shape"], given["data"]
        if dtype not in DTYPES:
            raise WebError(400, f"dtype {str(dtype)[:20]!r} is not one of {', '.join(DTYPES)}")
        if (not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
                or shape[1:] != self.shape[1:] or not shape or not 1 <= shape[0] <= self.max_frames):
            raise WebError(400, f"shape {str(shape)[:60]} must be [N, {', '.join(map(str, self.shape[1:]))}] "
                                f"with 1 <= N <= {self.max_frames}")
        if not isinstance(data, str):
            raise WebError(400, "'data' must be a base64 string of the raw little-endian values")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise WebError(400, "'data' is not valid base64") from None
        kind = np.dtype(dtype).newbyteorder("<")
        expected = int(np.prod(shape)) * kind.itemsize
        if len(raw) != expected:
            raise WebError(400, f"'data' holds {len(raw):,} B; shape {shape} of {dtype} is {expected:,} B")
        values = np.frombuffer(raw, kind).reshape(shape).astype(kind.newbyteorder("="))
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise WebError(400, "'data' holds NaN or infinite values")
        return [values[i:i + 1] for i in range(shape[0])]

    def _images(self, given: object) -> list[np.ndarray]:
        if not isinstance(given, list) or not given or not all(isinstance(x, str) for x in given):
            raise WebError(400, "'images' must be a non-empty list of base64 strings (JPEG or PNG files)")
        if len(given) > self.max_frames:
            raise WebError(400, f"{len(given)} images; at most {self.max_frames} per request")
        prep = preprocessing_for(self.manifest)
        raws = []
        for i, text in enumerate(given):
            try:
                raws.append(load_image(io.BytesIO(base64.b64decode(text, validate=True)), prep))  # type: ignore[arg-type]
            except (binascii.Error, ValueError):
                raise WebError(400, f"images[{i}] is not valid base64") from None
            except Exception:  # UserInputError, or anything else Pillow raises on a hostile file
                raise WebError(400, f"images[{i}] is not a readable JPEG or PNG image") from None
        return raws

    def _answer(self, outputs: list[np.ndarray], top: int | None, seconds: float) -> dict[str, Any]:
        results = np.concatenate([finish_output(self.manifest, y, self.bundle_dir) for y in outputs])
        answer: dict[str, Any] = {"frames": len(outputs), "seconds": round(seconds, 4),
                                  "outputs": {"dtype": str(results.dtype), "shape": list(results.shape),
                                              "data": base64.b64encode(results.astype(results.dtype.newbyteorder("<"))
                                                                       .tobytes()).decode()}}
        if top is not None:
            labels = outputs_are_labels(self.manifest)
            answer["top"] = [[{"class": c, "score": s} for c, _, s in top_k(r, top, indices=labels)] for r in results]
        return answer

    # ---- the worker -----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            while sum(len(j.tensors) for j in batch) < self.max_frames:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        """One stream for every waiting request; each gets back the slice of results of its own frames."""
        frames = [t for job in batch for t in job.tensors]
        try:
            outputs = self.client.infer_many(frames, timeout_s=self.timeout_s)
        except Exception as exc:  # ProtocolError (timeout), OSError: every request of this batch is told
            for job in batch:
                job.error = str(exc) or type(exc).__name__
            self._count("failed", len(batch))
        else:
            start = 0
            for job in batch:
                job.outputs = outputs[start:start + len(job.tensors)]
                start += len(job.tensors)
            self._count("frames", len(frames))
        with self._lock:
            self.counters.pending -= len(frames)
        for job in batch:
            job.done.set()

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.counters, what, getattr(self.counters, what) + n)

    def close(self) -> None:
        """Stop the worker after the batch it runs."""
        self._queue.put(None)
        self._worker.join(timeout=self.timeout_s)

"""A client for the daemon's ingress (docs/ingress.md): what another program uses to send it frames."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import FinnsplitError


class IngressRequestError(FinnsplitError):
    """The ingress refused a request (its HTTP status and message), or could not be reached."""

    def __init__(self, status: int, message: str) -> None:
        """`status` 0: no answer at all."""
        super().__init__(f"ingress answered {status}: {message}" if status else message)
        self.status = status


class IngressClient:
    """Sends tensors or images to `url` (https://HOST:PORT/) with the fleet's token, trusting only its CA."""

    def __init__(self, url: str, token_file: str | Path, ca_file: str | Path, timeout_s: float = 180.0) -> None:
        """`token_file`: fleet-secrets/ingress.token; `ca_file`: fleet-secrets/ca.crt."""
        self.url = url.rstrip("/")
        self.token = Path(token_file).read_text().strip()
        self.context = ssl.create_default_context(cafile=str(ca_file))
        self.timeout_s = timeout_s
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPSConnection:
        """This thread's kept-alive connection (one TLS handshake per thread, not per request)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            parts = urllib.parse.urlsplit(self.url)
            conn = self._local.conn = http.client.HTTPSConnection(parts.hostname or "", parts.port or 443,
                                                                  timeout=self.timeout_s, context=self.context)
        return conn

    def request(self, path: str, payload: dict[str, Any] | None = None, token: str | None = None) -> dict[str, Any]:
        """One call: POST `payload` as JSON (GET without one); the answer as a dict, IngressRequestError if refused."""
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if token is None:
            token = self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in (0, 1):  # a kept-alive connection the server closed meanwhile: once more on a new one
            conn = self._connection()
            try:
                conn.request("GET" if data is None else "POST", path, body=data, headers=headers)
                answer = conn.getresponse()
                body = answer.read()
                break
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                self._local.conn = None
                if attempt or isinstance(exc, TimeoutError):
                    raise IngressRequestError(0, f"ingress {self.url} unreachable: {exc}") from None
        if answer.will_close:
            conn.close()
            self._local.conn = None
        if answer.status != 200:
            try:
                message = json.loads(body).get("error", "")
            except ValueError:
                message = body[:200].decode(errors="replace")
            raise IngressRequestError(answer.status, message)
        return json.loads(body)

    def infer(self, tensors: np.ndarray, top: int | None = None) -> np.ndarray:
        """The model's outputs for a batch of inputs (N first, the original model's layout)."""
        batch = np.ascontiguousarray(tensors)
        payload: dict[str, Any] = {"tensors": {"dtype": str(batch.dtype), "shape": list(batch.shape),
                                               "data": base64.b64encode(batch.astype(batch.dtype.newbyteorder("<"))
                                                                        .tobytes()).decode()}}
        if top is not None:
            payload["top"] = top
        return decode_outputs(self.request("/v1/infer", payload))

    def infer_images(self, images: list[bytes], top: int = 5) -> dict[str, Any]:
        """The answer for JPEG/PNG file contents: `outputs` and `top` (class, score) per image."""
        return self.request("/v1/infer", {"images": [base64.b64encode(x).decode() for x in images], "top": top})


def decode_outputs(answer: dict[str, Any]) -> np.ndarray:
    """The `outputs` of an ingress answer as an array."""
    out = answer["outputs"]
    return np.frombuffer(base64.b64decode(out["data"]), np.dtype(out["dtype"]).newbyteorder("<")).reshape(out["shape"])

"""A client for the daemon's ingress (docs/ingress.md): what another program uses to send it frames."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
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

    def request(self, path: str, payload: dict[str, Any] | None = None, token: str | None = None) -> dict[str, Any]:
        """One call: POST `payload` as JSON (GET without one); the answer as a dict, IngressRequestError if refused."""
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if token is None:
            token = self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self.context) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                message = json.loads(body).get("error", "")
            except ValueError:
                message = body[:200].decode(errors="replace")
            raise IngressRequestError(exc.code, message) from None
        except (urllib.error.URLError, OSError) as exc:
            raise IngressRequestError(0, f"ingress {self.url} unreachable: {exc}") from None

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

"""A small client for the inference API (issue #3 contract), used by ``enroll`` and ``annotate``.

Every failure becomes a ``PipelineError`` with the API's own ``detail`` when it sent one, so the
command line shows "cannot reach the API at ..." or "422: no face in image 2" instead of a
``requests`` traceback.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Sequence

import requests

from .errors import PipelineError

TIMEOUT_S = 120.0  # an enrollment of several photos on a busy CPU can take a while


class ApiError(PipelineError):
    """The API answered with an error status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"the API answered {status}: {detail}")
        self.status = status
        self.detail = detail


class ApiClient:
    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise PipelineError(f"--api must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("FACE_API_KEY")
        self._local = threading.local()  # one connection pool per thread: annotate sends in parallel

    @property
    def session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        url = self.base_url + path
        try:
            response = self.session.request(method, url, headers=headers, timeout=TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            reason = "timed out" if isinstance(exc, requests.Timeout) else exc.__class__.__name__
            raise PipelineError(f"cannot reach the API at {self.base_url} ({reason}): is it running?") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text[:300]
            raise ApiError(response.status_code, str(detail))
        try:
            return response.json() if response.content else None
        except ValueError:
            raise PipelineError(f"{url} did not answer JSON: is {self.base_url} the inference API?") from None

    def health(self) -> dict:
        payload = self._call("GET", "/health")
        if not isinstance(payload, dict) or "embedder" not in payload:
            raise PipelineError(f"{self.base_url}/health is not the inference API's health answer")
        return payload

    def recognize(self, jpeg: bytes, threshold: float | None = None) -> dict:
        data = {} if threshold is None else {"threshold": str(threshold)}
        return self._call("POST", "/recognize", files={"image": ("frame.jpg", jpeg, "image/jpeg")}, data=data)

    def enroll(self, name: str, images: Sequence[tuple[str, bytes]], consent: str | None = None) -> dict:
        """Enroll the largest face of each image under ``name``; all or nothing on the API's side."""
        files = [("image", (filename, data, "image/jpeg")) for filename, data in images]
        data = {} if consent is None else {"consent": consent}
        return self._call("POST", f"/identities/{requests.utils.quote(name, safe='')}/faces", files=files, data=data)

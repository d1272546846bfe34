"""The only module that talks to the inference API: one method per endpoint the site uses.

Every failure (an HTTP error from the API, the API down, a timeout, an answer that is not JSON)
becomes an :class:`ApiError` whose ``message`` a person can read, so the views only ever have one
kind of error to show and never a stack trace.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

# What each status from the API means to the person using the site; the API's own ``detail``
# follows it, because it says exactly what was wrong (which image, which limit).
_STATUS_MESSAGES = {
    400: "The image could not be read",
    401: "The face service refused the request: the site's API key is missing or wrong",
    404: "Not found",
    413: "The upload is too large",
    415: "That file is not an image the service can read",
    422: "Not accepted",
    503: "The face service is busy right now; please try again in a few seconds",
}


@dataclass(frozen=True)
class Upload:
    """One uploaded file, held in memory."""

    filename: str
    data: bytes
    content_type: str = "application/octet-stream"

    def as_field(self, field: str) -> tuple[str, tuple[str, bytes, str]]:
        return field, (self.filename or "upload", self.data, self.content_type or "application/octet-stream")


class ApiError(Exception):
    """The API could not do what was asked; ``status`` is the HTTP status to show (502 when unreachable)."""

    def __init__(self, message: str, status: int = 502, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail


def _detail_text(detail: Any) -> str:
    """FastAPI sends a string, or for validation errors a list of {loc, msg}; make either one line."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p not in ("body", "query", "path"))
                msg = str(item.get("msg", ""))
                parts.append(f"{loc}: {msg}" if loc else msg)
            else:
                parts.append(str(item))
        return "; ".join(p for p in parts if p)
    return "" if detail is None else str(detail)


class FaceApi:
    """A small client of the inference API (contract: issue #3).

    One ``requests.Session`` is shared by the site's request threads: its urllib3 pool is
    thread-safe and keeps connections to the API alive, which saves a TCP handshake per page.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        session: requests.Session | None = None,
        read_api_key: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.read_api_key = read_api_key
        self.timeout = timeout
        self.session = session or requests.Session()

    # --- endpoints -----------------------------------------------------------------------------
    def health(self) -> dict:
        return self._json("GET", "/health")

    def recognize(self, upload: Upload) -> dict:
        """``POST /recognize``: every face with its box, identity (or None), similarity, candidates."""
        return self._json("POST", "/recognize", files=[upload.as_field("image")])

    def enroll(
        self, name: str, uploads: list[Upload], boxes: list[str] | None = None, consent: str | None = None
    ) -> dict:
        """``POST /identities/{name}/faces``: one face of each photo (the one at its ``box``, else
        the largest), all or nothing; ``consent`` is recorded with the identity."""
        data: dict = {}
        if boxes:
            data["box"] = boxes
        if consent:
            data["consent"] = consent
        return self._json(
            "POST",
            f"/identities/{self._name(name)}/faces",
            files=[u.as_field("image") for u in uploads],
            data=data or None,
            write=True,
        )

    def identities(self) -> list[dict]:
        """``GET /identities`` as a list of ``{"name", "faces"}``."""
        body = self._json("GET", "/identities")
        items = body.get("identities") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ApiError("The face service answered with an unexpected gallery listing", status=502)
        return items

    def delete_identity(self, name: str) -> None:
        """``DELETE /identities/{name}``; an unknown name is an ApiError with status 404."""
        self._request("DELETE", f"/identities/{self._name(name)}", write=True)

    # --- plumbing ------------------------------------------------------------------------------
    @staticmethod
    def _name(name: str) -> str:
        # Names may hold spaces, apostrophes and dots; nothing in them may act as a path separator.
        return quote(name, safe="")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ApiError("The face service answered with something that is not JSON", status=502) from None

    def _request(self, method: str, path: str, *, write: bool = False, **kwargs: Any) -> requests.Response:
        headers = {"Accept": "application/json"}
        # Reads go with the read key where the site has one, else with the write key, which the
        # API accepts for reads too: the write key travels no more than it has to.
        key = self.api_key if write else self.read_api_key or self.api_key
        if key:
            headers["X-API-Key"] = key
        url = self.base_url + path
        try:
            response = self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise ApiError(
                f"The face service at {self.base_url} did not answer within {self.timeout:g} s; try again later",
                status=504,
            ) from None
        except requests.ConnectionError:
            raise ApiError(
                f"The face service at {self.base_url} is not reachable; is it running?", status=502
            ) from None
        except requests.RequestException as exc:
            raise ApiError(f"Could not talk to the face service: {exc.__class__.__name__}", status=502) from None
        if response.status_code >= 400:
            raise self._error(response)
        return response

    @staticmethod
    def _error(response: requests.Response) -> ApiError:
        status = response.status_code
        try:
            detail = _detail_text(response.json().get("detail"))
        except (ValueError, AttributeError):
            detail = ""
        prefix = _STATUS_MESSAGES.get(status)
        if prefix is None:
            prefix = "The face service failed" if status >= 500 else f"The face service refused the request ({status})"
        message = f"{prefix}: {detail}" if detail and status != 503 else prefix
        retry = response.headers.get("Retry-After", "")
        if status == 503 and retry.isdigit():
            message = f"The face service is busy right now; please try again in {retry} s"
        # 5xx from the API is a gateway problem from the browser's point of view.
        shown = status if status < 500 or status == 503 else 502
        return ApiError(message, status=shown, detail=detail or None)

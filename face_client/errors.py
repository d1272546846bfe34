"""The one error the client raises: the API refused, failed, or could not be reached."""

from __future__ import annotations

from typing import Any

# What each status from the API means to a person; the API's own ``detail`` follows it, because
# it says exactly what was wrong (which image, which limit).
STATUS_MESSAGES = {
    400: "The image could not be read",
    401: "The face service refused the request: the API key is missing or wrong",
    404: "Not found",
    413: "The upload is too large",
    415: "That file is not an image the service can read",
    422: "Not accepted",
    503: "The face service is busy right now; please try again in a few seconds",
}


class ApiError(Exception):
    """The API could not do what was asked.

    ``api_status``: the HTTP status the API answered with (200 for an answer that is not what
    the endpoint sends), or None when no answer came (not reachable, timed out). ``status``: the status a gateway relays for it, which the site shows:
    the API's own for 4xx and 503, 502 for its other failures and when unreachable or not the
    API, 504 for a timeout. ``detail``: the API's ``{"detail": ...}`` as one line, when it sent one.
    ``message``: one readable sentence, ``detail`` included.
    """

    def __init__(self, message: str, status: int = 502, detail: str | None = None, api_status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail
        self.api_status = api_status

    @property
    def answered(self) -> bool:
        """Whether the API answered at all (False: unreachable or timed out)."""
        return self.api_status is not None


def detail_text(detail: Any) -> str:
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


def error_for(status: int, detail: str, retry_after: str = "") -> ApiError:
    """The ApiError for an error answer of the API."""
    prefix = STATUS_MESSAGES.get(status)
    if prefix is None:
        prefix = "The face service failed" if status >= 500 else f"The face service refused the request ({status})"
    message = f"{prefix}: {detail}" if detail and status != 503 else prefix
    if status == 503 and retry_after.isdigit():
        message = f"The face service is busy right now; please try again in {retry_after} s"
    relayed = status if status < 500 or status == 503 else 502
    return ApiError(message, status=relayed, detail=detail or None, api_status=status)

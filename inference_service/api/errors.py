"""Every error the API returns is JSON ``{"detail": "<a sentence>"}``; none is a traceback.

FastAPI's own 422 body is a list of pydantic error objects; clients (and the web site that shows
the message to a person) want one readable sentence, so validation errors are rewritten here,
e.g. ``field 'image' is required``. Anything unexpected becomes a bare 500 with a log line on the
server: the client learns that it failed, not how the server is built.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..engine import ImageError
from ..gallery import GalleryUnavailableError, InvalidNameError
from .jobs import InputError
from .workers import PoolFullError

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal server error; the request was not completed (see the service log)"


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "request"


def validation_message(errors: list[dict]) -> str:
    """One sentence for a list of pydantic errors, e.g. ``field 'image' is required``."""
    messages = []
    for err in errors:
        field = _field_name(tuple(err.get("loc", ())))
        if err.get("type") == "missing":
            messages.append(f"field '{field}' is required")
        else:
            msg = str(err.get("msg", "is invalid"))
            messages.append(f"field '{field}': {msg[0].lower() + msg[1:] if msg else 'is invalid'}")
    return "; ".join(dict.fromkeys(messages)) or "the request is invalid"


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, validation_message(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return _error(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(InputError)
    async def on_input(_: Request, exc: InputError) -> JSONResponse:
        return _error(exc.status_code, exc.detail)

    @app.exception_handler(ImageError)
    async def on_image(_: Request, exc: ImageError) -> JSONResponse:
        return _error(exc.status_code, str(exc))

    @app.exception_handler(InvalidNameError)
    async def on_name(_: Request, exc: InvalidNameError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(GalleryUnavailableError)
    async def on_gallery_unavailable(_: Request, exc: GalleryUnavailableError) -> JSONResponse:
        retry = str(exc.retry_after_s)
        return _error(503, f"the gallery database is unreachable; retry in {retry} s", {"Retry-After": retry})

    @app.exception_handler(PoolFullError)
    async def on_busy(_: Request, exc: PoolFullError) -> JSONResponse:
        return _error(503, f"{exc}; retry in {exc.retry_after} s", {"Retry-After": str(exc.retry_after)})


class CatchAllMiddleware:
    """Turn an unhandled exception into a generic JSON 500 and one log entry.

    Starlette's own 500 path re-raises to the server after responding (a second traceback in the
    log); catching here, inside it, answers once and logs once.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await _error(500, INTERNAL_ERROR)(scope, receive, send)

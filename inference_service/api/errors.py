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
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..analysis.photos import InputError
from ..engine import CorruptImageError, ImageError, ImageTooLargeError, UnsupportedImageError
from ..gallery import GalleryFullError, GalleryUnavailableError, InvalidNameError
from ..videos.errors import VideoError, VideoErrorKind
from .workers import PoolFullError

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal server error; the request was not completed (see the service log)"
GALLERY_FULL = (
    "the gallery's disk is full: nothing of this request was stored; free space on the disk "
    "holding FACE_GALLERY, then send it again"
)
# An image the client sent, as HTTP words it: damaged, more pixels than allowed, not an image.
IMAGE_ERROR_STATUS: dict[type[ImageError], int] = {
    CorruptImageError: 400,
    ImageTooLargeError: 413,
    UnsupportedImageError: 415,
}
# A video, or a request about a video job, as HTTP words it.
VIDEO_ERROR_STATUS: dict[VideoErrorKind, int] = {
    VideoErrorKind.EMPTY: 400,
    VideoErrorKind.NO_FACES: 404,
    VideoErrorKind.EMBEDDER_MISMATCH: 409,
    VideoErrorKind.ERASED: 409,
    VideoErrorKind.TOO_LARGE: 413,
    VideoErrorKind.FRAMES_TOO_LARGE: 413,
    VideoErrorKind.NOT_A_VIDEO: 415,
    VideoErrorKind.TOO_LONG: 422,
    VideoErrorKind.LOW_QUALITY: 422,
    VideoErrorKind.BUSY: 503,
    VideoErrorKind.DISK_FULL: 507,
}
BUSY_RETRY_S = 60
# Order in which an Allow header lists methods (the conventional one, not alphabetical).
# What the client sent, as HTTP words it: damaged or empty bytes, more pixels than allowed, not an
# image format we read, an image without the (chosen) face.
INPUT_ERROR_STATUS = {"corrupt": 400, "too_large": 413, "unsupported": 415, "no_face": 422, "low_quality": 422}
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


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
        elif "Expected UploadFile" in str(err.get("msg", "")):
            # A text field where a file belongs (e.g. curl -F image=photo.jpg, without the @);
            # named without the list index FastAPI adds for a repeated field ('image', not 'image.0').
            file_field = _field_name(tuple(p for p in err.get("loc", ()) if not isinstance(p, int)))
            messages.append(f"field '{file_field}' must be a file upload")
        else:
            msg = str(err.get("msg", "is invalid"))
            messages.append(f"field '{field}': {msg[0].lower() + msg[1:] if msg else 'is invalid'}")
    return "; ".join(dict.fromkeys(messages)) or "the request is invalid"


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def image_status(exc: ImageError) -> int:
    """The status code of an image error: its class's, else 400 (the bytes are not usable)."""
    for cls in type(exc).__mro__:
        if cls in IMAGE_ERROR_STATUS:
            return IMAGE_ERROR_STATUS[cls]
    return 400


def video_error_response(exc: VideoError) -> JSONResponse:
    status = VIDEO_ERROR_STATUS[exc.kind]
    if exc.kind is VideoErrorKind.DISK_FULL:
        log.error("video upload failed, disk full: %s", exc)
    headers = {"Retry-After": str(BUSY_RETRY_S)} if status == 503 else None
    return _error(status, exc.detail, headers)


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this request's path, for a 405's ``Allow`` header.

    Starlette names only the first route whose path matched, so ``PUT /identities/x`` said
    ``Allow: GET`` although ``DELETE`` is served there too, by another route.
    """
    # A fresh scope: the request's own carries the state of the route that already matched.
    scope = {
        "type": "http",
        "method": request.method,
        "path": request.scope["path"],
        "root_path": request.scope.get("root_path", ""),
    }
    methods: set[str] = set()
    # iter_route_contexts flattens included routers (FastAPI >= 0.16x nests them).
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches(scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods, key=lambda m: (METHOD_ORDER + (m,)).index(m)))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, validation_message(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return _error(exc.status_code, detail, headers or None)

    @app.exception_handler(InputError)
    async def on_input(_: Request, exc: InputError) -> JSONResponse:
        return _error(INPUT_ERROR_STATUS[exc.kind], exc.detail)

    @app.exception_handler(ImageError)
    async def on_image(_: Request, exc: ImageError) -> JSONResponse:
        return _error(image_status(exc), str(exc))

    @app.exception_handler(VideoError)
    async def on_video(_: Request, exc: VideoError) -> JSONResponse:
        return video_error_response(exc)

    @app.exception_handler(InvalidNameError)
    async def on_name(_: Request, exc: InvalidNameError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(GalleryUnavailableError)
    async def on_gallery_unavailable(_: Request, exc: GalleryUnavailableError) -> JSONResponse:
        retry = max(1, int(exc.retry_after_s))
        log.warning("gallery unavailable: %s", exc)
        return _error(503, f"the gallery is unavailable right now; retry in {retry} s", {"Retry-After": str(retry)})

    @app.exception_handler(GalleryFullError)
    async def on_gallery_full(_: Request, exc: GalleryFullError) -> JSONResponse:
        log.error("gallery write failed, disk full: %s", exc)
        return _error(507, GALLERY_FULL)

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

"""Upload handling: a hard cap on request bodies, and reading uploaded files into bytes.

The cap is enforced below FastAPI, on the raw ASGI byte stream: a body that declares a length
over the limit is refused before a single byte of it is read, and a body without a declared
length (chunked) is cut off as soon as the running count passes the limit. So a 30 MB upload
costs the server at most the limit, not 30 MB of memory or temp-file space.
"""
from __future__ import annotations

import json

from fastapi import HTTPException, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIB = 1024 * 1024
# Room for multipart boundaries, part headers and small form fields on top of the file bytes,
# so a file of exactly the configured size is still accepted.
MULTIPART_SLACK_BYTES = 64 * 1024


def too_large_message(limit_mb: float) -> str:
    return f"the upload is larger than the {limit_mb:g} MiB limit (FACE_MAX_UPLOAD_MB)"


class UploadLimitMiddleware:
    """Refuse request bodies over ``limit_mb`` MiB (plus multipart overhead) with a JSON 413."""

    def __init__(self, app: ASGIApp, limit_mb: float) -> None:
        self.app = app
        self.limit_mb = limit_mb
        self.max_bytes = int(limit_mb * MIB) + MULTIPART_SLACK_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises HTTPExceptions from body parsing as they are.
                    raise HTTPException(413, too_large_message(self.limit_mb))
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": too_large_message(self.limit_mb)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The unread body stays in the socket; the connection cannot be reused.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def read_upload(upload: UploadFile) -> bytes:
    """The bytes of one uploaded file (already bounded by :class:`UploadLimitMiddleware`)."""
    return await upload.read()


def upload_label(upload: UploadFile, field: str, index: int | None = None, count: int = 1) -> str:
    """How error messages name an upload: ``image``, or ``image 2 of 3 ('b.jpg')``."""
    name = f" ({upload.filename!r})" if upload.filename else ""
    if index is None or count == 1:
        return f"{field}{name}"
    return f"{field} {index + 1} of {count}{name}"

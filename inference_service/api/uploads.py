"""Upload handling: a hard cap on request bodies and on the time to send one, and reading
uploaded files into bytes.

The cap is enforced below FastAPI, on the raw ASGI byte stream: a body that declares a length
over the limit is refused before a byte of it is kept, and a body without a declared length
(chunked) is cut off as soon as the running count passes the limit. So a 30 MB upload costs the
server at most the limit, not 30 MB of memory or temp-file space.

Refusing is not enough on its own: a client like Python's ``urllib.request`` sends its whole
body before it reads anything, and a server that closes with unread bytes in the socket makes
the kernel answer with a reset, so that client sees ``ConnectionResetError`` instead of the 413.
Like nginx's lingering close, the rest of the body is read and thrown away first, up to
``DRAIN_MAX_BYTES`` and ``DRAIN_MAX_SECONDS``; beyond those the connection is closed anyway.

A client that sends its body slowly, or stops half-way, holds a connection and a parser open;
the whole body must arrive within ``FACE_BODY_TIMEOUT_S`` of the request's headers, else 408.
That holds for every request, ``POST /videos`` included: its body is counted by its own route
against FACE_MAX_VIDEO_MB (``streamed``), but it is held to the same clock, so a trickling
client cannot keep a video slot and a connection for ever.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection

from fastapi import HTTPException, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIB = 1024 * 1024
# Room for multipart boundaries, part headers and small form fields on top of the file bytes,
# so a file of exactly the configured size is still accepted.
MULTIPART_SLACK_BYTES = 64 * 1024
# How much of a refused body is read and discarded so the client can read the 413. Reading is
# cheap (nothing is kept); the bounds stop a client from holding the connection with it.
DRAIN_MAX_BYTES = 64 * MIB
DRAIN_MAX_SECONDS = 5.0
CLOSE = {"Connection": "close"}


def too_large_message(limit_mb: float) -> str:
    return f"the upload is larger than the {limit_mb:g} MiB limit (FACE_MAX_UPLOAD_MB)"


def too_slow_message(timeout_s: float) -> str:
    return (
        f"the request body did not arrive within {timeout_s:g} s (FACE_BODY_TIMEOUT_S); "
        "send it again over a faster connection"
    )


class _BodyTimeout(Exception):
    pass


class UploadLimitMiddleware:
    """Refuse request bodies over ``limit_mb`` MiB (plus multipart overhead) with a JSON 413,
    and bodies not received within ``body_timeout_s`` with a JSON 408.

    ``streamed`` names the (method, path) pairs whose route counts its body itself against a
    limit of its own (a video upload, streamed to disk): only the time limit applies there.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit_mb: float,
        body_timeout_s: float = 60.0,
        streamed: Collection[tuple[str, str]] = (),
    ) -> None:
        self.app = app
        self.limit_mb = limit_mb
        self.max_bytes = int(limit_mb * MIB) + MULTIPART_SLACK_BYTES
        self.body_timeout_s = body_timeout_s
        self.streamed = frozenset((method, path.rstrip("/")) for method, path in streamed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        counted = (scope.get("method"), scope.get("path", "").rstrip("/")) not in self.streamed
        max_bytes = self.max_bytes if counted else None
        declared = _content_length(scope)
        if max_bytes is not None and declared is not None and declared > max_bytes:
            # A client that asked "Expect: 100-continue" waits for our answer before sending the
            # body (curl does for large ones): refuse at once, and it never sends it. Reading
            # would make the server say "100 Continue" and invite the whole body.
            if not _expects_continue(scope):
                try:
                    await _drain(receive, min(deadline, loop.time() + DRAIN_MAX_SECONDS))
                except _BodyTimeout:
                    pass  # answer the 413 anyway; the connection closes after it
            await _send_json(send, 413, too_large_message(self.limit_mb))
            return

        received = 0
        body_done = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body only a disconnect can come; no deadline for that
                return await receive()
            try:
                message = await _receive_by(receive, deadline)
            except _BodyTimeout:
                # FastAPI re-raises HTTPExceptions from body parsing as they are.
                raise HTTPException(408, too_slow_message(self.body_timeout_s), CLOSE) from None
            if message["type"] != "http.request":
                return message
            received += len(message.get("body", b""))
            body_done = not message.get("more_body", False)
            if max_bytes is not None and received > max_bytes:
                if not body_done:
                    try:
                        await _drain(receive, min(deadline, loop.time() + DRAIN_MAX_SECONDS))
                    except _BodyTimeout:
                        pass
                body_done = True
                raise HTTPException(413, too_large_message(self.limit_mb), CLOSE)
            return message

        await self.app(scope, limited_receive, send)


async def _receive_by(receive: Receive, deadline: float) -> Message:
    """The next message, or :class:`_BodyTimeout` once ``deadline`` (loop time) has passed."""
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        raise _BodyTimeout
    try:
        return await asyncio.wait_for(receive(), remaining)
    except TimeoutError:
        raise _BodyTimeout from None


async def _drain(receive: Receive, deadline: float) -> None:
    """Read and discard the rest of the body, up to ``DRAIN_MAX_BYTES`` or ``deadline``."""
    drained = 0
    while drained <= DRAIN_MAX_BYTES:
        message = await _receive_by(receive, deadline)
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # Whatever of the body was not drained stays in the socket: no reuse.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _expects_continue(scope: Scope) -> bool:
    return any(key == b"expect" and value.lower() == b"100-continue" for key, value in scope.get("headers", ()))


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

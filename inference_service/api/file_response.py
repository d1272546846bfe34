"""Serving a file the route has already opened, with single byte ranges, HEAD, and no surprises.

Starlette's ``FileResponse`` opens its path only when the answer is sent: a ``DELETE`` of the job
between the route and the first byte left a client with 200 headers and a dropped connection.
Here the route opens the file (a missing one is its 404) and the response reads from that open
descriptor, which stays valid if the name is removed meanwhile: the client gets the whole file
or a 404, never half. Range follows RFC 9110: one ``bytes=`` range is answered 206, an
unsatisfiable one 416, and a malformed one (or several ranges) is ignored: 200 with the whole file.
"""

from __future__ import annotations

import os
import re
from typing import BinaryIO
from urllib.parse import quote

import anyio.to_thread
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

CHUNK_BYTES = 256 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """``(start, end)`` (end exclusive) for one satisfiable range; None to send the whole file
    (no header, a malformed one, several ranges); ``"unsatisfiable"`` for a range past the end."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:  # the last N bytes
        suffix = int(match[2])
        if suffix == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size
    start = int(match[1])
    end = size if not match[2] else int(match[2]) + 1
    if match[2] and end <= start:
        return None  # last < first: not a valid range, so ignored
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size)


class OpenFileResponse(Response):
    """The contents of ``fh`` (opened by the caller, closed here once sent)."""

    def __init__(
        self,
        fh: BinaryIO,
        media_type: str,
        range_header: str | None = None,
        filename: str | None = None,
    ) -> None:
        super().__init__(media_type=media_type)
        self.fh = fh
        size = os.fstat(fh.fileno()).st_size
        wanted = byte_range(range_header, size)
        self.raw_headers = [h for h in self.raw_headers if h[0] != b"content-length"]
        self.headers["accept-ranges"] = "bytes"
        if filename:
            self.headers["content-disposition"] = f"inline; filename*=utf-8''{quote(filename)}"
        if wanted == "unsatisfiable":
            self.status_code, self.start, self.end = 416, 0, 0
            self.headers["content-range"] = f"bytes */{size}"
        elif wanted is None:
            self.status_code, self.start, self.end = 200, 0, size
        else:
            assert isinstance(wanted, tuple)
            self.status_code, (self.start, self.end) = 206, wanted
            self.headers["content-range"] = f"bytes {self.start}-{self.end - 1}/{size}"
        self.headers["content-length"] = str(self.end - self.start)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if scope.get("method") == "HEAD" or self.start == self.end:
                await send({"type": "http.response.body", "body": b""})
                return
            await anyio.to_thread.run_sync(self.fh.seek, self.start)
            remaining = self.end - self.start
            while remaining > 0:
                chunk = await anyio.to_thread.run_sync(self.fh.read, min(CHUNK_BYTES, remaining))
                if not chunk:  # the file shrank under us: end what was promised short, visibly
                    raise OSError(f"{self.fh.name} ended {remaining} bytes early")
                remaining -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
        finally:
            self.fh.close()

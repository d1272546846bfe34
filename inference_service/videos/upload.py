"""Receiving a video: the multipart body streamed straight into the job's folder, bounded.

Starlette's form parser would spool the file into a temporary file that then has to be copied;
here python-multipart's push parser writes the ``video`` part's bytes to disk as the chunks
arrive, counting them, and stops at ``FACE_MAX_VIDEO_MB`` (413). Other fields are ignored
(bounded too); a second ``video`` part is refused. Memory stays at one network chunk.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header

MIB = 1024 * 1024
MAX_OTHER_FIELD_BYTES = 64 * 1024  # a CSRF token or a name, never a second file
MAX_FILENAME = 200


def too_large(limit_mb: float) -> HTTPException:
    return HTTPException(413, f"the video is larger than the {limit_mb:g} MiB limit (FACE_MAX_VIDEO_MB)")


class _VideoPart:
    def __init__(self, target: Path, max_bytes: int, limit_mb: float) -> None:
        self.target = target
        self.max_bytes = max_bytes
        self.limit_mb = limit_mb
        self.size = 0
        self.filename: str | None = None
        self.content_type: str | None = None
        self.found = False
        self._fh = None
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._is_video = False
        self._other = 0

    # python-multipart callbacks ------------------------------------------------------------------
    def on_part_begin(self) -> None:
        self._headers = {}
        self._is_video = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.strip().lower()] = self._header_value.strip()
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name") != b"video":
            return
        if self.found:
            raise HTTPException(422, "send one video per request (field 'video')")
        self.found = self._is_video = True
        raw_name = params.get(b"filename", b"video").decode("utf-8", "replace")
        self.filename = Path(raw_name.replace("\\", "/")).name[:MAX_FILENAME] or "video"
        self.content_type = self._headers.get(b"content-type", b"").decode("latin-1")
        self._fh = open(self.target, "wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._is_video:
            self._other += end - start
            if self._other > MAX_OTHER_FIELD_BYTES:
                raise HTTPException(422, "only the field 'video' may carry a file")
            return
        self.size += end - start
        if self.size > self.max_bytes:
            raise too_large(self.limit_mb)
        self._fh.write(data[start:end])  # type: ignore[union-attr]

    def on_part_end(self) -> None:
        if self._is_video and self._fh is not None:
            self._fh.close()
            self._fh = None
        self._is_video = False

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


async def receive_video(request: Request, target: Path, limit_mb: float) -> tuple[str, int]:
    """Stream the ``video`` field of a multipart request into ``target``; (filename, bytes)."""
    max_bytes = int(limit_mb * MIB)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + MAX_OTHER_FIELD_BYTES:
        raise too_large(limit_mb)
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise HTTPException(422, "send the video as multipart/form-data in the field 'video'")
    part = _VideoPart(target, max_bytes, limit_mb)
    callbacks = {
        name: getattr(part, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except HTTPException:
        raise
    except Exception as exc:  # python-multipart's MultipartParseError and friends
        raise HTTPException(400, f"the multipart body could not be read: {exc}") from None
    finally:
        part.close()
    if not part.found:
        raise HTTPException(422, "no file in the field 'video'")
    if part.size == 0:
        raise HTTPException(400, "the uploaded video is empty")
    return part.filename or "video", part.size


class UploadLimitExceptVideos:
    """The API's body cap for every request but ``POST /videos``, which caps its own stream.

    Other requests go through the ordinary cap (FACE_MAX_UPLOAD_MB); a video upload bypasses it
    and is bounded by :func:`receive_video` at FACE_MAX_VIDEO_MB instead.
    """

    def __init__(self, app, limit_mb: float, body_timeout_s: float = 60.0) -> None:
        from ..api.uploads import UploadLimitMiddleware

        self.app = app
        self.limited = UploadLimitMiddleware(app, limit_mb=limit_mb, body_timeout_s=body_timeout_s)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and scope.get("path", "").rstrip("/") == "/videos":
            await self.app(scope, receive, send)
        else:
            await self.limited(scope, receive, send)

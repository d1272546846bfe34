"""``POST /videos``'s body: multipart parsed as a stream, the ``video`` part written to disk.

Starlette's form parser would spool the file into a temporary file that then has to be copied;
here python-multipart's push parser hands the ``video`` part's bytes to a
:class:`~inference_service.videos.upload.VideoSink` as the chunks arrive (it counts them and
stops at ``FACE_MAX_VIDEO_MB``). Other fields are ignored (bounded too); a second ``video`` part
is refused. Memory stays at one network chunk; the time is bounded by the body timeout of
``uploads.UploadLimitMiddleware``, which covers this route like every other.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header

from ..videos.errors import VideoError
from ..videos.upload import MIB, VideoSink, too_large

MAX_OTHER_FIELD_BYTES = 64 * 1024  # a CSRF token or a name, never a second file
MAX_FILENAME = 200
CALLBACKS = (
    "on_part_begin",
    "on_header_field",
    "on_header_value",
    "on_header_end",
    "on_headers_finished",
    "on_part_data",
    "on_part_end",
)


class _VideoPart:
    """python-multipart's callbacks: the ``video`` part goes to the sink, others are counted."""

    def __init__(self, sink: VideoSink) -> None:
        self.sink = sink
        self.filename: str | None = None
        self.found = False
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._is_video = False
        self._other = 0

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
        self.sink.open()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._is_video:
            self._other += end - start
            if self._other > MAX_OTHER_FIELD_BYTES:
                raise HTTPException(422, "only the field 'video' may carry a file")
            return
        self.sink.write(data[start:end])

    def on_part_end(self) -> None:
        if self._is_video:
            self.sink.close()
        self._is_video = False


async def receive_video(request: Request, sink: VideoSink) -> str:
    """Stream the ``video`` field of a multipart request into ``sink``; the file's name."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > sink.limit_mb * MIB + MAX_OTHER_FIELD_BYTES:
        raise too_large(sink.limit_mb)
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise HTTPException(422, "send the video as multipart/form-data in the field 'video'")
    part = _VideoPart(sink)
    parser = MultipartParser(boundary, {name: getattr(part, name) for name in CALLBACKS})  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except (HTTPException, VideoError):
        raise
    except OSError:
        raise  # the disk, not the body: a 500 with its log line, unless VideoSink named it
    except Exception as exc:  # python-multipart's MultipartParseError and friends
        raise HTTPException(400, f"the multipart body could not be read: {exc}") from None
    finally:
        sink.close()
    if not part.found:
        raise HTTPException(422, "no file in the field 'video'")
    sink.check_received()
    return part.filename or "video"

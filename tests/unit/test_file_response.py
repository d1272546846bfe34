"""Serving an already opened file: whole after its name is removed, one byte range, HEAD, and
malformed ranges ignored as HTTP says (RFC 9110 14.2)."""

from __future__ import annotations

import asyncio

import pytest

from inference_service.api.file_response import OpenFileResponse, byte_range

DATA = bytes(range(256)) * 40  # 10,240 bytes


def serve(response: OpenFileResponse, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    asyncio.run(response({"type": "http", "method": method}, receive, send))  # type: ignore[arg-type]
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


def test_the_whole_file_is_sent_after_its_name_was_removed(tmp_path):
    path = tmp_path / "annotated.mp4"
    path.write_bytes(DATA)
    response = OpenFileResponse(open(path, "rb"), "video/mp4", filename="a.mp4")
    path.unlink()  # a DELETE of the job between the route and the first byte
    status, headers, body = serve(response)
    assert status == 200 and body == DATA and headers["content-length"] == str(len(DATA))
    assert headers["content-disposition"] == "inline; filename*=utf-8''a.mp4"
    assert response.fh.closed


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 10)),
        ("bytes=10-", (10, 100)),
        ("bytes=-5", (95, 100)),
        ("bytes=90-500", (90, 100)),
        ("bytes=100-", "unsatisfiable"),
        ("bytes=-0", "unsatisfiable"),
        ("bytes=9-3", None),
        ("bytes=abc", None),
        ("pages=1-2", None),
        ("bytes=0-1,5-6", None),
        ("bytes=-", None),
    ],
)
def test_byte_range(header, expected):
    assert byte_range(header, 100) == expected


def test_range_head_and_unsatisfiable(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(DATA)
    status, headers, body = serve(OpenFileResponse(open(path, "rb"), "video/mp4", "bytes=100-199"))
    assert status == 206 and body == DATA[100:200] and headers["content-range"] == f"bytes 100-199/{len(DATA)}"
    status, headers, body = serve(OpenFileResponse(open(path, "rb"), "video/mp4"), method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(len(DATA))
    status, headers, body = serve(OpenFileResponse(open(path, "rb"), "video/mp4", f"bytes={len(DATA)}-"))
    assert status == 416 and body == b"" and headers["content-range"] == f"bytes */{len(DATA)}"

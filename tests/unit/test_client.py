"""face_client against a real HTTP server that answers as the API does (status, detail, headers).

No model weights: the server is the standard library's, answering each path from a table, so
these run first and in a second. The client's end-to-end use against the real API is covered by
the site's and the pipeline's tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from face_client import ApiError, FaceClient, Upload

REPLIES: dict[tuple[str, str], tuple[int, object, dict[str, str]]] = {
    ("GET", "/health"): (
        200,
        {
            "status": "ok",
            "embedder": {"name": "dlib-resnet", "dim": 128, "threshold": 0.926},
            "detector": "mtcnn",
            "gallery": {"identities": 1, "faces": 2},
        },
        {},
    ),
    ("GET", "/identities"): (200, {"identities": [{"name": "Ada Lovelace", "faces": 2}]}, {}),
    ("GET", "/identities/Ada%20Lovelace%2F..%2Fx"): (404, {"detail": "no identity named 'Ada Lovelace/../x'"}, {}),
    ("POST", "/identities/Ada/faces"): (422, {"detail": [{"loc": ["body", "image"], "msg": "Field required"}]}, {}),
    ("POST", "/recognize"): (503, {"detail": "busy"}, {"Retry-After": "3"}),
    ("POST", "/detect"): (500, {"detail": "boom"}, {}),
    ("GET", "/videos"): (200, {"unexpected": True}, {}),
    ("DELETE", "/identities/Ada"): (204, None, {}),
    ("POST", "/verify"): (200, "<html>not the API</html>", {"Content-Type": "text/html"}),
    ("PATCH", "/identities/Ada%20L"): (409, {"detail": "identity 'Ada' exists: rename with merge=true"}, {}),
    ("POST", "/identities/Ada/merge"): (200, {"name": "Ada L", "faces": 3, "moved": ["f1"]}, {}),
    ("POST", "/identities/Ada/faces/f1/move"): (200, {"name": "Bob", "faces": 1, "moved": ["f1"]}, {}),
    ("POST", "/gallery/report/dismissed"): (204, None, {}),
}


class Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None, bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, self.headers.get("X-API-Key"), body))
        status, payload, headers = REPLIES.get((self.command, self.path), (404, {"detail": "Not Found"}, {}))
        data = (
            b"" if payload is None else (payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
        )
        self.send_response(status)
        self.send_header(
            "Content-Type", headers.pop("Content-Type", "application/json") if headers else "application/json"
        )
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PATCH = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def error_of(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_answers_arrive_as_the_api_sent_them(url):
    api = FaceClient(url)
    assert api.health()["embedder"]["dim"] == 128
    assert api.identities() == [{"name": "Ada Lovelace", "faces": 2}]
    api.delete_identity("Ada")  # 204, no body


def test_error_statuses_carry_the_api_status_and_detail(url):
    api = FaceClient(url)
    refused = error_of(lambda: api.enroll("Ada", [Upload("a.jpg", b"x")]))
    assert (refused.status, refused.api_status, refused.detail) == (422, 422, "image: Field required")
    assert refused.message == "Not accepted: image: Field required" and refused.answered
    busy = error_of(lambda: api.recognize(b"x"))
    assert busy.status == 503 and busy.message.endswith("try again in 3 s")
    failed = error_of(lambda: api.detect(b"x"))
    assert (failed.status, failed.api_status, failed.detail) == (502, 500, "boom")  # relayed as a gateway would


def test_a_name_never_acts_as_a_path(url):
    missing = error_of(lambda: FaceClient(url).identity("Ada Lovelace/../x"))
    assert missing.status == 404 and "Ada Lovelace/../x" in missing.detail


def test_answers_that_are_not_the_apis_are_errors(url):
    api = FaceClient(url)
    assert "not JSON" in error_of(lambda: api.verify(b"a", b"b")).message
    unexpected = error_of(api.videos)
    assert unexpected.status == 502 and unexpected.api_status == 200


def test_unreachable_and_bad_url():
    with pytest.raises(ValueError, match="http"):
        FaceClient("127.0.0.1:8000")
    down = error_of(FaceClient("http://127.0.0.1:9", timeout=2).health)
    assert down.status == 502 and not down.answered and "not reachable" in down.message


def test_reads_carry_the_read_key_and_writes_the_write_key(url):
    Handler.seen.clear()
    api = FaceClient(url, api_key="write", read_api_key="read")
    api.identities()
    api.delete_identity("Ada")
    assert [(method, key) for method, _, key, _ in Handler.seen] == [("GET", "read"), ("DELETE", "write")]
    FaceClient(url, api_key="write").identities()
    assert Handler.seen[-1][2] == "write"


def test_enroll_sends_boxes_and_consent_only_when_given(url):
    Handler.seen.clear()
    api = FaceClient(url)
    error_of(lambda: api.enroll("Ada", [Upload("a.jpg", b"x", "image/jpeg")], boxes=["1,2,3,4"], consent="signed form"))
    error_of(lambda: api.enroll("Ada", [b"x"]))
    with_terms, without = Handler.seen[-2][3], Handler.seen[-1][3]
    assert b'name="box"' in with_terms and b"1,2,3,4" in with_terms and b"signed form" in with_terms
    assert b'name="box"' not in without and b'name="consent"' not in without


def test_curation_sends_json_with_the_write_key(url):
    Handler.seen.clear()
    api = FaceClient(url, api_key="write", read_api_key="read")
    conflict = error_of(lambda: api.rename_identity("Ada L", "Ada"))
    assert conflict.api_status == 409 and "merge=true" in str(conflict.detail)
    assert api.merge_identity("Ada", "Ada L") == {"name": "Ada L", "faces": 3, "moved": ["f1"]}
    assert api.move_face("Ada", "f1", "Bob", consent="form 3")["name"] == "Bob"
    api.dismiss_pair("Ada", "Bob")
    assert [(m, p, k, json.loads(b)) for m, p, k, b in Handler.seen] == [
        ("PATCH", "/identities/Ada%20L", "write", {"name": "Ada", "merge": False}),
        ("POST", "/identities/Ada/merge", "write", {"into": "Ada L"}),
        ("POST", "/identities/Ada/faces/f1/move", "write", {"to": "Bob", "consent": "form 3"}),
        ("POST", "/gallery/report/dismissed", "write", {"a": "Ada", "b": "Bob"}),
    ]


def test_importing_the_client_loads_no_model_code():
    code = (
        "import sys, face_client;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'cv2', 'inference_service'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr

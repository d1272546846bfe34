"""The site with the inference API replaced by an in-process fake behind a ``requests`` adapter, so
the site's real client code, headers and error mapping run; only the server at the other end is pretend."""

from __future__ import annotations

import io
import json
import re
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import unquote, urlsplit

import requests
from PIL import Image, ImageDraw
from requests.adapters import BaseAdapter

from face_client import FaceClient
from web_frontend.app import create_app
from web_frontend.config import WebSettings

API = "http://face-api.test"


class FakeApi(BaseAdapter):
    """Answers the contract's endpoints from a dict gallery; ``fail`` forces an error reply."""

    def __init__(self) -> None:
        super().__init__()
        self.gallery: dict[str, int] = {}
        self.calls: list[requests.PreparedRequest] = []
        self.fail: tuple[int, object, dict[str, str]] | None = None
        self.raise_exc: Exception | None = None
        self.faces: list[dict] = []
        self.videos: dict[str, dict] = {}  # job id -> the API's GET /videos/{id} answer
        # the curation API: faces the API flags ((name, face id) -> agreement), the gallery report's
        # pairs (None: an API without the report, which answers 404), pairs marked "not the same person"
        self.flagged: dict[tuple[str, str], float] = {}
        self.pairs: list[dict] | None = None
        self.distinct: set[frozenset[str]] = set()
        # thumbnails the API kept, by (name, face id); faces not here answer 404 (enrolled before)
        self.thumbnails: dict[tuple[str, str], bytes] = {}
        # the enrollment quality gate: when set, photo enrollment without force=true is refused with it
        self.poor_face: str | None = None

    def send(self, request, **kwargs):  # noqa: ANN001 - requests' adapter signature
        self.calls.append(request)
        if self.raise_exc is not None:
            raise self.raise_exc
        if self.fail is not None:
            status, detail, headers = self.fail
            return self._reply(request, status, {"detail": detail}, headers)
        path = unquote(urlsplit(request.url).path)
        curated = self._thumbnail(request, path) or self._curation(request, path)
        if curated is not None:
            return curated
        if request.method == "POST" and path == "/recognize":
            return self._reply(request, 200, {"threshold": 0.926, "faces": self.faces})
        match = re.fullmatch(r"/identities/(.+)/faces", path)
        if request.method == "POST" and match:
            return self._enroll_photos(request, match.group(1))
        match = re.fullmatch(r"/videos/([0-9a-f]{32})/tracks/(\d+)/enroll", path)
        if request.method == "POST" and match:
            return self._enroll_track(request, match.group(1), match.group(2))
        match = re.fullmatch(r"/videos/([0-9a-f]{32})", path)
        if request.method == "GET" and match:
            job = self.videos.get(match.group(1))
            return self._reply(request, 200, job) if job else self._reply(request, 404, {"detail": "no such video job"})
        if request.method == "GET" and path == "/videos":
            return self._reply(request, 200, {"videos": list(self.videos.values())})
        match = re.fullmatch(r"/identities/([^/]+)", path)
        if request.method == "GET" and match:
            return self._identity(request, match.group(1))
        if request.method == "GET" and path == "/identities":
            return self._reply(request, 200, {"identities": [{"name": n, "faces": c} for n, c in self.gallery.items()]})
        match = re.fullmatch(r"/identities/([^/]+)/faces/([0-9a-f]{32})", path)
        if request.method == "DELETE" and match:
            name = match.group(1)
            if not self.gallery.get(name):
                return self._reply(request, 404, {"detail": f"no face {match.group(2)} of {name!r}"})
            self.gallery[name] -= 1  # the fake counts faces only: any id of a known person removes one
            if not self.gallery[name]:
                del self.gallery[name]
            return self._reply(request, 204, None)
        match = re.fullmatch(r"/identities/([^/]+)", path)
        if request.method == "DELETE" and match:
            if self.gallery.pop(match.group(1), None) is None:
                return self._reply(request, 404, {"detail": f"no identity named {match.group(1)!r}"})
            return self._reply(request, 204, None)
        return self._reply(request, 404, {"detail": "Not Found"})

    def _enroll_photos(self, request, name: str) -> requests.Response:  # noqa: ANN001
        parts = multipart_parts(request)
        files = [p for p in parts if p.get_param("name", header="content-disposition") == "image"]
        forced = any(
            p.get_param("name", header="content-disposition") == "force" and p.get_content().strip() == "true"
            for p in parts
        )
        if self.poor_face is not None and not forced:
            detail = f"image: not enrolled, {self.poor_face}: such a face makes a poor reference that strangers "
            detail += "can come to resemble; send a clearer photo, or force=true to enroll it anyway"
            return self._reply(request, 422, {"detail": detail})
        self.gallery[name] = self.gallery.get(name, 0) + len(files)
        added = [{"face_id": i + 1, "box": [0, 0, 10, 10]} for i in range(len(files))]
        return self._reply(request, 201, {"identity": name, "added": added, "faces": self.gallery[name]})

    def _enroll_track(self, request, job_id: str, track: str) -> requests.Response:  # noqa: ANN001
        """Enrolls the track's kept faces; the job's ``track_poor`` (track -> count) are the quality
        gate's: left out and listed under ``skipped``, a 422 when no other is left, unless forced."""
        body = json.loads(request.body)
        name, forced = body["name"], bool(body.get("force"))
        job = self.videos.get(job_id) or {}
        kept = job.get("track_faces", {}).get(track, 0)
        poor = 0 if forced else min(kept, job.get("track_poor", {}).get(track, 0))
        reason = "the face is too dark (mean grey level 20 of 255, at least 45 needed)"
        if kept and poor == kept:
            detail = f"track {track} not enrolled: none of its {kept} kept faces is good enough for a reliable "
            detail += f"reference ({reason}); enroll the person from a clearer photo or track, or send force=true"
            return self._reply(request, 422, {"detail": detail})
        first = self.gallery.get(name, 0)
        self.gallery[name] = first + kept - poor
        added = [{"face_id": f"{first + i:032x}", "box": [0, 0, 10, 10]} for i in range(kept - poor)]
        skipped = [{"box": [0, 0, 10, 10], "reasons": [reason]} for _ in range(poor)]
        reply = {"identity": name, "added": added, "faces": self.gallery[name], "skipped": skipped}
        return self._reply(request, 201, reply)

    def _identity(self, request, name: str) -> requests.Response:  # noqa: ANN001
        count = self.gallery.get(name)
        if count is None:
            return self._reply(request, 404, {"detail": f"no identity named {name!r}"})
        faces = [
            {"face_id": f"{i:032x}", "created_at": "2026-01-01T00:00:00Z", "box": [0, 0, 10, 10]} for i in range(count)
        ]
        for face in faces:
            if (name, face["face_id"]) in self.flagged:
                face.update(agreement=self.flagged[name, face["face_id"]], flagged=True)
        return self._reply(request, 200, {"name": name, "faces": faces, "consent": None})

    def _thumbnail(self, request, path: str) -> requests.Response | None:  # noqa: ANN001
        match = re.fullmatch(r"/identities/([^/]+)/faces/([0-9a-f]{32})/thumbnail", path)
        if request.method != "GET" or not match:
            return None
        jpeg = self.thumbnails.get((match[1], match[2]))
        if jpeg is None:
            return self._reply(request, 404, {"detail": f"no thumbnail of face {match[2]}"})
        return self._reply(request, 200, None, {"content-type": "image/jpeg"}, raw=jpeg)

    def _curation(self, request, path: str) -> requests.Response | None:  # noqa: ANN001
        """Rename, merge, move a face, the gallery report and "not the same person", as the API answers
        them (404 for an unknown person or face, 409 for a taken name, 422 for a no-op)."""
        json_body = "json" in request.headers.get("Content-Type", "")
        body = json.loads(request.body) if json_body else {}
        if request.method == "GET" and path == "/gallery/report":
            if self.pairs is None:
                return self._reply(request, 404, {"detail": "Not Found"})
            pairs = [p for p in self.pairs if frozenset((p["a"], p["b"])) not in self.distinct]
            flagged = [{"identity": n, "face_id": f, "agreement": a} for (n, f), a in self.flagged.items()]
            return self._reply(request, 200, {"pairs": pairs, "flagged": flagged})
        if request.method == "POST" and path == "/gallery/report/dismissed":
            if body["a"] not in self.gallery or body["b"] not in self.gallery:
                return self._reply(request, 404, {"detail": "no identity named one of them"})
            self.distinct.add(frozenset((body["a"], body["b"])))
            return self._reply(request, 204, None)
        match = re.fullmatch(r"/identities/([^/]+)(/merge|/faces/([0-9a-f]{32})/move)?", path)
        if not match or request.method not in ("PATCH", "POST") or (request.method == "POST") != bool(match[2]):
            return None
        name, face_id = match[1], match[3]
        target = body.get("name") or body.get("into") or body.get("to")
        if name not in self.gallery or (face_id is not None and int(face_id, 16) >= self.gallery[name]):
            return self._reply(request, 404, {"detail": f"no identity named {name!r}"})
        if target == name:
            return self._reply(request, 422, {"detail": "the face is in that identity already"})
        if request.method == "PATCH" and target in self.gallery and not body.get("merge"):
            return self._reply(request, 409, {"detail": f"identity {target!r} exists: rename with merge=true"})
        if match[2] == "/merge" and target not in self.gallery:
            return self._reply(request, 404, {"detail": f"no identity named {target!r}"})
        moved = 1 if face_id is not None else self.gallery[name]
        self.gallery[target] = self.gallery.get(target, 0) + moved
        self.gallery[name] -= moved
        if not self.gallery[name]:
            del self.gallery[name]
        return self._reply(request, 200, {"name": target, "faces": self.gallery[target], "moved": ["0" * 32] * moved})

    @staticmethod
    def _reply(
        request, status: int, body: object, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response._content = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        if raw is not None:  # the client streams these: a body to close as a real one has
            response.raw = io.BytesIO(raw)
        response.headers.update({"content-type": "application/json", **(headers or {})})
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


def multipart_parts(request: requests.PreparedRequest):
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    return list(BytesParser(policy=HTTP).parsebytes(head + request.body).iter_parts())


def synthetic_photo(width: int = 640, height: int = 360, fmt: str = "JPEG") -> bytes:
    img = Image.new("RGB", (width, height), (200, 205, 210))
    ImageDraw.Draw(img).ellipse((100, 50, 250, 250), fill=(180, 140, 120))
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


FACES = [
    {
        "box": [100.0, 50.0, 250.0, 250.0],
        "score": 0.999,
        "landmarks": [[0, 0]] * 5,
        "identity": "obama",
        "similarity": 0.953,
        "candidates": [{"identity": "obama", "similarity": 0.953}, {"identity": "biden", "similarity": 0.71}],
    },
    {
        "box": [400.0, 60.0, 520.0, 220.0],
        "score": 0.987,
        "landmarks": [[0, 0]] * 5,
        "identity": None,
        "similarity": 0.64,
        "candidates": [{"identity": "<b>eve</b>", "similarity": 0.64}],
    },
]


def site_app(fake: FakeApi, **overrides):
    settings = WebSettings(api_url=API, secret_key="test", **overrides)
    session = requests.Session()
    session.mount(API, fake)
    client = FaceClient(API, settings.api_key, timeout=5, session=session, read_api_key=settings.read_api_key)
    app = create_app(settings, client)
    app.testing = True
    return app


def token(client, path: str = "/") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def recognize(client, data: bytes | None = None, filename: str = "photo.jpg"):
    form = {"csrf_token": token(client), "image": (io.BytesIO(synthetic_photo() if data is None else data), filename)}
    return client.post("/recognize", data=form, content_type="multipart/form-data")


def enroll(client, name: str, photos: int = 1, consent: bool = True, force: bool = False):
    form = {
        "csrf_token": token(client, "/enroll"),
        "name": name,
        "photos": [(io.BytesIO(synthetic_photo()), f"p{i}.jpg") for i in range(photos)],
    }
    if consent:
        form["consent"] = "yes"
    if force:
        form["force"] = "yes"
    return client.post("/enroll", data=form, content_type="multipart/form-data")


RUNNING_JOB = {
    "id": "a" * 32,
    "status": "running",
    "filename": "stage.mp4",
    "duration_s": 11.0,
    "error": None,
    "progress": {"stage": "analysing", "frames_done": 110, "frames_total": 275, "fraction": 0.34},
}

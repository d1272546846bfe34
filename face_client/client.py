"""``FaceClient``: one method per endpoint of the face API, for the site, the pipeline and scripts.

Imports only ``requests`` and the standard library (no torch, no numpy), so a script or the web
image can use it without the models. Every failure (an error status, the API down, a timeout,
an answer that is not JSON) is an :class:`ApiError`.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, cast
from urllib.parse import quote

import requests

from .errors import ApiError, detail_text, error_for
from .results import (
    CurationResult,
    Detection,
    Embedding,
    Enrollment,
    GalleryReport,
    Health,
    Identity,
    IdentitySummary,
    Recognition,
    Verification,
    VideoJob,
)

# A thumbnail is a few KB (96 px JPEG); anything much larger is not one, and is not read whole.
THUMBNAIL_MAX_BYTES = 64 * 1024
CHUNK = 1 << 20  # bytes per read of a streamed video upload


@dataclass(frozen=True)
class Upload:
    """One image (or video) to send, held in memory."""

    filename: str
    data: bytes
    content_type: str = "application/octet-stream"

    def as_field(self, field: str) -> tuple[str, tuple[str, bytes, str]]:
        return field, (self.filename or "upload", self.data, self.content_type or "application/octet-stream")


Image = Upload | bytes  # bytes are sent as image.jpg


def _upload(image: Image, field: str) -> tuple[str, tuple[str, bytes, str]]:
    if isinstance(image, Upload):
        return image.as_field(field)
    return field, ("image.jpg", bytes(image), "image/jpeg")


def _segment(value: str) -> str:
    # Names may hold spaces, apostrophes and dots; nothing in them may act as a path separator.
    return quote(str(value), safe="")


class FaceClient:
    """A client of the face API at ``base_url``.

    ``api_key`` goes as ``X-API-Key`` with writes (enroll, delete) and with reads unless
    ``read_api_key`` is given (then reads carry that one: the write key travels no more than it
    has to). ``timeout`` bounds each request in seconds. Thread-safe: without a ``session``, each
    thread gets its own ``requests.Session`` (keep-alive per thread); a given one is shared.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        session: requests.Session | None = None,
        read_api_key: str | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the API's URL must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.read_api_key = read_api_key
        self.timeout = timeout
        self._session = session
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        if self._session is not None:
            return self._session
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    # --- inference -------------------------------------------------------------------------------
    def health(self) -> Health:
        """``GET /health``; an ApiError when the answer is not the face API's."""
        body = self._json("GET", "/health")
        if not isinstance(body, dict) or "embedder" not in body:
            raise ApiError(f"{self.base_url}/health is not the face API's health answer", status=502, api_status=200)
        return cast(Health, body)

    def detect(self, image: Image) -> Detection:
        return self._json("POST", "/detect", files=[_upload(image, "image")])

    def embed(self, image: Image) -> Embedding:
        return self._json("POST", "/embed", files=[_upload(image, "image")])

    def recognize(self, image: Image, threshold: float | None = None) -> Recognition:
        """Every face with its box, identity (None: unknown), similarity and candidates."""
        data = None if threshold is None else {"threshold": str(threshold)}
        return self._json("POST", "/recognize", files=[_upload(image, "image")], data=data)

    def verify(self, image_a: Image, image_b: Image) -> Verification:
        return self._json("POST", "/verify", files=[_upload(image_a, "image_a"), _upload(image_b, "image_b")])

    # --- the gallery -----------------------------------------------------------------------------
    def enroll(
        self,
        name: str,
        images: Sequence[Image],
        boxes: Sequence[str] | None = None,
        consent: str | None = None,
        expires_at: str | None = None,
        force: bool = False,
    ) -> Enrollment:
        """``POST /identities/{name}/faces``: one face of each image (the one at its ``box``,
        ``"x1,y1,x2,y2"``, else the largest), all or nothing. ``consent`` and ``expires_at`` are
        sent only when given, for APIs that record them; ``force`` enrolls faces the API's
        quality gate would refuse (422) as too small, dark or blurred."""
        data: dict[str, Any] = {"force": "true"} if force else {}
        if boxes:
            data["box"] = list(boxes)
        if consent:
            data["consent"] = consent
        if expires_at:
            data["expires_at"] = expires_at
        return self._json(
            "POST",
            f"/identities/{_segment(name)}/faces",
            files=[_upload(image, "image") for image in images],
            data=data or None,
            write=True,
        )

    def identities(self) -> list[IdentitySummary]:
        """``GET /identities`` as a list of ``{"name", "faces"}``."""
        return self._list("/identities", "identities", "gallery listing")

    def identity(self, name: str) -> Identity:
        """``GET /identities/{name}``: its faces (``face_id``, ``created_at``, ``box``)."""
        return self._json("GET", f"/identities/{_segment(name)}")

    def delete_identity(self, name: str) -> None:
        """``DELETE /identities/{name}``; an unknown name is an ApiError with status 404."""
        self._request("DELETE", f"/identities/{_segment(name)}", write=True).close()

    def delete_face(self, name: str, face_id: str) -> None:
        self._request("DELETE", f"/identities/{_segment(name)}/faces/{_segment(face_id)}", write=True).close()

    def face_thumbnail(self, name: str, face_id: str) -> bytes:
        """``GET /identities/{name}/faces/{face_id}/thumbnail``: the small JPEG kept of the face at
        enrollment; an ApiError with status 404 when it has none (enrolled before they were kept)."""
        path = f"/identities/{_segment(name)}/faces/{_segment(face_id)}/thumbnail"
        response = self._request("GET", path, headers={"Accept": "image/jpeg"}, stream=True)
        data = b""
        try:
            for chunk in response.iter_content(chunk_size=16 * 1024):
                data += chunk
                if len(data) > THUMBNAIL_MAX_BYTES:
                    break
        finally:
            response.close()
        if len(data) > THUMBNAIL_MAX_BYTES or response.headers.get("Content-Type", "") != "image/jpeg":
            raise ApiError(f"{self.base_url} answered with something that is not a face thumbnail", status=502)
        return data

    # --- curation --------------------------------------------------------------------------------
    def rename_identity(self, name: str, new_name: str, merge: bool = False) -> CurationResult:
        """``PATCH /identities/{name}``; a name another identity has is an ApiError 409 unless
        ``merge`` (then the identity is merged into that one)."""
        body = {"name": new_name, "merge": merge}
        return self._json("PATCH", f"/identities/{_segment(name)}", write=True, json=body)

    def merge_identity(self, name: str, into: str) -> CurationResult:
        """``POST /identities/{name}/merge``: every face into ``into``; ``name`` is removed."""
        return self._json("POST", f"/identities/{_segment(name)}/merge", write=True, json={"into": into})

    def move_face(
        self, name: str, face_id: str, to: str, consent: str | None = None, expires_at: str | None = None
    ) -> CurationResult:
        """``POST /identities/{name}/faces/{face_id}/move``; ``consent``/``expires_at`` count when
        the move creates ``to``."""
        body = {k: v for k, v in (("to", to), ("consent", consent), ("expires_at", expires_at)) if v is not None}
        path = f"/identities/{_segment(name)}/faces/{_segment(face_id)}/move"
        return self._json("POST", path, write=True, json=body)

    def gallery_report(self, limit: int = 100) -> GalleryReport:
        """``GET /gallery/report``: ``pairs`` of identities that may be one person (best first, a pair
        dismissed as distinct left out) and ``flagged`` faces that may not be their identity's."""
        body = self._json("GET", "/gallery/report", params={"limit": int(limit)})
        if not isinstance(body, dict) or not isinstance(body.get("pairs"), list):
            raise ApiError("The face service answered with an unexpected gallery report", status=502, api_status=200)
        return cast(GalleryReport, body)

    def dismiss_pair(self, a: str, b: str) -> None:
        """``POST /gallery/report/dismissed``: ``a`` and ``b`` are not the same person; the report
        stops suggesting the pair."""
        self._request("POST", "/gallery/report/dismissed", write=True, json={"a": a, "b": b}).close()

    # --- video jobs ------------------------------------------------------------------------------
    def upload_video(self, filename: str, content_type: str, stream: IO[bytes]) -> VideoJob:
        """``POST /videos``, streaming ``stream`` chunk by chunk (never whole in memory)."""
        boundary = secrets.token_hex(16)
        return self._json(
            "POST",
            "/videos",
            write=True,
            data=_multipart("video", filename, content_type, stream, boundary),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )

    def videos(self) -> list[VideoJob]:
        return self._list("/videos", "videos", "list of videos")

    def video(self, job_id: str) -> VideoJob:
        return self._json("GET", f"/videos/{_segment(job_id)}")

    def delete_video(self, job_id: str) -> None:
        self._request("DELETE", f"/videos/{_segment(job_id)}", write=True).close()

    def enroll_track(
        self, job_id: str, track_id: int, name: str, consent: str | None = None, force: bool = False
    ) -> Enrollment:
        """``POST /videos/{id}/tracks/{track}/enroll``: up to 5 of the track's best faces under ``name``
        (``force``: also those the quality gate leaves out)."""
        body: dict[str, Any] = {"name": name} if consent is None else {"name": name, "consent": consent}
        if force:
            body["force"] = True
        return self._json("POST", f"/videos/{_segment(job_id)}/tracks/{int(track_id)}/enroll", write=True, json=body)

    def stream(self, path: str, range_header: str | None = None) -> requests.Response:
        """A streamed GET of ``path`` (the caller closes it): the annotated video or a track's face,
        ``Range`` passed on."""
        headers = {"Accept": "*/*", **({"Range": range_header} if range_header else {})}
        return self._request("GET", path, stream=True, headers=headers)

    def live_ticket(self) -> dict:
        """A short-lived ticket for the API's /live WebSocket (``ticket`` is None where none is needed)."""
        return self._json("POST", "/live/tickets")

    def cameras(self) -> list[dict]:
        """Each network camera's state, rates and who is in view (GET /cameras)."""
        return self._list("/cameras", "cameras", "list of cameras")

    def events(self, limit: int = 20) -> list[dict]:
        """The latest camera events, newest first (GET /events)."""
        return self._list(f"/events?limit={int(limit)}", "events", "list of events")

    # --- plumbing --------------------------------------------------------------------------------
    def _list(self, path: str, key: str, what: str) -> list:
        body = self._json("GET", path)
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ApiError(f"The face service answered with an unexpected {what}", status=502, api_status=200)
        return items

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                f"The face service answered with something that is not JSON; is {self.base_url} the face API?",
                status=502,
                api_status=response.status_code,
            ) from None

    def _request(
        self, method: str, path: str, *, write: bool = False, headers: dict | None = None, **kwargs: Any
    ) -> requests.Response:
        sent = {"Accept": "application/json", **(headers or {})}
        key = self.api_key if write else self.read_api_key or self.api_key
        if key:
            sent["X-API-Key"] = key
        try:
            response = self.session.request(method, self.base_url + path, headers=sent, timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise ApiError(
                f"The face service at {self.base_url} did not answer within {self.timeout:g} s; try again later",
                status=504,
            ) from None
        except requests.ConnectionError:
            raise ApiError(
                f"The face service at {self.base_url} is not reachable; is it running?", status=502
            ) from None
        except requests.RequestException as exc:
            raise ApiError(f"Could not talk to the face service: {exc.__class__.__name__}", status=502) from None
        if response.status_code >= 400:
            try:
                detail = detail_text(response.json().get("detail"))
            except (ValueError, AttributeError):
                detail = ""
            error = error_for(response.status_code, detail, response.headers.get("Retry-After", ""))
            response.close()
            raise error
        return response


def _multipart(field: str, filename: str, content_type: str, stream: IO[bytes], boundary: str) -> Iterator[bytes]:
    """One multipart part, produced chunk by chunk (requests would build the whole body in memory)."""
    safe = filename.replace('"', "").replace("\r", "").replace("\n", "") or "video"
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{quote(safe, safe=" ._-()")}"\r\n'
        f"Content-Type: {content_type or 'application/octet-stream'}\r\n\r\n"
    ).encode()
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()

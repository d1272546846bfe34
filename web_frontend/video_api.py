"""The site's calls to the API's video jobs and per-face gallery endpoints.

Kept beside :mod:`web_frontend.api_client` (whose plumbing it uses: the same session, key
handling and readable :class:`ApiError`) because a video is neither held in memory nor answered
as JSON: the upload streams from the site's temporary file to the API, and the annotated video
streams back to the browser.
"""
from __future__ import annotations

import secrets
from typing import IO, Iterator
from urllib.parse import quote

import requests

from .api_client import ApiError, FaceApi

CHUNK = 1 << 20


def _multipart(field: str, filename: str, content_type: str, stream: IO[bytes], boundary: str) -> Iterator[bytes]:
    """One multipart part, produced chunk by chunk (requests would build the whole body in memory)."""
    safe = filename.replace('"', "").replace("\r", "").replace("\n", "") or "video"
    yield (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{quote(safe, safe=' ._-()')}\"\r\n"
        f"Content-Type: {content_type or 'application/octet-stream'}\r\n\r\n"
    ).encode()
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def upload_video(api: FaceApi, filename: str, content_type: str, stream: IO[bytes]) -> dict:
    """``POST /videos``, streaming ``stream``; the job (``id``, ``status``...)."""
    boundary = secrets.token_hex(16)
    return _json(_send(
        api, "POST", "/videos", write=True,
        data=_multipart("video", filename, content_type, stream, boundary),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    ))


def videos(api: FaceApi) -> list[dict]:
    body = _json(_send(api, "GET", "/videos"))
    items = body.get("videos") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ApiError("The face service answered with an unexpected list of videos", status=502)
    return items


def video(api: FaceApi, job_id: str) -> dict:
    return _json(_send(api, "GET", f"/videos/{quote(job_id, safe='')}"))


def delete_video(api: FaceApi, job_id: str) -> None:
    _send(api, "DELETE", f"/videos/{quote(job_id, safe='')}", write=True)


def enroll_track(api: FaceApi, job_id: str, track_id: int, name: str, consent: str | None = None) -> dict:
    body = {"name": name} if consent is None else {"name": name, "consent": consent}
    return _json(_send(
        api, "POST", f"/videos/{quote(job_id, safe='')}/tracks/{int(track_id)}/enroll", write=True, json=body
    ))


def stream(api: FaceApi, path: str, range_header: str | None = None) -> requests.Response:
    """A streamed GET (the caller closes it): the annotated video or a face crop, Range passed on."""
    headers = {"Accept": "*/*", **({"Range": range_header} if range_header else {})}
    return _send(api, "GET", path, stream=True, headers=headers)


def identity(api: FaceApi, name: str) -> dict:
    """``GET /identities/{name}``: ``{"name", "faces": [{"face_id", "created_at", "box"}]}``."""
    return _json(_send(api, "GET", f"/identities/{quote(name, safe='')}"))


def delete_face(api: FaceApi, name: str, face_id: str) -> None:
    _send(api, "DELETE", f"/identities/{quote(name, safe='')}/faces/{quote(face_id, safe='')}", write=True)


# -- plumbing: FaceApi's, with headers of our own (a multipart boundary, a Range) ------------------
def _send(api: FaceApi, method: str, path: str, *, write: bool = False, headers: dict | None = None, **kwargs) -> requests.Response:
    sent = {"Accept": "application/json", **(headers or {})}
    key = api.api_key if write else api.read_api_key or api.api_key  # as FaceApi._request
    if key:
        sent["X-API-Key"] = key
    try:
        response = api.session.request(method, api.base_url + path, headers=sent, timeout=api.timeout, **kwargs)
    except requests.Timeout:
        raise ApiError(f"The face service at {api.base_url} did not answer within {api.timeout:g} s; try again later", status=504) from None
    except requests.ConnectionError:
        raise ApiError(f"The face service at {api.base_url} is not reachable; is it running?", status=502) from None
    except requests.RequestException as exc:
        raise ApiError(f"Could not talk to the face service: {exc.__class__.__name__}", status=502) from None
    if response.status_code >= 400:
        error = api._error(response)
        response.close()
        raise error
    return response


def _json(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        raise ApiError("The face service answered with something that is not JSON", status=502) from None

"""Face thumbnails on the Gallery and person pages, fetched from the API by the site.

The browser never holds an API key, so each picture is a site URL that asks the API with the
site's read key and passes the JPEG on; like every page showing a person they need the login when
``WEB_PASSWORD`` is set (the site's ``before_request`` rule covers these routes too). Faces enrolled
before the API kept thumbnails have none: those answer 404 and the page shows no picture.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, Response, abort, request

from face_client import ApiError

from .context import face_api

bp = Blueprint("thumbnails", __name__)

# The Gallery's picture of a person is the first of their faces that has a thumbnail; faces
# enrolled before thumbnails were kept are skipped, at most this many (one API call each).
PERSON_TRIES = 3


def _jpeg(data: bytes) -> Response:
    # private: a person's face is not for shared caches; an hour: a face's thumbnail never changes
    return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


def _thumbnail(name: str, face_id: str) -> bytes | None:
    try:
        return face_api().face_thumbnail(name, face_id)
    except ApiError as exc:
        if exc.status == 404:
            return None
        abort(502, description=exc.message)


@bp.get("/gallery/person/face.jpg")
def face():
    name, face_id = request.args.get("name", ""), request.args.get("face_id", "")
    if not name or not face_id:
        abort(404)
    data = _thumbnail(name, face_id)
    if data is None:
        abort(404, description=f"no picture of face {face_id} of {name}")
    return _jpeg(data)


@bp.get("/gallery/person/picture.jpg")
def person():
    name = request.args.get("name", "")
    if not name:
        abort(404)
    try:
        faces = cast(dict[str, Any], face_api().identity(name)).get("faces") or []
    except ApiError as exc:
        abort(404 if exc.status == 404 else 502, description=exc.message)
    for found in faces[:PERSON_TRIES]:
        data = _thumbnail(name, str(found.get("face_id", "")))
        if data is not None:
            return _jpeg(data)
    abort(404, description=f"no picture of {name}")

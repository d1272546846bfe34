"""Recognize: upload a photo, see every face boxed and named, with its candidates."""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from flask import Blueprint, render_template, request

from face_client import ApiError

from .auth import logged_in
from .context import face_api, web_settings
from .drawing import annotate, face_label, similarity_text
from .forms import FormError, read_uploads
from .naming import face_forms
from .predecode import PendingPhoto

log = logging.getLogger(__name__)

bp = Blueprint("recognize", __name__)


def _face_rows(faces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One table row per face: what the template shows, already formatted."""
    rows = []
    for number, face in enumerate(faces, start=1):
        score = face.get("score")
        rows.append(
            {
                "number": number,
                "label": face_label(face),
                "identity": face.get("identity"),
                "similarity": similarity_text(face.get("similarity")),
                "candidates": [
                    (c.get("identity", "?"), similarity_text(c.get("similarity"))) for c in face.get("candidates") or []
                ],
                "score": f"{score:.3f}" if isinstance(score, (int, float)) else "–",
                "box": ", ".join(f"{v:.0f}" for v in face.get("box") or []),
            }
        )
    return rows


# --- Home: recognise ------------------------------------------------------------------------
@bp.get("/")
def home():
    return render_template("home.html")


@bp.post("/recognize")
def recognize():
    try:
        uploads = read_uploads([request.files.get("image")], web_settings())
        if not uploads:
            raise FormError("Choose a photo to upload.")
    except FormError as exc:
        return render_template("home.html", error=str(exc)), 400
    upload = uploads[0]
    pending = PendingPhoto(upload.data)  # decoded while the API works
    started = time.perf_counter()
    try:
        result = face_api().recognize(upload)
    except ApiError as exc:
        pending.cancel()
        return render_template("home.html", error=exc.message), exc.status
    api_done = time.perf_counter()
    faces = cast(list[dict[str, Any]], result.get("faces") or [])
    image, image_error, photo = None, None, None
    try:
        photo = pending.result()  # decoded once for the drawing and the face crops
        image = annotate(photo, faces)
    except Exception:  # noqa: BLE001 - the table is still worth showing without the drawing
        log.exception("could not draw the result image")
        image_error = "The faces were found, but the photo could not be drawn."
    rows = _face_rows(faces)
    # Forms (each a one-time token the site keeps) only for whom the page offers them: a logged-in visitor.
    naming = face_forms(photo, faces, [row["label"] for row in rows]) if photo is not None and logged_in() else []
    drawn = time.perf_counter()
    html = render_template(
        "result.html",
        filename=upload.filename,
        image=image,
        image_error=image_error,
        rows=rows,
        naming=naming,
        threshold=result.get("threshold"),
    )
    # Where the time went (browser dev tools and benchmarks/bench_web.py read it).
    timing = (
        f"api;dur={(api_done - started) * 1000:.1f}, draw;dur={(drawn - api_done) * 1000:.1f}, "
        f"html;dur={(time.perf_counter() - drawn) * 1000:.1f}"
    )
    return html, 200, {"Server-Timing": timing}

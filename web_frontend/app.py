"""The Flask site: recognise faces in a photo, enroll people, look at and prune the gallery.

No model code here: every face operation is a call to the inference API through
:class:`face_client.FaceClient`. Uploads stay in memory (see :class:`InMemoryRequest`)
and the drawn result is sent inline, so the site keeps no photo on disk.
"""
from __future__ import annotations

import io
import logging
import time
from typing import Any

from flask import Flask, Request, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import HTTPException


from face_client import ApiError, FaceClient, Upload
from .auth import init_auth, login_required
from .config import WebSettings
from .consent import ConsentNoteError, consent_record
from .csrf import init_csrf
from .drawing import annotate, face_label
from .naming import bp as naming_blueprint, face_forms
from .headers import init_security_headers
from .people import init_people
from .videos import init_videos

log = logging.getLogger(__name__)

# Room for the multipart framing and the text fields next to the files, so a photo of exactly the
# API's limit still reaches the site's own per-file check instead of a bare 413.
FORM_OVERHEAD_BYTES = 64 * 1024
MAX_ENROLL_PHOTOS = 20
NAME_RULE = "Names may hold letters, digits, spaces and _ - . ' (1 to 64 characters), and may not be . or .."


class InMemoryRequest(Request):
    """Keep uploaded files in memory: Werkzeug would spool files over 500 KB to a temporary file.

    Memory is bounded by ``MAX_CONTENT_LENGTH``, which the site sets from ``FACE_MAX_UPLOAD_MB``.
    """

    def _get_file_stream(
        self, total_content_length: int | None, content_type: str | None, filename: str | None = None,
        content_length: int | None = None,
    ) -> io.BytesIO:
        return io.BytesIO()


class FormError(Exception):
    """Something the person has to fix in the form; shown next to the form with status 400."""


def _uploads(files: list[FileStorage | None], settings: WebSettings) -> list[Upload]:
    """Read the chosen files into memory, skipping the empty part a browser sends for 'no file'."""
    uploads, limit = [], settings.max_upload_bytes
    for storage in files:
        if storage is None or not storage.filename:
            continue
        data = storage.read()
        if not data:
            raise FormError(f"The file {storage.filename!r} is empty.")
        if len(data) > limit:
            raise FormError(f"The file {storage.filename!r} is larger than the {settings.max_upload_mb:g} MB limit.")
        uploads.append(Upload(storage.filename, data, storage.mimetype or "application/octet-stream"))
    return uploads


def _face_rows(faces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One table row per face: what the template shows, already formatted."""
    rows = []
    for number, face in enumerate(faces, start=1):
        similarity = face.get("similarity")
        score = face.get("score")
        rows.append(
            {
                "number": number,
                "label": face_label(face),
                "identity": face.get("identity"),
                "similarity": f"{similarity:.3f}" if isinstance(similarity, (int, float)) else "–",
                "candidates": [
                    (c.get("identity", "?"), f"{c['similarity']:.3f}" if isinstance(c.get("similarity"), (int, float)) else "–")
                    for c in face.get("candidates") or []
                ],
                "score": f"{score:.3f}" if isinstance(score, (int, float)) else "–",
                "box": ", ".join(f"{v:.0f}" for v in face.get("box") or []),
            }
        )
    return rows


def create_app(settings: WebSettings | None = None, api: FaceClient | None = None) -> Flask:
    """Build the site; ``api`` may be given (tests pass a client with a fake transport)."""
    settings = settings or WebSettings()
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + FORM_OVERHEAD_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.extensions["face_api"] = api or FaceClient(
        settings.api_url, settings.api_key, settings.api_timeout_s, read_api_key=settings.read_api_key
    )
    app.extensions["web_settings"] = settings
    app.register_blueprint(naming_blueprint)
    init_csrf(app)
    init_security_headers(app)
    init_auth(app, settings)
    init_videos(app, settings)
    init_people(app)

    def face_api() -> FaceClient:
        return app.extensions["face_api"]

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"max_upload_mb": f"{settings.max_upload_mb:g}", "max_video_mb": f"{settings.max_video_mb:g}"}

    # --- Home: recognise ------------------------------------------------------------------------
    @app.get("/")
    def home():
        return render_template("home.html")

    @app.post("/recognize")
    def recognize():
        try:
            uploads = _uploads([request.files.get("image")], settings)
            if not uploads:
                raise FormError("Choose a photo to upload.")
        except FormError as exc:
            return render_template("home.html", error=str(exc)), 400
        upload = uploads[0]
        started = time.perf_counter()
        try:
            result = face_api().recognize(upload)
        except ApiError as exc:
            return render_template("home.html", error=exc.message), exc.status
        api_done = time.perf_counter()
        faces = result.get("faces") or []
        image, image_error = None, None
        try:
            image = annotate(upload.data, faces)
        except Exception:  # noqa: BLE001 - the table is still worth showing without the drawing
            log.exception("could not draw the result image")
            image_error = "The faces were found, but the photo could not be drawn."
        rows = _face_rows(faces)
        naming = face_forms(upload.data, faces, [row["label"] for row in rows])
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

    # --- Enroll ---------------------------------------------------------------------------------
    @app.get("/enroll")
    @login_required
    def enroll_form():
        return render_template("enroll.html", name="")

    @app.post("/enroll")
    @login_required
    def enroll():
        name = request.form.get("name", "").strip()
        try:
            if not name:
                raise FormError("Enter the person's name.")
            if "/" in name or "\\" in name or name in (".", ".."):
                # The API refuses these too (422), but a slash would not even reach its route.
                raise FormError(NAME_RULE)
            if request.form.get("consent") != "yes":
                raise FormError("Tick the box to confirm that this person agreed to be enrolled.")
            consent = consent_record(request.form.get("consent_note", ""), "Enroll")
            uploads = _uploads(request.files.getlist("photos"), settings)
            if not uploads:
                raise FormError("Choose at least one photo of the person.")
            if len(uploads) > MAX_ENROLL_PHOTOS:
                raise FormError(f"Choose at most {MAX_ENROLL_PHOTOS} photos at a time.")
        except (FormError, ConsentNoteError) as exc:
            return render_template("enroll.html", name=name, error=str(exc)), 400
        try:
            result = face_api().enroll(name, uploads, consent=consent)
        except ApiError as exc:
            return render_template("enroll.html", name=name, error=exc.message), exc.status
        added = len(result.get("added") or [])
        return render_template(
            "enroll.html", name="", enrolled={"name": result.get("identity", name), "added": added, "total": result.get("faces")}
        )

    # --- Gallery --------------------------------------------------------------------------------
    @app.get("/gallery")
    def gallery():
        try:
            identities = sorted(face_api().identities(), key=lambda item: str(item.get("name", "")).lower())
        except ApiError as exc:
            return render_template("gallery.html", identities=None, error=exc.message), exc.status
        return render_template("gallery.html", identities=identities)

    @app.get("/gallery/delete")
    @login_required
    def confirm_delete():
        name = request.args.get("name", "")
        if not name:
            return redirect(url_for("gallery"))
        return render_template("confirm_delete.html", name=name)

    @app.post("/gallery/delete")
    @login_required
    def delete():
        name = request.form.get("name", "")
        if not name:
            return redirect(url_for("gallery"))
        if request.form.get("confirm") != "yes":
            return render_template(
                "confirm_delete.html", name=name, error="Tick the box to confirm the deletion."
            ), 400
        try:
            face_api().delete_identity(name)
        except ApiError as exc:
            if exc.status == 404:
                flash(f"{name} is not in the gallery (already deleted?).", "error")
                return redirect(url_for("gallery"))
            return render_template("confirm_delete.html", name=name, error=exc.message), exc.status
        flash(f"Deleted {name} and all of their faces.", "ok")
        return redirect(url_for("gallery"))

    # --- service --------------------------------------------------------------------------------
    @app.get("/health")
    def health():
        """Liveness of the site itself (compose's healthcheck); says nothing about the API."""
        return jsonify(status="ok")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 413:
            message = f"The upload is larger than the {settings.max_upload_mb:g} MB limit. Choose a smaller photo."
        else:
            message = exc.description or exc.name
        return render_template("error.html", code=exc.code, title=exc.name, message=message), exc.code

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        log.exception("unexpected error")
        return render_template(
            "error.html", code=500, title="Something went wrong", message="The site hit an unexpected error."
        ), 500

    return app

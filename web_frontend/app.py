"""The Flask site: recognise faces in a photo, enroll people, look at and prune the gallery.

No model code here: every face operation is a call to the inference API through
:class:`face_client.FaceClient`. Uploads stay in memory (see :class:`InMemoryRequest`)
and the drawn result is sent inline, so the site keeps no photo on disk.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from flask import Flask, Request, jsonify, redirect, render_template, url_for
from werkzeug.exceptions import HTTPException

from face_client import FaceClient

from .auth import bp as auth_blueprint
from .auth import init_auth
from .config import WebSettings
from .context import API_CLIENT, SETTINGS
from .csrf import init_csrf
from .curation import bp as curation_blueprint
from .forms import FORM_OVERHEAD_BYTES
from .gallery import bp as gallery_blueprint
from .headers import init_security_headers
from .live import bp as live_blueprint
from .naming import bp as naming_blueprint
from .people import bp as people_blueprint
from .recognize import bp as recognize_blueprint
from .report import bp as report_blueprint
from .thumbnails import bp as thumbnails_blueprint
from .videos import bp as videos_blueprint

log = logging.getLogger(__name__)


class InMemoryRequest(Request):
    """Keep uploaded files in memory: Werkzeug would spool files over 500 KB to a temporary file.

    Memory is bounded by ``MAX_CONTENT_LENGTH``, which the site sets from ``FACE_MAX_UPLOAD_MB``.
    """

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> io.BytesIO:
        return io.BytesIO()


def create_app(settings: WebSettings | None = None, api: FaceClient | None = None) -> Flask:
    """Build the site: a blueprint per group of pages, and the hooks every request passes (CSRF,
    security headers, the login); ``api`` may be given (tests pass a client with a fake transport)."""
    settings = settings or WebSettings()
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + FORM_OVERHEAD_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.extensions[API_CLIENT] = api or FaceClient(
        settings.api_url, settings.api_key, settings.api_timeout_s, read_api_key=settings.read_api_key
    )
    app.extensions[SETTINGS] = settings
    init_csrf(app)
    init_security_headers(app)
    init_auth(app, settings)
    for blueprint in (
        recognize_blueprint,
        naming_blueprint,
        gallery_blueprint,
        people_blueprint,
        thumbnails_blueprint,
        curation_blueprint,
        report_blueprint,
        videos_blueprint,
        live_blueprint,
        auth_blueprint,
    ):
        app.register_blueprint(blueprint)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"max_upload_mb": f"{settings.max_upload_mb:g}", "max_video_mb": f"{settings.max_video_mb:g}"}

    # --- service --------------------------------------------------------------------------------
    @app.get("/health")
    def health():
        """Liveness of the site itself (compose's healthcheck); says nothing about the API."""
        return jsonify(status="ok")

    @app.get("/favicon.ico")
    def favicon():
        """Pages link the icon; this is for what has no page (a video or an image opened on its own)."""
        return redirect(url_for("static", filename="favicon.svg"), 301)

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

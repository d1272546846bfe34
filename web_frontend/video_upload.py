"""A video upload goes to a temporary file, under its own size limit; photos stay in memory.

A video is too large to hold in memory like a photo: for ``POST /videos`` only, the request
class spools the upload to a temporary file (deleted as soon as the request ends) and allows
``FACE_MAX_VIDEO_MB``. This is app-wide (a request class is chosen before any view runs), so the
videos blueprint installs it when it is registered.
"""

from __future__ import annotations

import tempfile

from flask import Flask, render_template
from werkzeug.exceptions import RequestEntityTooLarge

from .config import WebSettings
from .forms import FORM_OVERHEAD_BYTES

UPLOAD_PATH = "/videos"


class VideoTooLarge(RequestEntityTooLarge):
    """A video over FACE_MAX_VIDEO_MB (a photo over its limit stays the site's usual 413)."""


def _video_request_class(base: type, settings: WebSettings) -> type:
    video_limit = int(settings.max_video_mb * 1024 * 1024) + FORM_OVERHEAD_BYTES

    class VideoUploadRequest(base):
        """Photos stay in memory (the base class); a video upload goes to a temporary file."""

        def _is_video_upload(self) -> bool:
            return self.method == "POST" and self.path == UPLOAD_PATH

        def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
            if self._is_video_upload():
                return tempfile.TemporaryFile(prefix="web-video-")
            return super()._get_file_stream(total_content_length, content_type, filename, content_length)

        def _load_form_data(self) -> None:
            try:
                super()._load_form_data()
            except RequestEntityTooLarge:
                if self._is_video_upload():
                    raise VideoTooLarge() from None
                raise

        @property
        def max_content_length(self) -> int | None:
            if self._is_video_upload():
                return video_limit
            return super().max_content_length

        @max_content_length.setter
        def max_content_length(self, value: int | None) -> None:
            base.max_content_length.fset(self, value)  # type: ignore[attr-defined]

    return VideoUploadRequest


def install_video_uploads(app: Flask, settings: WebSettings) -> None:
    """Spool ``POST /videos`` to a temporary file, and answer an over-limit video with its own 413 page."""
    app.request_class = _video_request_class(app.request_class, settings)

    @app.errorhandler(VideoTooLarge)
    def video_too_large(exc: VideoTooLarge):
        message = f"The video is larger than the {settings.max_video_mb:g} MB limit. Choose a shorter or smaller video."
        return render_template("error.html", code=413, title="Video too large", message=message), 413

"""What the site's upload forms share: reading the chosen files, and errors the person can fix."""

from __future__ import annotations

from collections.abc import Sequence

from werkzeug.datastructures import FileStorage

from face_client import Upload

from .config import WebSettings

# Room for the multipart framing and the text fields next to the files, so a file of exactly the
# limit still reaches the site's own per-file check instead of a bare 413.
FORM_OVERHEAD_BYTES = 64 * 1024


class FormError(Exception):
    """Something the person has to fix in the form; shown next to the form with status 400."""


def read_uploads(files: Sequence[FileStorage | None], settings: WebSettings) -> list[Upload]:
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

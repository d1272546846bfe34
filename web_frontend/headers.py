"""Security headers on every response of the site: pages, error pages, redirects and static files.

The site performs enrollments and deletions with its own API key, so a page of it framed by
another site could be clicked through (clickjacking the Delete button): ``frame-ancestors 'none'``
and ``X-Frame-Options`` (for browsers without CSP level 2) forbid any framing. The policy is as
tight as the pages allow: scripts only from the site's own static files (the Video page's
progress, ``static/video_progress.js``; no inline script, no ``eval``, so an injected script
cannot run), one same-origin stylesheet, and the result page's drawn photo is an inline
``data:`` image (see :mod:`web_frontend.drawing`). Every page works without JavaScript.
An ``after_request`` hook is all this needs; a library (Flask-Talisman) would add HTTPS
redirects and HSTS that a loopback site on plain HTTP must not have.
"""

from __future__ import annotations

from flask import Flask, Response

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",  # files of /static only: no inline script may run, injected or not
        "img-src 'self' data:",  # the annotated photo on the result page is a data: URL
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # The URLs carry identity names (/gallery/delete?name=...): they stay on this site.
    "Referrer-Policy": "same-origin",
}


def _add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_security_headers(app: Flask) -> None:
    """Add :data:`SECURITY_HEADERS` to every response the app sends, error handlers' included."""
    app.after_request(_add_security_headers)

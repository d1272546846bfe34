"""Session-based CSRF protection: one random token per browser session, checked on every POST.

The token lives in the signed session cookie and is echoed in each form as a hidden field; a
cross-site form cannot read it, so a POST without the matching value is refused with 400. Kept
here, small and dependency-free, instead of pulling in Flask-WTF for one check.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, abort, request, session

FIELD = "csrf_token"
_SESSION_KEY = "_csrf"


def csrf_token() -> str:
    """The session's token, created on first use (templates call this for each form)."""
    token = session.get(_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[_SESSION_KEY] = token
    return token


def _check() -> None:
    if request.method != "POST":
        return
    expected = session.get(_SESSION_KEY)
    # request.form parses the body; an over-limit upload raises 413 here, before anything else.
    sent = request.form.get(FIELD, "")
    if not isinstance(expected, str) or not expected or not hmac.compare_digest(expected, sent):
        abort(400, description="The form was out of date or not sent from this site. Reload the page and try again.")


def init_csrf(app: Flask) -> None:
    """Check every POST before its view runs and make ``csrf_token()`` available to templates."""
    app.before_request(_check)
    app.jinja_env.globals["csrf_token"] = csrf_token

"""The site's optional login: with ``WEB_PASSWORD`` set, every page but :data:`OPEN_ENDPOINTS` needs it.

The site calls the API with its own keys, so without a login anyone who can reach the site could
see the gallery and the videos and enroll and delete through it. The guard is one hook on every
request with a list of what stays open (recognising a photo, logging in, the health check, the
static files), so a page added later is closed unless it is added to that list. One shared
password (not accounts) is enough for a self-hosted site; it is checked in constant time, and
repeated wrong guesses from one address are refused for a while (:class:`LoginThrottle`).

A login is Flask's signed session cookie (HttpOnly, SameSite=Lax) holding a fingerprint of the
password keyed by the secret key (changing ``WEB_PASSWORD`` logs everyone out; the cookie reveals
nothing about the password) and a random session id that the site keeps in memory
(:class:`web_frontend.issued_ids.IssuedIds`): logging out forgets the id, so a copy of the cookie
saved before is refused afterwards, and so is every login after a restart of the site.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Flask, current_app, redirect, render_template, request, session, url_for

from .config import WebSettings
from .issued_ids import IssuedIds

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

_SESSION_KEY = "_login"
_SESSION_ID = "_sid"
# Wrong passwords allowed per client address per window before it must wait: enough for typos,
# far too few for guessing (5 per 5 minutes is 1,440 guesses a day).
MAX_FAILURES = 5
FAILURE_WINDOW_S = 300.0
# Addresses remembered at most; an attacker rotating addresses cannot grow the table past this.
MAX_TRACKED_CLIENTS = 4096
# A login ends after this long without a visit: the signed cookie's age is checked on every request
# and renewed on each answer (Flask's SESSION_REFRESH_EACH_REQUEST for a permanent session).
LOGIN_LIFETIME = timedelta(hours=12)
# Logins held at once; past it the longest idle one ends (only the password holder can add one).
MAX_LOGINS = 4096
# What a visitor without a login may use: recognising a photo and its result (the result page shows
# no gallery detail beyond the names it matched, and offers naming only after a login), logging in
# and out, the health check and the static files. The README's site section lists the same.
OPEN_ENDPOINTS = frozenset(
    {
        "recognize.home",
        "recognize.recognize",
        "auth.login",
        "auth.login_submit",
        "auth.logout",
        "health",
        "static",
        "favicon",
    }
)


class LoginThrottle:
    """Login attempts per client address in a sliding window, in bounded memory, thread-safe."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window_s: float = FAILURE_WINDOW_S,
        max_clients: int = MAX_TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def attempt(self, client: str) -> float:
        """Count an attempt by ``client`` now; or, when it has used up its window, the seconds to wait.

        Every attempt counts until :meth:`succeeded` forgets them, so checking and counting are one
        step under the lock: parallel requests cannot all pass the check before any is counted.
        """
        with self._lock:
            now = self.clock()
            times = self._recent(client, now)
            if len(times) >= self.max_failures:
                return max(0.001, times[0] + self.window_s - now)
            times.append(now)
            self._failures[client] = times
            self._failures.move_to_end(client)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)  # the longest quiet address
            return 0.0

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str, now: float) -> deque[float]:
        """The client's attempts still inside the window (caller holds the lock)."""
        times = self._failures.get(client) or deque(maxlen=self.max_failures)
        cutoff = now - self.window_s
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            self._failures.pop(client, None)
        return times


def _fingerprint(settings: WebSettings) -> str:
    """What a logged-in session holds: the password keyed by the secret key (never the password)."""
    assert settings.password is not None
    return hmac.new(
        settings.secret_key.encode(), b"web-login\0" + settings.password.get_secret_value().encode(), hashlib.sha256
    ).hexdigest()


def _settings() -> WebSettings:
    return current_app.extensions["web_settings"]


def _throttle() -> LoginThrottle:
    return current_app.extensions["login_throttle"]


def _logins() -> IssuedIds:
    return current_app.extensions["login_sessions"]


def login_enabled() -> bool:
    return _settings().password is not None


def logged_in() -> bool:
    """True when no password is set, or this session logged in with the current one and has not logged out."""
    settings = _settings()
    if settings.password is None:
        return True
    held = session.get(_SESSION_KEY)
    if not (isinstance(held, str) and hmac.compare_digest(held, _fingerprint(settings))):
        return False
    return _logins().is_open(session.get(_SESSION_ID), renew=True)


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None: a login must not redirect elsewhere.

    Browsers read ``\\`` as ``/`` and drop tabs and newlines, so ``/\\evil.example`` or
    ``/\\t/evil.example`` would leave the site as ``//evil.example`` does: all refused.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _require_login() -> Any:
    """Send a visitor who is not logged in to the login page, then back (to the form, after a POST).

    Runs after the CSRF check; a request that matched no route (404, 405) passes to its error page.
    """
    if request.endpoint is None or request.endpoint in OPEN_ENDPOINTS or logged_in():
        return None
    target = request.full_path.rstrip("?") if request.method == "GET" else request.path
    # 303: after a refused POST the browser follows with a GET.
    return redirect(url_for("auth.login") + "?" + urlencode({"next": target}), 302 if request.method == "GET" else 303)


def _login_page(next_path: str | None, error: str | None = None, status: int = 200, **headers: str):
    return render_template("login.html", next=next_path or "", error=error), status, headers


def init_auth(app: Flask, settings: WebSettings) -> None:
    """The login guard on every request, the templates' login state, the throttle and the logins held."""
    app.extensions["login_throttle"] = LoginThrottle()
    app.extensions["login_sessions"] = IssuedIds(MAX_LOGINS, LOGIN_LIFETIME.total_seconds())
    app.before_request(_require_login)
    if settings.password is not None:
        app.config["PERMANENT_SESSION_LIFETIME"] = LOGIN_LIFETIME

    @app.context_processor
    def _login_state() -> dict[str, Any]:
        return {"login_enabled": login_enabled, "logged_in": logged_in}


@bp.get("/login")
def login():
    next_path = safe_next(request.args.get("next"))
    if not login_enabled() or logged_in():
        return redirect(next_path or url_for("recognize.home"))
    return _login_page(next_path)


@bp.post("/login")
def login_submit():
    next_path = safe_next(request.form.get("next"))
    settings = _settings()
    if settings.password is None:
        return redirect(next_path or url_for("recognize.home"), 303)
    client = request.remote_addr or "unknown"
    wait = _throttle().attempt(client)
    if wait > 0:
        seconds = int(wait) + 1
        return _login_page(
            next_path, f"Too many wrong passwords. Try again in {seconds} s.", 429, **{"Retry-After": str(seconds)}
        )
    # Digests of equal length: the comparison's time says nothing about the password, its length included.
    sent = hashlib.sha256(request.form.get("password", "").encode()).digest()
    expected = hashlib.sha256(settings.password.get_secret_value().encode()).digest()
    if not hmac.compare_digest(sent, expected):
        log.warning("wrong password from %s", client)
        return _login_page(next_path, "Wrong password.", 403)
    _throttle().succeeded(client)
    # A fresh session on login: nothing set before it (the CSRF token included) carries over.
    session.clear()
    session.permanent = True
    session[_SESSION_KEY] = _fingerprint(settings)
    session[_SESSION_ID] = _logins().issue()
    return redirect(next_path or url_for("recognize.home"), 303)


@bp.post("/logout")
def logout():
    """Ends the login here, not only in this browser: its id is forgotten, so a saved copy of the cookie is refused."""
    _logins().revoke(session.get(_SESSION_ID))
    session.clear()
    return redirect(url_for("recognize.home"), 303)

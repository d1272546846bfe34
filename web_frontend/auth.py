"""The site's optional login: with ``WEB_PASSWORD`` set, Enroll and Delete need a logged-in session.

The site calls the API with its own key, so without a login anyone who can reach the site can
enroll and delete through it. One shared password (not accounts) is enough for a self-hosted
site; it is checked in constant time, and repeated wrong guesses from one address are refused
for a while (:class:`LoginThrottle`). The login lives in Flask's signed session cookie (HttpOnly,
SameSite=Lax) as a fingerprint of the password keyed by the secret key, so changing
``WEB_PASSWORD`` logs everyone out, and the cookie reveals nothing about the password.
"""

from __future__ import annotations

import functools
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

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

_SESSION_KEY = "_login"
# Wrong passwords allowed per client address per window before it must wait: enough for typos,
# far too few for guessing (5 per 5 minutes is 1,440 guesses a day).
MAX_FAILURES = 5
FAILURE_WINDOW_S = 300.0
# Addresses remembered at most; an attacker rotating addresses cannot grow the table past this.
MAX_TRACKED_CLIENTS = 4096
# A login ends after this long without a visit: the signed cookie's age is checked on every request
# and renewed on each answer (Flask's SESSION_REFRESH_EACH_REQUEST for a permanent session).
LOGIN_LIFETIME = timedelta(hours=12)


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


def login_enabled() -> bool:
    return _settings().password is not None


def logged_in() -> bool:
    """True when no password is set, or this session logged in with the current one."""
    settings = _settings()
    if settings.password is None:
        return True
    held = session.get(_SESSION_KEY)
    return isinstance(held, str) and hmac.compare_digest(held, _fingerprint(settings))


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


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send a visitor who is not logged in to the login page, then back (to the form, after a POST)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if logged_in():
            return view(*args, **kwargs)
        target = request.full_path.rstrip("?") if request.method == "GET" else request.path
        # 303: after a refused POST the browser follows with a GET.
        return redirect(
            url_for("auth.login") + "?" + urlencode({"next": target}), 302 if request.method == "GET" else 303
        )

    return wrapper


def _login_page(next_path: str | None, error: str | None = None, status: int = 200, **headers: str):
    return render_template("login.html", next=next_path or "", error=error), status, headers


def init_auth(app: Flask, settings: WebSettings) -> None:
    """What the login adds to every request and page: the templates' login state and the throttle."""
    throttle = LoginThrottle()
    app.extensions["login_throttle"] = throttle
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
    return redirect(next_path or url_for("recognize.home"), 303)


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("recognize.home"), 303)

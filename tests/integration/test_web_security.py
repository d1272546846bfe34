"""The site's security headers and its optional login, against the fake API of support/site_fakes.

Every route the app has is requested (``url_map`` is walked, so a route added later is covered
too), with and without ``WEB_PASSWORD``, plus the error pages, a redirect and the static file.
The real browser's view of the same policy (no CSP violation, no framing) is in
``test_e2e_browser.py``.
"""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import url_for
from pydantic import SecretStr

from web_frontend.__main__ import _loopback
from web_frontend.auth import OPEN_ENDPOINTS, LoginThrottle
from web_frontend.config import WebSettings

from support.site_fakes import FACES, RUNNING_JOB, FakeApi, enroll, recognize, site_app, synthetic_photo, token

PASSWORD = "correct horse battery staple"


@pytest.fixture()
def fake() -> FakeApi:
    return FakeApi()


def _csp(response) -> dict[str, str]:
    policy = response.headers.get("Content-Security-Policy", "")
    return {
        d.split(" ", 1)[0]: d.split(" ", 1)[1] if " " in d else "" for d in (p.strip() for p in policy.split(";")) if d
    }


def assert_security_headers(response, what: str) -> None:
    csp = _csp(response)
    assert csp.get("frame-ancestors") == "'none'", (what, response.headers)
    assert csp.get("default-src") == "'self'", what
    assert csp.get("script-src") == "'self'", what  # the site's own script files only: nothing inline
    assert csp.get("img-src") == "'self' data:", what  # the drawn result is a data: image
    assert (csp.get("object-src"), csp.get("base-uri"), csp.get("form-action")) == ("'none'", "'none'", "'self'"), what
    assert response.headers.get("X-Frame-Options") == "DENY", what
    assert response.headers.get("X-Content-Type-Options") == "nosniff", what
    assert response.headers.get("Referrer-Policy") == "same-origin", what


ENDPOINTS = {
    "recognize.home",
    "recognize.recognize",
    "gallery.enroll_form",
    "gallery.enroll",
    "gallery.index",
    "gallery.confirm_delete",
    "gallery.delete",
    "health",
    "static",
    "auth.login",
    "auth.login_submit",
    "auth.logout",
    "people.person",
    "people.delete_face",
    "videos.index",
    "videos.page",
    "videos.annotated",
    "videos.track_face",
    "videos.timeline",
    "videos.enroll_track",
}


@pytest.mark.parametrize("password", [None, PASSWORD], ids=["no-login", "login"])
def test_every_response_has_the_security_headers(fake, password):
    fake.gallery["obama"] = 1
    fake.faces = FACES
    app = site_app(fake, password=password)
    client = app.test_client()
    csrf = token(client)
    seen = set()
    for rule in app.url_map.iter_rules():
        seen.add(rule.endpoint)
        with app.test_request_context():
            samples = {"filename": "style.css", "job_id": "0" * 32, "track_id": 1, "number": 0, "event_id": 1}
            path = url_for(rule.endpoint, **{arg: samples[arg] for arg in rule.arguments})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method == "GET":
                response = client.get(path)
            else:
                form = {"csrf_token": csrf, "name": "obama", "password": "wrong"}
                if rule.endpoint == "recognize.recognize":
                    form["image"] = (io.BytesIO(synthetic_photo()), "a.jpg")
                response = client.post(path, data=form, content_type="multipart/form-data")
            assert_security_headers(response, f"{method} {path} -> {response.status_code}")
            # a POST without the token: the CSRF refusal (400) is an error page with headers too
            if method == "POST":
                refused = client.post(path, data={"name": "obama"})
                assert refused.status_code == 400
                assert_security_headers(refused, f"{method} {path} without a token")
    assert ENDPOINTS <= seen, seen

    extra = {
        "404": client.get("/no-such-page"),
        "405": client.delete("/"),
        "redirect": client.get("/gallery/delete"),
        "HEAD static": client.head("/static/style.css"),
        "413": client.post(
            "/recognize",
            data={"csrf_token": csrf, "image": (io.BytesIO(b"\xff" * 11 * 2**20), "a.jpg")},
            content_type="multipart/form-data",
        ),
    }
    assert [r.status_code for r in extra.values()] == [404, 405, 302, 200, 413]
    for what, response in extra.items():
        assert_security_headers(response, what)
    # the site's own 500 (something unexpected in a view) carries them as well
    fake.raise_exc = RuntimeError("unexpected")
    broken = recognize(client)
    assert broken.status_code == 500 and "Something went wrong" in broken.get_data(as_text=True)
    assert_security_headers(broken, "500")


def assert_no_inline_script(page: str) -> None:
    """Every <script> of a page is a file of the site's /static with an empty body (the CSP,
    ``script-src 'self'``, would refuse an inline one; a page must not depend on one)."""
    opened = len(re.findall(r"<script\b", page, re.IGNORECASE))
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script\s*>", page, re.IGNORECASE | re.DOTALL)
    assert len(scripts) == opened, page
    for attributes, body in scripts:
        assert re.fullmatch(r'\s+src="/static/[\w.-]+\.js"(\s+defer)?', attributes), attributes
        assert body.strip() == "", body


def test_the_pages_fit_the_policy(fake):
    """What the policy forbids, the pages do not use: no inline script, no inline style, only local or data: images."""
    fake.gallery["obama"] = 1
    fake.faces = FACES
    fake.videos[RUNNING_JOB["id"]] = RUNNING_JOB
    client = site_app(fake, password=PASSWORD).test_client()
    pages = [client.get(p).get_data(as_text=True) for p in ("/", "/gallery", "/login", "/nope")]
    pages.append(recognize(client).get_data(as_text=True))
    client.post("/login", data={"csrf_token": token(client, "/login"), "password": PASSWORD})
    pages += [client.get(p).get_data(as_text=True) for p in ("/enroll", "/gallery/delete?name=obama")]
    fake.gallery["biden"] = 2
    fake.pairs = [{"a": "obama", "b": "biden", "similarity": 0.95}]
    fake.flagged[("biden", f"{1:032x}")] = 0.5
    curation = ("/gallery/person?name=biden", "/gallery/person/merge?name=obama", "/gallery/report")
    pages += [
        client.get(p).get_data(as_text=True)
        for p in (*curation, f"/gallery/person/face/move?name=biden&face_id={1:032x}")
    ]
    assert all('name="csrf_token"' in page for page in pages[-4:])
    assert 'src="data:image/jpeg;base64,' in pages[4]  # the result page's drawn photo
    pages.append(client.get(f"/videos/{RUNNING_JOB['id']}").get_data(as_text=True))
    assert "<script" in pages[-1]  # a running job's page has its progress script, as a file
    for page in pages:
        assert_no_inline_script(page)
        assert "<style" not in page and " style=" not in page
        assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers
        for attr, url in re.findall(r'\s(src|href|action)="([^"]*)"', page):
            assert (
                url.startswith("/") and not url.startswith("//") or (attr == "src" and url.startswith("data:image/"))
            ), url


# --- login ----------------------------------------------------------------------------------------
@pytest.fixture()
def locked(fake):
    """A site with WEB_PASSWORD set (and the API key it forwards)."""
    return site_app(fake, api_key="sekret", password=PASSWORD)


def login(client, password: str = PASSWORD, next_path: str = "", **kwargs):
    form = {"csrf_token": token(client, "/login"), "password": password, "next": next_path}
    return client.post("/login", data=form, **kwargs)


def enroll_without_the_page(client, name: str):
    """POST the Enroll form with a valid CSRF token taken from the (open) home page."""
    form = {
        "csrf_token": token(client),
        "name": name,
        "consent": "yes",
        "photos": [(io.BytesIO(synthetic_photo()), "p.jpg")],
    }
    return client.post("/enroll", data=form, content_type="multipart/form-data")


def test_without_a_password_the_site_is_open_as_before(fake):
    client = site_app(fake, api_key="sekret").test_client()
    page = client.get("/enroll")
    assert page.status_code == 200 and "Log in" not in page.get_data(as_text=True)
    assert enroll(client, "obama").status_code == 200 and fake.gallery == {"obama": 1}
    assert client.get("/gallery/delete?name=obama").status_code == 200
    assert client.get("/login?next=/gallery").headers["Location"] == "/gallery"


JOB = "b" * 32
# Every page or file of the site that shows a person or a video (README: "With WEB_PASSWORD set").
CLOSED_GETS = [
    "/enroll",
    "/gallery",
    "/gallery/person?name=obama",
    "/gallery/delete?name=obama",
    "/gallery/person/merge?name=obama",
    f"/gallery/person/face/move?name=obama&face_id={0:032x}",
    "/gallery/report",
    "/videos",
    f"/videos/{JOB}",
    f"/videos/{JOB}/status",
    f"/videos/{JOB}/annotated.mp4",
    f"/videos/{JOB}/timeline.png",
    f"/videos/{JOB}/tracks/1/faces/0.jpg",
]


def test_every_page_showing_a_person_or_a_video_needs_the_login(locked, fake):
    fake.gallery["obama"] = 2
    fake.pairs = []  # the API makes a gallery report
    fake.videos[JOB] = {**RUNNING_JOB, "id": JOB}
    client = locked.test_client()
    for path in CLOSED_GETS:
        response = client.get(path)
        assert response.status_code == 302, path
        # the visitor is sent to the login page, which remembers where they were going
        assert parse_qs(urlsplit(response.headers["Location"]).query) == {"next": [path]}, path
    assert fake.calls == []  # nothing was fetched from the API for them
    # after logging in, the same pages answer (the fake API knows the job and the person)
    login(client)
    assert [client.get(p).status_code for p in CLOSED_GETS[:9]] == [200] * 9


def test_only_the_open_pages_answer_without_a_login(locked, fake):
    """Walks every route: anything not on the open list (a page added later too) redirects to the login."""
    fake.faces = FACES
    client = locked.test_client()
    csrf = token(client)
    for rule in locked.url_map.iter_rules():
        with locked.test_request_context():
            samples = {"filename": "style.css", "job_id": JOB, "track_id": 1, "number": 0, "event_id": 1}
            path = url_for(rule.endpoint, **{arg: samples[arg] for arg in rule.arguments})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            form = {"csrf_token": csrf, "name": "obama", "password": "wrong", "confirm": "yes", "consent": "yes"}
            if rule.endpoint == "recognize.recognize":
                form["image"] = (io.BytesIO(synthetic_photo()), "a.jpg")
            response = client.open(path, method=method, data=form if method == "POST" else None)
            redirected = response.status_code in (302, 303) and response.headers["Location"].startswith("/login?")
            assert redirected == (rule.endpoint not in OPEN_ENDPOINTS), (method, path, response.status_code)
    assert OPEN_ENDPOINTS >= {"recognize.home", "recognize.recognize", "auth.login", "health", "static"}
    # recognising stays open (README), and the result page links the login instead of naming forms
    page = recognize(client).get_data(as_text=True)
    assert "obama" in page, page
    assert "Name this face" not in page
    assert 'href="/login?next=' in page
    assert [urlsplit(r.url).path for r in fake.calls] == ["/recognize", "/recognize"]


def test_enroll_and_delete_need_a_login_when_a_password_is_set(locked, fake):
    fake.gallery["obama"] = 2
    client = locked.test_client()
    # the forms are refused even with a valid CSRF token, and nothing reaches the API
    response = enroll_without_the_page(client, "eve")
    assert response.status_code == 303 and response.headers["Location"] == "/login?next=%2Fenroll"
    csrf = token(client)
    response = client.post("/gallery/delete", data={"csrf_token": csrf, "name": "obama", "confirm": "yes"})
    assert response.status_code == 303 and response.headers["Location"].startswith("/login?next=")
    response = client.post(f"/videos/{JOB}/delete", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.headers["Location"].startswith("/login?next=")
    assert fake.calls == [] and fake.gallery == {"obama": 2}


def test_a_wrong_password_is_refused(locked, fake):
    client = locked.test_client()
    for wrong in ("", "correct horse battery stapl", PASSWORD + " ", PASSWORD.upper()):
        response = login(client, wrong, "/enroll")
        assert response.status_code == 403, wrong
        page = response.get_data(as_text=True)
        assert "Wrong password." in page and 'role="alert"' in page and PASSWORD not in page
    assert client.get("/enroll").status_code == 302
    assert enroll_without_the_page(client, "eve").status_code == 303 and fake.calls == []


def test_after_login_enroll_and_delete_work_and_logout_ends_it(locked, fake):
    client = locked.test_client()
    response = login(client, next_path="/enroll")
    assert response.status_code == 303 and response.headers["Location"] == "/enroll"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/enroll").get_data(as_text=True)
    assert "Log out" in page and 'href="/login"' not in page

    assert enroll(client, "obama", photos=2).status_code == 200
    assert fake.gallery == {"obama": 2} and fake.calls[-1].headers["X-API-Key"] == "sekret"
    csrf = token(client, "/gallery/delete?name=obama")
    done = client.post(
        "/gallery/delete", data={"csrf_token": csrf, "name": "obama", "confirm": "yes"}, follow_redirects=True
    )
    assert "Deleted obama" in done.get_data(as_text=True) and fake.gallery == {}

    assert client.post("/logout", data={"csrf_token": token(client)}).status_code == 303
    assert client.get("/enroll").status_code == 302
    assert enroll_without_the_page(client, "eve").status_code == 303 and fake.gallery == {}


def test_logout_needs_the_csrf_token(locked):
    client = locked.test_client()
    login(client)
    assert client.post("/logout").status_code == 400
    assert client.get("/enroll").status_code == 200


def test_the_session_holds_no_password_and_a_new_password_logs_everyone_out(locked, fake):
    client = locked.test_client()
    login(client)
    cookie = client.get_cookie("session").value
    held = locked.session_interface.get_signing_serializer(locked).loads(cookie)
    assert PASSWORD not in repr(held)
    # the same site and secret key, but the password changed: the old login no longer counts
    locked.extensions["web_settings"].password = SecretStr("another one")
    assert client.get("/enroll").status_code == 302
    locked.extensions["web_settings"].password = SecretStr(PASSWORD)
    assert client.get("/enroll").status_code == 200
    # a restarted site (same secret key and password) knows none of the logins it held before
    restarted = site_app(fake, api_key="sekret", password=PASSWORD).test_client()
    restarted.set_cookie("session", cookie)
    assert restarted.get("/enroll").status_code == 302


def test_a_cookie_saved_before_logout_is_refused_after_it(locked, fake):
    fake.gallery["obama"] = 1
    client = locked.test_client()
    login(client)
    saved = client.get_cookie("session").value
    assert client.get("/gallery").status_code == 200
    assert client.post("/logout", data={"csrf_token": token(client, "/gallery")}).status_code == 303
    # someone who copied the cookie replays it: the login ended on the site, not only in the browser
    replay = locked.test_client()
    replay.set_cookie("session", saved)
    for path in ("/enroll", "/gallery", "/gallery/person?name=obama", "/videos"):
        assert replay.get(path).status_code == 302, path
    csrf = token(replay)
    refused = replay.post("/gallery/delete", data={"csrf_token": csrf, "name": "obama", "confirm": "yes"})
    assert refused.status_code == 303 and fake.gallery == {"obama": 1}
    # another login of the same browser is unaffected by an earlier logout elsewhere
    other = locked.test_client()
    login(other)
    login(client)
    assert client.post("/logout", data={"csrf_token": token(client, "/gallery")}).status_code == 303
    assert other.get("/gallery").status_code == 200


def test_a_login_ends_after_twelve_idle_hours(locked, monkeypatch):
    import itsdangerous.timed

    client = locked.test_client()
    login(client)
    real = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() + 11 * 3600)
    assert client.get("/enroll").status_code == 200  # a visit renews it
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() + 22 * 3600)
    assert client.get("/enroll").status_code == 200
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() + 35 * 3600)
    assert client.get("/enroll").status_code == 302


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "evil.example",
        " /enroll",
    ],
)
def test_login_never_redirects_off_the_site(locked, target):
    client = locked.test_client()
    response = login(client, next_path=target)
    assert response.status_code == 303 and response.headers["Location"] == "/", target
    # nor does the login page of a session that is already logged in
    assert client.get("/login", query_string={"next": target}).headers["Location"] == "/"


def test_login_keeps_a_local_target(locked):
    client = locked.test_client()
    page = client.get("/login", query_string={"next": "/gallery/delete?name=Jean O'Neil"}).get_data(as_text=True)
    assert 'name="next" value="/gallery/delete?name=Jean O&#39;Neil"' in page
    response = login(client, next_path="/gallery/delete?name=Jean O'Neil")
    assert urlsplit(response.headers["Location"]).path == "/gallery/delete"
    assert client.get(response.headers["Location"]).status_code == 200


def test_repeated_wrong_passwords_are_throttled_per_address(locked):
    now = [1000.0]
    throttle = locked.extensions["login_throttle"]
    throttle.clock = lambda: now[0]
    client = locked.test_client()
    for _ in range(throttle.max_failures):
        assert login(client, "guess").status_code == 403
    # even the right password waits now: guessing cannot go on in parallel with it
    response = login(client)
    assert response.status_code == 429 and "Too many wrong passwords" in response.get_data(as_text=True)
    assert 0 < int(response.headers["Retry-After"]) <= throttle.window_s + 1
    assert client.get("/enroll").status_code == 302
    # another address is not affected
    other = locked.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert login(other).status_code == 303
    # after the window the right password works, and a success forgets the failures
    now[0] += throttle.window_s + 1
    assert login(client).status_code == 303 and client.get("/enroll").status_code == 200


def test_the_throttle_remembers_a_bounded_number_of_addresses():
    throttle = LoginThrottle(max_failures=2, window_s=60, max_clients=3, clock=lambda: 5.0)
    assert throttle.attempt("a") == 0 and throttle.attempt("a") == 0 and throttle.attempt("a") > 0
    for address in ("b", "c", "d"):  # three newer addresses push the oldest one out
        throttle.attempt(address)
    assert throttle.attempt("a") == 0


def test_password_setting_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("WEB_PASSWORD", "s3cret")
    settings = WebSettings()
    assert settings.password.get_secret_value() == "s3cret" and "s3cret" not in repr(settings)
    monkeypatch.setenv("WEB_PASSWORD", "  ")
    assert WebSettings().password is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.org", False),
    ],
)
def test_binding_beyond_loopback_is_recognised(host, loopback):
    assert _loopback(host) is loopback

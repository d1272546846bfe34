"""End to end in a real browser: the real API and the real site as subprocesses, headless Chromium.

Enroll two people through the Enroll page, recognise both in a group photo on the Home page,
delete one in the Gallery page. The result page is saved as test-artifacts/screenshot-result.png;
with UPDATE_SCREENSHOT=1 also as docs/screenshot-result.png, the one the README shows.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import threading
from pathlib import Path

import pytest
import requests

from support.browser import csp_messages, login_form
from support.live_servers import REPO, start_api, start_web

SCREENSHOT = REPO / "test-artifacts" / "screenshot-result.png"
DOCS_SCREENSHOT = REPO / "docs" / "screenshot-result.png"
KEY = "e2e-test-key"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    logs = tmp_path_factory.mktemp("e2e")
    api = start_api(logs, logs / "gallery.sqlite3", FACE_API_KEY=KEY)
    try:
        web = start_web(logs, api.url, FACE_API_KEY=KEY)
    except BaseException:
        api.stop()
        raise
    yield api, web
    web.stop()
    api.stop()


def enroll(page, site: str, name: str, photo: Path) -> str:
    page.goto(site + "/enroll")
    page.fill("#name", name)
    page.set_input_files("#photos", str(photo))
    page.check("#consent")
    with page.expect_navigation():
        page.click("main form button[type=submit]")  # not the nav's Log out button
    return page.inner_text("main")


def test_enroll_recognize_and_delete_in_a_browser(stack, browser, faces_dir):
    api, web = stack
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    for name in ("obama", "biden"):
        text = enroll(page, web.url, name, faces_dir / "gallery" / name / "1.jpg")
        assert f"Added 1 face to {name} (1 in total)" in text, text

    page.goto(web.url + "/")
    page.set_input_files("#image", str(faces_dir / "multi/obama_biden_1.jpg"))
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert page.url == web.url + "/recognize"
    known = page.locator("table.faces td.known").all_inner_texts()
    assert sorted(known) == ["biden", "obama"], page.inner_text("main")
    image = page.locator("img#annotated")
    natural = image.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert natural[0] and natural[1] > 0 and natural[2] > 0
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        page.screenshot(path=str(DOCS_SCREENSHOT), full_page=True)

    # readable on a phone: nothing wider than the screen (wide tables scroll inside their box)
    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    phone.set_content(page.content(), wait_until="load")
    phone.add_style_tag(url=web.url + "/static/style.css")
    widths = phone.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    assert phone.locator("img#annotated").evaluate("img => img.getBoundingClientRect().width") <= 390
    phone.close()

    # delete obama with the confirmation step
    page.goto(web.url + "/gallery")
    assert sorted(page.locator("table.gallery td.name").all_inner_texts()) == ["biden", "obama"]
    page.locator("tr", has=page.locator("td.name", has_text=re.compile("^obama$"))).get_by_role(
        "link", name="Delete…"
    ).click()
    page.wait_for_url(re.compile(r"/gallery/delete\?name=obama$"))
    page.check("#confirm")
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert "Deleted obama and all of their faces." in page.inner_text("main")
    assert page.locator("table.gallery td.name").all_inner_texts() == ["biden"]
    names = [i["name"] for i in requests.get(api.url + "/identities", timeout=30).json()["identities"]]
    assert names == ["biden"]

    # an upload over the site's limit (the API's too) ends on a readable page in the browser
    page.goto(web.url + "/")
    page.set_input_files("#image", {"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": b"\xff" * (11 * 2**20)})
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert "The upload is larger than the 10 MB limit." in page.inner_text("main")
    page.close()


# --- the security headers as the browser applies them, and the optional login ---------------------
PASSWORD = "e2e-site-password"


@pytest.fixture(scope="module")
def locked_site(stack, tmp_path_factory):
    """A second site on the same API with WEB_PASSWORD set."""
    api, _ = stack
    web = start_web(tmp_path_factory.mktemp("e2e-login"), api.url, FACE_API_KEY=KEY, WEB_PASSWORD=PASSWORD)
    yield web
    web.stop()


def test_every_page_loads_without_a_policy_violation(stack, locked_site, browser, faces_dir):
    _, web = stack
    page = browser.new_page()
    blocked = csp_messages(page)
    for url in (
        web.url + "/",
        web.url + "/enroll",
        web.url + "/gallery",
        web.url + "/gallery/delete?name=someone",
        web.url + "/no-such-page",
        web.url + "/static/style.css",
        locked_site.url + "/login",
    ):
        response = page.goto(url)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], url
        assert response.headers["x-frame-options"] == "DENY" and response.headers["x-content-type-options"] == "nosniff"
    # the stylesheet applied under the policy: the header is laid out as a flex row
    page.goto(web.url + "/")
    assert page.locator("header.site").evaluate("el => getComputedStyle(el).display") == "flex"
    # the result page's drawn photo is a data: image, which the policy allows
    page.set_input_files("#image", str(faces_dir / "multi/obama_biden_1.jpg"))
    with page.expect_navigation():
        page.click("form button[type=submit]")
    natural = page.locator("img#annotated").evaluate("img => [img.complete, img.naturalWidth]")
    assert natural[0] and natural[1] > 0
    assert blocked == [], blocked
    page.close()


@contextlib.contextmanager
def other_origin(html: str):
    """A page on another origin (another loopback port): what an attacker's site would serve.

    A real server, not a routed URL: Chromium refuses a routed or public page's frame of a
    loopback site for reasons of its own, and then the test would pass without our headers.
    """
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_another_site_cannot_frame_the_delete_page(stack, browser):
    _, web = stack
    page = browser.new_page()
    blocked = csp_messages(page)
    target = web.url + "/gallery/delete?name=biden"
    with other_origin(f'<!doctype html><iframe id="f" src="{target}"></iframe>') as attacker:
        with page.expect_event("requestfailed", lambda r: r.url == target, timeout=10_000) as failed:
            page.goto(attacker)
    assert failed.value.failure == "net::ERR_BLOCKED_BY_RESPONSE"
    assert page.frame_locator("#f").locator("button.danger").count() == 0
    assert any("frame-ancestors 'none'" in m for m in blocked), blocked
    page.close()


def test_login_guards_enroll_and_delete_in_a_browser(stack, locked_site, browser, faces_dir):
    api, _ = stack
    site = locked_site.url
    page = browser.new_page()
    blocked = csp_messages(page)

    page.goto(site + "/enroll")
    assert page.url == site + "/login?next=%2Fenroll"
    login_form(page, "not the password")
    assert "Wrong password." in page.inner_text("main") and "/login" in page.url
    login_form(page, PASSWORD)
    assert page.url == site + "/enroll"

    text = enroll(page, site, "kit_harington", faces_dir / "gallery" / "kit_harington" / "1.jpg")
    assert "Added 1 face to kit_harington" in text, text
    page.goto(site + "/gallery/delete?name=kit_harington")
    page.check("#confirm")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert "Deleted kit_harington and all of their faces." in page.inner_text("main")
    names = [i["name"] for i in requests.get(api.url + "/identities", timeout=30).json()["identities"]]
    assert "kit_harington" not in names

    with page.expect_navigation():
        page.click("nav form.logout button")
    page.goto(site + "/gallery/delete?name=biden")
    assert page.url.startswith(site + "/login?next=")
    assert blocked == [], blocked
    page.close()

"""End to end in a real browser: the faces' thumbnails on the Gallery and person pages.

The real API (write and read keys) and the real site (with a login) as subprocesses, headless
Chromium, real faces enrolled through ``face_client``. The pictures load through the site (the page
holds no key), they are small, and nothing broke the content security policy.
"""

from __future__ import annotations

import pytest

from face_client import FaceClient, Upload

from support.browser import csp_messages, login_form
from support.live_servers import start_api, start_web

WRITE, READ, PASSWORD = "e2e-thumb-write", "e2e-thumb-read", "e2e-thumbnails-password"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    logs = tmp_path_factory.mktemp("e2e-thumbnails")
    api = start_api(logs, logs / "gallery.sqlite3", FACE_API_KEY=WRITE, FACE_READ_API_KEY=READ)
    try:
        web = start_web(logs, api.url, FACE_API_KEY=WRITE, FACE_READ_API_KEY=READ, WEB_PASSWORD=PASSWORD)
    except BaseException:
        api.stop()
        raise
    yield api, web, FaceClient(api.url, WRITE, timeout=60, read_api_key=READ)
    web.stop()
    api.stop()


def loaded_sizes(page) -> list[list[int]]:
    """(natural width, natural height) of every thumbnail once it loaded (0, 0 when it failed)."""
    # polled from here: the site's policy forbids the string evaluation wait_for_function uses
    for _ in range(100):
        if page.eval_on_selector_all("img.thumb", "imgs => imgs.every(i => i.complete)"):
            break
        page.wait_for_timeout(100)
    return page.eval_on_selector_all("img.thumb", "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")


def test_gallery_and_person_pages_show_the_enrolled_faces(stack, browser, faces_dir):
    _, web, api = stack
    files = [faces_dir / "gallery/obama/1.jpg", faces_dir / "gallery/obama/2.jpg"]
    api.enroll("Obama", [Upload(p.name, p.read_bytes(), "image/jpeg") for p in files], consent="e2e")
    biden = faces_dir / "gallery/biden/1.jpg"
    api.enroll("Biden", [Upload(biden.name, biden.read_bytes(), "image/jpeg")], consent="e2e")

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    blocked = csp_messages(page)
    page.goto(web.url + "/login")
    login_form(page, PASSWORD)
    page.goto(web.url + "/gallery")
    sizes = loaded_sizes(page)
    assert len(sizes) == 2 and all(0 < w <= 96 and 0 < h <= 96 for w, h in sizes), sizes
    assert WRITE not in page.content() and READ not in page.content()

    page.goto(web.url + "/gallery/person?name=Obama")
    sizes = loaded_sizes(page)
    assert len(sizes) == 2 and all(0 < w <= 96 and 0 < h <= 96 for w, h in sizes), sizes
    assert blocked == []

    # without the login the pictures are not served
    other = browser.new_page()
    answer = other.request.get(web.url + "/gallery/person/picture.jpg?name=Obama", max_redirects=0)
    assert answer.status != 200 or "image/jpeg" not in answer.headers.get("content-type", "")

"""End to end in a real browser: the real API and the real site as subprocesses, headless Chromium.

Enroll two people through the Enroll page, recognise both in a group photo on the Home page,
delete one in the Gallery page. The result page is saved as test-artifacts/screenshot-result.png;
with UPDATE_SCREENSHOT=1 also as docs/screenshot-result.png, the one the README shows.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import requests

from live_servers import REPO, start_api, start_web

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
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


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def enroll(page, site: str, name: str, photo: Path) -> str:
    page.goto(site + "/enroll")
    page.fill("#name", name)
    page.set_input_files("#photos", str(photo))
    page.check("#consent")
    with page.expect_navigation():
        page.click("form button[type=submit]")
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
    page.locator("tr", has=page.locator("td.name", has_text=re.compile("^obama$"))).get_by_role("link", name="Delete…").click()
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

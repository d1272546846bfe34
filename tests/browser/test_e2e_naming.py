"""End to end in a real browser: "Name this face" on the result page of a group photo.

The real API (with both a write key and a read key, so every call of the site must carry a key)
and the real site (with a login) as subprocesses, headless Chromium: one of the six strangers of
multi/six_faces.jpg is named on the result page, then a new upload of the photo names exactly
that face, and nothing the site sent broke its content security policy.
"""

from __future__ import annotations

import pytest
import requests

from inference_service.engine import iou

from support.browser import csp_messages, login_form
from support.live_servers import REPO, start_api, start_web

WRITE, READ, PASSWORD = "e2e-write-key", "e2e-read-key", "e2e-naming-password"
PHOTO = "multi/six_faces.jpg"
SCREENSHOT = REPO / "test-artifacts" / "screenshot-naming.png"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    logs = tmp_path_factory.mktemp("e2e-naming")
    api = start_api(logs, logs / "gallery.sqlite3", FACE_API_KEY=WRITE, FACE_READ_API_KEY=READ)
    try:
        web = start_web(logs, api.url, FACE_API_KEY=WRITE, FACE_READ_API_KEY=READ, WEB_PASSWORD=PASSWORD)
    except BaseException:
        api.stop()
        raise
    yield api, web
    web.stop()
    api.stop()


def recognize(page, site: str, photo) -> None:
    page.goto(site + "/")
    page.set_input_files("#image", str(photo))
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert page.url == site + "/recognize", page.inner_text("main")


def face_at(page, box):
    """The "Name this face" block of the face the page boxed nearest to ``box``."""
    blocks = page.locator("details.name-face")
    boxes = [[float(v) for v in b.split(",")] for b in blocks.evaluate_all("els => els.map(e => e.dataset.box)")]
    best = max(range(len(boxes)), key=lambda i: iou(boxes[i], box))
    assert iou(boxes[best], box) >= 0.5, (boxes, box)
    return blocks.nth(best)


def test_name_a_face_of_a_group_photo_then_it_is_recognised(stack, browser, faces_dir, manifest):
    api, web = stack
    row = next(r for r in manifest if r.path.as_posix().endswith(PHOTO))
    chosen = row.faces[2].box
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    blocked = csp_messages(page)

    page.goto(web.url + "/login")
    login_form(page, PASSWORD)
    recognize(page, web.url, row.path)
    assert page.locator("table.faces td.known").count() == 0  # six strangers
    assert page.locator("details.name-face").count() >= 6
    block = face_at(page, chosen)
    block.locator("summary").click()
    crop = block.locator("img.face-crop").evaluate("img => [img.complete, img.naturalWidth]")
    assert crop[0] and crop[1] > 0
    block.locator("input[name=name]").fill("Ada Example")
    block.locator("input[name=consent]").check()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    with page.expect_navigation():
        block.locator("button[type=submit]").click()
    text = page.inner_text("main")
    assert "Added this face to Ada Example (1 in total)" in text, text

    # The API stored the face at the chosen box of the crop; a new upload names exactly that face.
    recognize(page, web.url, row.path)
    assert page.locator("table.faces td.known").all_inner_texts() == ["Ada Example"], page.inner_text("main")
    assert face_at(page, chosen).locator("summary").inner_text().split(": ", 1)[1].startswith("Ada Example ")
    assert blocked == [], blocked

    listing = requests.get(api.url + "/identities", headers={"X-API-Key": READ}, timeout=30).json()
    assert [(i["name"], i["faces"]) for i in listing["identities"]] == [("Ada Example", 1)]
    assert "Name this face" in listing["identities"][0]["consent"]["text"]
    page.close()

"""End to end in a real browser: curating the gallery on the site (issue 20).

The real API (a write key and a read key) and the real site (with a login) as subprocesses,
headless Chromium, real faces of FACES_DIR enrolled through ``face_client``: "Barack" holds an
Obama photo and, by mistake, a Biden photo; "Obama 2" is a second enrollment of Obama. On the site:
rename Barack, merge "Obama 2" into him from the chooser, move the Biden face to "Joe Biden"; then a
new photo of Obama is recognised under the new name, and nothing broke the content security
policy. The second test marks a suggested pair "not the same person" on the Gallery report and
sees the suggestion gone; it needs the API's report (``GET /gallery/report``).
"""

from __future__ import annotations

import pytest

from face_client import FaceClient, Upload

from support.browser import csp_messages, login_form
from support.live_servers import REPO, start_api, start_web

WRITE, READ, PASSWORD = "e2e-write-key", "e2e-read-key", "e2e-curation-password"
SCREENSHOT = REPO / "test-artifacts" / "screenshot-curation.png"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    logs = tmp_path_factory.mktemp("e2e-curation")
    api = start_api(logs, logs / "gallery.sqlite3", FACE_API_KEY=WRITE, FACE_READ_API_KEY=READ)
    try:
        web = start_web(logs, api.url, FACE_API_KEY=WRITE, FACE_READ_API_KEY=READ, WEB_PASSWORD=PASSWORD)
    except BaseException:
        api.stop()
        raise
    yield api, web, FaceClient(api.url, WRITE, timeout=60, read_api_key=READ)
    web.stop()
    api.stop()


def photo(faces_dir, relative: str) -> Upload:
    path = faces_dir / relative
    return Upload(path.name, path.read_bytes(), "image/png" if path.suffix == ".png" else "image/jpeg")


def submit(page, form) -> None:
    with page.expect_navigation():
        form.locator("button[type=submit]").click()


def test_rename_merge_from_the_chooser_and_move_a_face(stack, browser, faces_dir):
    _, web, api = stack
    api.enroll("Barack", [photo(faces_dir, "gallery/obama/1.jpg")], consent="e2e")
    wrong = api.enroll("Barack", [photo(faces_dir, "gallery/biden/1.jpg")])["added"][0]["face_id"]
    api.enroll("Obama 2", [photo(faces_dir, "gallery/obama/2.jpg")], consent="e2e")
    api.enroll("Joe Biden", [photo(faces_dir, "gallery/biden/2.jpg")], consent="e2e")

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    blocked = csp_messages(page)
    page.goto(web.url + "/login")
    login_form(page, PASSWORD)

    # rename, on the person's page
    page.goto(web.url + "/gallery/person?name=Barack")
    rename = page.locator("form.rename")
    rename.locator("input[name=new_name]").fill("Barack Obama")
    submit(page, rename)
    assert "Renamed Barack to Barack Obama." in page.inner_text("main")
    # the Biden face does not agree with the Obama face
    row = page.locator("tr", has=page.locator(f"code:text-is('{wrong}')"))
    assert "may not be this person" in row.inner_text()

    # merge "Obama 2" into him, chosen in the chooser (the most similar first when the API reports)
    page.goto(web.url + "/gallery/person?name=Obama 2")
    with page.expect_navigation():
        page.get_by_role("link", name="Merge Obama 2 into another person…").click()
    choices = page.locator("input[name=into]").evaluate_all("els => els.map(e => e.value)")
    assert sorted(choices) == ["Barack Obama", "Joe Biden"]
    assert choices[0] == "Barack Obama", choices  # the most similar first, from the API's report
    page.locator("input[name=into][value='Barack Obama']").check()
    page.check("#confirm")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    submit(page, page.locator("main form"))
    assert "Merged Obama 2 into Barack Obama: 1 face moved, 3 in all." in page.inner_text("main")

    # move the Biden face out of Barack Obama, to Joe Biden
    with page.expect_navigation():
        page.get_by_role("link", name=f"Move face {wrong}", exact=True).click()
    page.locator("input[name=to][value='Joe Biden']").check()
    submit(page, page.locator("main form"))
    assert f"Moved the face {wrong} of Barack Obama to Joe Biden (2 faces now)." in page.inner_text("main")
    assert page.locator(f"code:text-is('{wrong}')").count() == 0
    assert blocked == [], blocked
    page.close()

    assert sorted((i["name"], i["faces"]) for i in api.identities()) == [("Barack Obama", 2), ("Joe Biden", 2)]
    assert wrong in [f["face_id"] for f in api.identity("Joe Biden")["faces"]]
    probe = api.recognize(photo(faces_dir, "probes/obama_3.jpg"))
    assert [f["identity"] for f in probe["faces"]] == ["Barack Obama"]


def test_not_the_same_person_is_remembered_on_the_report(stack, browser, faces_dir):
    _, web, api = stack
    api.enroll("Rose", [photo(faces_dir, "gallery/rose_leslie/1.jpg")], consent="e2e")
    api.enroll("Rose L", [photo(faces_dir, "gallery/rose_leslie/2.jpg")], consent="e2e")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    blocked = csp_messages(page)
    page.goto(web.url + "/login")
    login_form(page, PASSWORD)
    page.goto(web.url + "/gallery/report")
    pair = page.locator("tr.pair", has=page.locator("a.name:text-is('Rose L')"))
    assert pair.count() == 1, page.inner_text("main")
    submit(page, pair.locator("form.distinct-pair"))
    notice = page.inner_text("main")
    assert "Noted: Rose and Rose L are not" in notice or "Noted: Rose L and Rose are not" in notice, notice
    assert page.locator("tr.pair", has=page.locator("a.name:text-is('Rose L')")).count() == 0
    page.reload()
    assert page.locator("tr.pair", has=page.locator("a.name:text-is('Rose L')")).count() == 0
    assert sorted((i["name"], i["faces"]) for i in api.identities() if i["name"].startswith("Rose")) == [
        ("Rose", 1),
        ("Rose L", 1),
    ]
    assert blocked == [], blocked
    page.close()

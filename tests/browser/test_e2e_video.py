"""The Video page and a person's page in a real browser: real API, real site, headless Chromium.

Miranda is enrolled from his gallery photo; the stage clip is uploaded on the Video page, the
status page shows progress (with JavaScript its bar moves in place: a marker set on ``window``
survives while the bar's value grows, and no CSP violation or script error is reported; without
JavaScript the page carries its refresh), and the finished page plays the annotated video
(its ``currentTime`` advances), draws the timeline and names him in the table. An unknown track
is then named from the page, and that new person's page removes one of their faces.
"""

from __future__ import annotations

import re
import statistics
import time

import pytest
import requests

from web_frontend.video_tracks import MIN_FACE_PX

from support.live_servers import start_api, start_web

KEY = "e2e-video-key"
MIRANDA = "lin_manuel_miranda"
JOB_TIMEOUT_S = 300.0
VIDEO_LIMIT_MB = 16  # above the site's 10 MB photo limit


@pytest.fixture(scope="module")
def stack(tmp_path_factory, faces_dir):
    logs = tmp_path_factory.mktemp("e2e-video")
    limit = {"FACE_MAX_VIDEO_MB": str(VIDEO_LIMIT_MB)}
    api = start_api(logs, logs / "gallery.sqlite3", FACE_API_KEY=KEY, FACE_THREADS="2", **limit)
    try:
        web = start_web(logs, api.url, FACE_API_KEY=KEY, **limit)
    except BaseException:
        api.stop()
        raise
    with open(faces_dir / "gallery" / MIRANDA / "1.png", "rb") as fh:
        r = requests.post(
            f"{api.url}/identities/{MIRANDA}/faces", files={"image": fh}, headers={"X-API-Key": KEY}, timeout=120
        )
    assert r.status_code == 201, r.text
    yield api, web
    web.stop()
    api.stop()


def job_status(page) -> str | None:
    try:
        return page.locator("p.job-status").get_attribute("data-status", timeout=2000)
    except Exception:  # the page is between two of its refreshes
        return None


def test_video_page_analyses_plays_and_names(stack, browser, faces_dir, tmp_path):
    api, web = stack
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: violations.append(f"script error: {e}"))

    # a file that is not a video, larger than the photo limit: it reaches the API, which refuses it
    garbage = tmp_path / "notes.mp4"
    garbage.write_bytes(b"this is not a video at all" * (12 * 2**20 // 26))
    page.goto(web.url + "/videos")
    page.set_input_files("#video", str(garbage))
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert "not a video file" in page.inner_text("main")
    # a video over FACE_MAX_VIDEO_MB: the site refuses it with the video limit in words
    huge = tmp_path / "huge.mp4"
    huge.write_bytes(b"\0" * (VIDEO_LIMIT_MB + 1) * 2**20)
    page.goto(web.url + "/videos")
    page.set_input_files("#video", str(huge))
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert f"The video is larger than the {VIDEO_LIMIT_MB} MB limit." in page.inner_text("main")

    page.goto(web.url + "/videos")
    page.set_input_files("#video", str(faces_dir / "video" / "stage_640x360.mp4"))
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert re.search(r"/videos/[0-9a-f]{32}$", page.url), page.url
    job_id = page.url.rsplit("/", 1)[1]
    assert job_status(page) in ("queued", "running")
    # with scripts, the <noscript> refresh is inert: the page must not reload while the bar moves
    assert page.locator("meta[http-equiv=refresh]").count() == 0
    page.evaluate("window.__sameDocument = true")  # a reload or navigation would drop it
    without_js = browser.new_context(java_script_enabled=False)
    plain = without_js.new_page()
    plain.goto(page.url)  # without JavaScript the same page refreshes itself
    assert plain.locator("meta[http-equiv=refresh]").count() == 1 and plain.locator("script").count() == 1
    without_js.close()
    progress_seen: set[str] = set()
    bar_in_place: list[float] = []  # the bar's values read while the marker was still there
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (status := job_status(page)) != "done":
        assert status != "failed", page.inner_text("main")
        assert time.monotonic() < deadline, f"job still {status}"
        try:
            same, value, text = page.evaluate(
                "() => [window.__sameDocument === true, document.getElementById('progress').value,"
                " document.getElementById('progress-text').textContent]"
            )
        except Exception:  # the script is loading the finished page
            same = False
        if same and status == "running":
            bar_in_place.append(value)
            progress_seen.add(text)
        page.wait_for_timeout(500)  # the script updates the page; no reload by the test
    assert any(re.search(r"frame \d+ of 275", text) for text in progress_seen), progress_seen
    assert len(set(bar_in_place)) >= 3 and bar_in_place == sorted(bar_in_place), bar_in_place
    assert page.evaluate("window.__sameDocument") is None  # the script loaded the finished page
    assert page.locator("meta[http-equiv=refresh]").count() == 0 and page.locator("script").count() == 0

    # the annotated video plays in the page
    video = page.locator("video#annotated")
    video.evaluate("v => v.play()")
    page.wait_for_function("() => document.querySelector('video#annotated').currentTime > 0.5", timeout=30_000)
    assert video.evaluate("v => v.error") is None
    timeline = page.locator("img#timeline")
    timeline.evaluate("img => img.decode()")
    assert timeline.evaluate("img => img.naturalWidth") > 0
    people = page.locator("table.people td.known").all_inner_texts()
    assert people == [MIRANDA], page.inner_text("main")

    # tracks are offered in time order, and none of them is a one-frame or tiny-face track
    offered = page.locator("form.track:not(.named)")
    starts = [float(re.search(r": ([\d.]+)–", t).group(1)) for t in offered.locator("p").all_inner_texts()]
    assert starts and starts == sorted(starts), starts
    # the API's own job: every unknown track too short or too small to name is listed apart, without a form
    job = requests.get(f"{api.url}/videos/{job_id}", timeout=30).json()
    min_faces = job["timeline"]["min_faces"]
    weak = {
        t["track_id"]
        for t in job["timeline"]["tracks"]
        if t["identity"] is None
        and job["track_faces"].get(str(t["track_id"]))
        and (t["faces"] < min_faces or statistics.median(b[3] - b[1] for b in t["boxes"]) < MIN_FACE_PX)
    }
    assert weak, job["timeline"]["tracks"]  # the stage clip has some: the pianist's small faces
    for track in weak:
        assert page.locator(f"form#track-{track}").count() == 0 and page.locator(f"li#track-{track}").count() == 1
    # name the unknown track with the most kept faces from the page
    counts = offered.evaluate_all("forms => forms.map(f => f.querySelectorAll('.faces-strip img').length)")
    form = offered.nth(counts.index(max(counts)))
    track_id = form.get_attribute("id").split("-")[1]
    form.locator("input[name=name]").fill("Stage Guest")
    form.locator("input[name=consent]").check()
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert re.search(rf"Added \d faces? of track {track_id} to Stage Guest", page.inner_text("main")), page.inner_text(
        "main"
    )
    faces = requests.get(f"{api.url}/identities/Stage%20Guest", timeout=30).json()["faces"]
    assert 1 <= len(faces) <= 5
    # the named track left the unknown ones at once and counts for its person, with an Undo
    assert page.locator(f"form#track-{track_id}").count() == 0
    assert "Stage Guest" in page.locator("table.people td.known").all_inner_texts()
    assert page.locator(f"form#named-{track_id} button").inner_text() == "Undo"

    # that person's page, from the Gallery, removes one face
    page.goto(web.url + "/gallery")
    page.get_by_role("link", name="Faces of Stage Guest", exact=True).click()
    page.wait_for_url(re.compile(r"/gallery/person\?name=Stage(\+|%20)Guest$"))
    shown = page.locator("table.person-faces td.face-id").all_inner_texts()
    assert sorted(shown) == sorted(f["face_id"] for f in faces)
    assert len(faces) > 1  # the longest unknown track keeps several faces
    with page.expect_navigation():  # removing a face asks first
        page.locator("table.person-faces tr", has_text=faces[0]["face_id"]).get_by_role(
            "link", name=f"Remove face {faces[0]['face_id']}"
        ).click()
    assert faces[0]["face_id"] in page.inner_text("main")
    page.check("#confirm")
    with page.expect_navigation():
        page.click("main form button.danger")
    assert "Removed one face of Stage Guest." in page.inner_text("main")
    left = [f["face_id"] for f in requests.get(f"{api.url}/identities/Stage%20Guest", timeout=30).json()["faces"]]
    assert faces[0]["face_id"] not in left and len(left) == len(faces) - 1
    assert sorted(page.locator("table.person-faces td.face-id").all_inner_texts()) == sorted(left)
    assert not violations, violations

    # deleting the video from its page removes the job
    page.goto(f"{web.url}/videos/{job_id}")
    with page.expect_navigation():
        page.click("form.actions button.danger")
    assert "Deleted the video" in page.inner_text("main")
    assert requests.get(f"{api.url}/videos/{job_id}", timeout=30).status_code == 404
    page.close()

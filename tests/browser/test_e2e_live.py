"""The Live page in a real browser: real API, real site, Chromium with a fake camera playing the
stage clip (``--use-file-for-fake-video-capture``, a y4m made from the clip by imageio-ffmpeg's
ffmpeg). Miranda is enrolled from his gallery photo; after a click on Start camera his name is
drawn over the video (green pixels of the "named" colour on the overlay) and listed under it, with
the API requiring a read key (the page connects with the site's ticket) and no CSP complaint.
Where the browser refuses the camera, the page says so.
"""

from __future__ import annotations

import subprocess

import pytest
import requests

from support.browser import csp_messages
from support.live_servers import CHROMIUM, CHROMIUM_ARGS, start_api, start_web

MIRANDA = "lin_manuel_miranda"
WRITE_KEY = "e2e-live-write"
READ_KEY = "e2e-live-read"


@pytest.fixture(scope="module")
def camera_file(faces_dir, tmp_path_factory):
    """2.8 s to 7.1 s of the stage clip (Miranda alone in close-up) as the y4m Chromium's fake
    camera loops."""
    import imageio_ffmpeg

    out = tmp_path_factory.mktemp("camera") / "stage.y4m"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-ss", "2.8", "-t", "4.3"]
    command += ["-i", str(faces_dir / "video" / "stage_640x360.mp4"), "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe"]
    subprocess.run([*command, str(out)], check=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def camera_browser(camera_file):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={camera_file}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, faces_dir):
    logs = tmp_path_factory.mktemp("e2e-live")
    keys = {"FACE_API_KEY": WRITE_KEY, "FACE_READ_API_KEY": READ_KEY}
    api = start_api(logs, logs / "gallery.sqlite3", FACE_THREADS="2", **keys)
    try:
        web = start_web(logs, api.url, **keys)
    except BaseException:
        api.stop()
        raise
    with open(faces_dir / "gallery" / MIRANDA / "1.png", "rb") as fh:
        r = requests.post(
            f"{api.url}/identities/{MIRANDA}/faces", files={"image": fh}, headers={"X-API-Key": WRITE_KEY}, timeout=120
        )
    assert r.status_code == 201, r.text
    yield api, web
    web.stop()
    api.stop()


def test_live_page_draws_the_enrolled_performers_name(stack, camera_browser):
    api, web = stack
    context = camera_browser.new_context(permissions=["camera"])
    page = context.new_page()
    violations = csp_messages(page)
    response = page.goto(web.url + "/live")
    # today's policy (scripts from the site only) plus a connection to the API's socket
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and f"connect-src 'self' ws://{api.url.split('//')[1]}" in policy
    page.click("#live-start")
    named = page.locator("#live-faces li.known", has_text=MIRANDA)
    named.first.wait_for(timeout=90_000)
    assert page.locator("#live-status").inner_text().startswith("Live:")
    # the name is drawn over the video: pixels of the "named" green on the overlay canvas
    green = page.evaluate(
        """() => {
          const c = document.getElementById('live-overlay');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 0; i < d.length; i += 4) {
            if (Math.abs(d[i] - 46) < 8 && Math.abs(d[i + 1] - 160) < 8 && Math.abs(d[i + 2] - 67) < 8) n++;
          }
          return [n, c.width, c.height];
        }"""
    )
    assert green[0] > 200 and green[1:] == [640, 360], green
    assert not violations, violations
    context.close()


def test_live_page_says_plainly_when_the_camera_is_refused(stack, camera_browser):
    _, web = stack
    context = camera_browser.new_context()  # no camera permission: the browser refuses
    page = context.new_page()
    page.goto(web.url + "/live")
    page.click("#live-start")
    status = page.locator("#live-status")
    status.wait_for(state="visible", timeout=20_000)
    page.wait_for_function(
        "() => document.getElementById('live-status').textContent.includes('refused')", timeout=20_000
    )
    assert "The browser refused the camera" in status.inner_text()
    assert page.locator("#live-start").is_enabled()  # another try is possible
    context.close()

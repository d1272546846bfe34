"""The real site over the real API: a face too dark to enroll is refused on the Enroll page with
the API's reason in plain words, and enrolled when "Enroll anyway" is ticked."""

from __future__ import annotations

import io
import re

import requests
from PIL import Image

from support.live_servers import start_api, start_web


def _darkened(path, factor: float = 0.25) -> bytes:
    """The photo at a quarter of its brightness: the same face, below the gate's grey level."""
    image = Image.open(path).convert("RGB").point(lambda v: int(v * factor))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return out.getvalue()


def test_a_dark_face_is_refused_on_the_enroll_page_and_enrolled_when_forced(tmp_path, faces_dir):
    dark = _darkened(faces_dir / "gallery/obama/1.jpg")
    api = start_api(tmp_path, tmp_path / "gallery.sqlite3")
    web = None
    try:
        web = start_web(tmp_path, api.url)
        with requests.Session() as browser:
            page = browser.get(web.url + "/enroll", timeout=30).text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            form = {"csrf_token": csrf, "name": "obama", "consent": "yes"}
            photo = {"photos": ("dark.jpg", dark, "image/jpeg")}
            refused = browser.post(web.url + "/enroll", data=form, files=photo, timeout=120)
            assert refused.status_code == 422, refused.text
            assert "the face is too dark (mean grey level" in refused.text
            assert "force=true" not in refused.text and 'name="force"' in refused.text
            assert requests.get(api.url + "/identities", timeout=10).json()["identities"] == []
            forced = browser.post(web.url + "/enroll", data={**form, "force": "yes"}, files=photo, timeout=120)
            assert forced.status_code == 200, forced.text
            assert "Added 1 face to <strong>obama</strong>" in forced.text
            identities = requests.get(api.url + "/identities", timeout=10).json()["identities"]
            assert [(i["name"], i["faces"]) for i in identities] == [("obama", 1)]
    finally:
        if web is not None:
            web.stop()
        api.stop()

"""The site against an API that runs with FACE_READ_API_KEY: every call carries a key it accepts.

First which key goes on which call (the fake API of support/site_fakes.py records the headers), then the
real API with both keys set and the real site: Recognize and Gallery work, with either key.
"""

from __future__ import annotations

import io
import re

import pytest
import requests

from face_client import FaceClient
from web_frontend.app import create_app
from web_frontend.config import WebSettings

from support.live_servers import start_api, start_web
from support.site_fakes import API, FACES, FakeApi, recognize, synthetic_photo, token

READ, WRITE = "read-key-for-tests", "write-key-for-tests"


def _site(fake: FakeApi, **keys: str):
    settings = WebSettings(api_url=API, secret_key="test", **keys)
    session = requests.Session()
    session.mount(API, fake)
    api = FaceClient(API, settings.api_key, timeout=5, session=session, read_api_key=settings.read_api_key)
    app = create_app(settings, api)
    app.testing = True
    return app.test_client()


def test_reads_carry_the_read_key_and_writes_the_write_key():
    fake = FakeApi()
    fake.faces = FACES
    client = _site(fake, api_key=WRITE, read_api_key=READ)
    assert recognize(client).status_code == 200
    assert fake.calls[-1].headers["X-API-Key"] == READ
    assert client.get("/gallery").status_code == 200
    assert fake.calls[-1].headers["X-API-Key"] == READ
    form = {
        "csrf_token": token(client, "/enroll"),
        "name": "ada",
        "consent": "yes",
        "photos": [(io.BytesIO(synthetic_photo()), "a.jpg")],
    }
    assert client.post("/enroll", data=form, content_type="multipart/form-data").status_code == 200
    assert fake.calls[-1].headers["X-API-Key"] == WRITE


def test_a_site_with_only_the_read_key_reads_with_it():
    fake = FakeApi()
    client = _site(fake, read_api_key=READ)
    assert client.get("/gallery").status_code == 200
    assert fake.calls[-1].headers["X-API-Key"] == READ


def test_the_read_key_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("FACE_READ_API_KEY", "from-env")
    assert WebSettings().read_api_key == "from-env"
    monkeypatch.setenv("FACE_READ_API_KEY", " ")
    assert WebSettings().read_api_key is None


@pytest.fixture(scope="module")
def locked_api(tmp_path_factory):
    logs = tmp_path_factory.mktemp("keys")
    api = start_api(logs, logs / "gallery.sqlite3", FACE_API_KEY=WRITE, FACE_READ_API_KEY=READ)
    yield api, logs
    api.stop()


@pytest.mark.parametrize(
    "site_keys",
    [{"FACE_API_KEY": WRITE, "FACE_READ_API_KEY": READ}, {"FACE_API_KEY": WRITE}, {"FACE_READ_API_KEY": READ}],
    ids=["both keys", "write key only", "read key only"],
)
def test_recognize_and_gallery_work_against_an_api_with_both_keys(locked_api, faces_dir, site_keys):
    api, logs = locked_api
    photo = faces_dir / "gallery/obama/1.jpg"
    # The API really is closed without a key, and "obama" is enrolled with the write key.
    assert requests.get(api.url + "/identities", timeout=10).status_code == 401
    r = requests.post(
        api.url + "/identities/obama/faces",
        files={"image": (photo.name, photo.read_bytes())},
        headers={"X-API-Key": WRITE},
        timeout=120,
    )
    assert r.status_code == 201, r.text
    web = start_web(logs, api.url, **site_keys)
    try:
        with requests.Session() as browser:
            page = browser.get(web.url + "/").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            probe = faces_dir / "probes/obama_3.jpg"
            result = browser.post(
                web.url + "/recognize",
                data={"csrf_token": csrf},
                files={"image": (probe.name, probe.read_bytes(), "image/jpeg")},
                timeout=120,
            )
            assert result.status_code == 200, result.text
            assert '<td class="known">obama</td>' in result.text
            gallery = browser.get(web.url + "/gallery", timeout=30)
            assert gallery.status_code == 200 and "obama" in gallery.text
    finally:
        web.stop()

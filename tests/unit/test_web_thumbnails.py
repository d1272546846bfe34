"""Face thumbnails on the site's Gallery and person pages, with the inference API faked."""

from __future__ import annotations

import re

import pytest

from support.site_fakes import FakeApi, site_app, synthetic_photo

FIRST, SECOND = f"{0:032x}", f"{1:032x}"


@pytest.fixture()
def fake() -> FakeApi:
    api = FakeApi()
    api.gallery = {"Ada": 2, "Bob": 1}
    api.thumbnails = {("Ada", SECOND): synthetic_photo(96, 96), ("Bob", FIRST): synthetic_photo(80, 96)}
    return api


def _sent_keys(fake: FakeApi, fragment: str) -> set[str | None]:
    return {c.headers.get("X-API-Key") for c in fake.calls if fragment in c.url}


def test_person_page_shows_each_face_through_the_site_with_the_sites_key(fake):
    client = site_app(fake, api_key="sekret").test_client()
    page = client.get("/gallery/person?name=Ada").get_data(as_text=True)
    sources = re.findall(r'<img class="thumb" src="([^"]+)"', page)
    assert sources == [f"/gallery/person/face.jpg?name=Ada&amp;face_id={f}" for f in (FIRST, SECOND)]
    assert "sekret" not in page
    got = client.get(f"/gallery/person/face.jpg?name=Ada&face_id={SECOND}")
    assert got.status_code == 200 and got.mimetype == "image/jpeg"
    assert got.data == fake.thumbnails["Ada", SECOND]
    assert "private" in got.headers["Cache-Control"]
    assert _sent_keys(fake, "/thumbnail") == {"sekret"}
    # a face enrolled before thumbnails were kept has none
    assert client.get(f"/gallery/person/face.jpg?name=Ada&face_id={FIRST}").status_code == 404


def test_gallery_shows_one_picture_per_person_the_first_face_that_has_one(fake):
    client = site_app(fake).test_client()
    page = client.get("/gallery").get_data(as_text=True)
    assert re.findall(r'<img class="thumb" src="([^"]+)"', page) == [
        "/gallery/person/picture.jpg?name=Ada",
        "/gallery/person/picture.jpg?name=Bob",
    ]
    assert client.get("/gallery/person/picture.jpg?name=Ada").data == fake.thumbnails["Ada", SECOND]
    assert client.get("/gallery/person/picture.jpg?name=Bob").data == fake.thumbnails["Bob", FIRST]
    assert client.get("/gallery/person/picture.jpg?name=Nobody").status_code == 404
    fake.thumbnails.clear()
    assert client.get("/gallery/person/picture.jpg?name=Ada").status_code == 404


def test_pictures_need_the_login_like_the_pages(fake):
    client = site_app(fake, password="correct horse").test_client()
    for url in ("/gallery/person/picture.jpg?name=Ada", f"/gallery/person/face.jpg?name=Ada&face_id={SECOND}"):
        got = client.get(url)
        assert got.status_code in (302, 401, 403) and got.data != fake.thumbnails["Ada", SECOND]
    assert not [c for c in fake.calls if "/thumbnail" in c.url]


def test_an_api_failure_is_a_502_not_a_picture(fake):
    client = site_app(fake).test_client()
    fake.fail = (500, "boom", {})
    assert client.get(f"/gallery/person/face.jpg?name=Ada&face_id={SECOND}").status_code == 502

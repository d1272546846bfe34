"""The Flask site with the inference API replaced by an in-process fake (unit tests only).

The fake sits behind a ``requests`` transport adapter, so the site's real client code, headers,
URL quoting and error mapping all run; only the HTTP server at the other end is pretend. The real
API is exercised in ``test_wiring.py`` and ``test_e2e_browser.py``.
"""

from __future__ import annotations

import base64
import io
import os
import re
import socket
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

from face_client import ApiError, FaceClient, Upload
from web_frontend.app import create_app
from web_frontend.config import WebSettings
from web_frontend.drawing import KNOWN_COLOUR, UNKNOWN_COLOUR, annotate

from support.site_fakes import (
    API,
    FACES,
    RUNNING_JOB,
    FakeApi,
    enroll,
    multipart_parts,
    recognize,
    site_app,
    synthetic_photo,
    token,
)


@pytest.fixture()
def fake() -> FakeApi:
    return FakeApi()


@pytest.fixture()
def client(fake: FakeApi):
    return site_app(fake, api_key="sekret").test_client()


# --- pages ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/enroll", "/gallery"])
def test_every_page_renders_for_a_phone(client, path):
    response = client.get(path)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "<script" not in page  # works without JavaScript: these pages have none
    assert 'href="/static/style.css"' in page
    assert client.get("/static/style.css").status_code == 200


def test_health_is_the_sites_own():
    # No API at all: the site's liveness does not depend on it.
    app = create_app(WebSettings(api_url="http://127.0.0.1:9", secret_key="x"))
    assert app.test_client().get("/health").get_json() == {"status": "ok"}


def test_recognize_draws_boxes_and_lists_faces(client, fake):
    fake.faces = FACES
    response = recognize(client)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "2 faces found in <strong>photo.jpg</strong>" in page
    # table: label, similarity, candidates (escaped), detection score
    assert '<td class="known">obama</td>' in page and "0.953" in page and "0.999" in page
    assert '<td class="unknown">unknown</td>' in page
    assert "&lt;b&gt;eve&lt;/b&gt;" in page and "<b>eve</b>" not in page
    # the drawn image, inline: the boxes' edges are in the two colours
    src = re.search(r'<img id="annotated" src="data:image/jpeg;base64,([^"]+)"', page).group(1)
    drawn = Image.open(io.BytesIO(base64.b64decode(src))).convert("RGB")
    assert drawn.size == (640, 360)
    assert _close(drawn.getpixel((101, 150)), KNOWN_COLOUR) and _close(drawn.getpixel((519, 150)), UNKNOWN_COLOUR)
    # what went to the API: the photo's bytes in field "image", with the site's only key (the API
    # accepts the write key for reads when it runs with FACE_READ_API_KEY)
    sent = multipart_parts(fake.calls[-1])
    assert (
        sent[0].get_param("name", header="content-disposition") == "image"
        and sent[0].get_content() == synthetic_photo()
    )
    assert fake.calls[-1].headers["X-API-Key"] == "sekret"


def _close(pixel, colour, tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel, colour))


def test_recognize_with_no_face_says_so(client, fake):
    fake.faces = []
    page = recognize(client).get_data(as_text=True)
    assert "No face found in <strong>photo.jpg</strong>" in page and 'id="annotated"' in page


def test_annotate_follows_exif_orientation_and_keeps_alpha():
    img = Image.new("RGB", (200, 100), "white")
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90: the API decodes it as 100 x 200, and boxes are in those pixels
    out = io.BytesIO()
    img.save(out, format="JPEG", exif=exif)
    drawn = annotate(out.getvalue(), [{"box": [10, 120, 90, 190], "identity": "a", "similarity": 0.99}])
    assert (drawn.width, drawn.height) == (100, 200) and drawn.mime == "image/jpeg"
    png = io.BytesIO()
    Image.new("RGBA", (50, 40), (0, 0, 0, 0)).save(png, format="PNG")
    assert annotate(png.getvalue(), []).mime == "image/png"


def test_large_photos_are_shown_scaled_with_their_boxes():
    drawn = annotate(
        synthetic_photo(3200, 1800),
        [{"box": [1000, 400, 1400, 800], "identity": None, "similarity": 0.1, "candidates": []}],
    )
    assert (drawn.width, drawn.height) == (1600, 900)
    img = Image.open(io.BytesIO(drawn.data)).convert("RGB")
    assert _close(img.getpixel((500, 300)), UNKNOWN_COLOUR)


# --- every API error becomes a readable message ------------------------------------------------
@pytest.mark.parametrize(
    ("status", "detail", "headers", "shown", "expect"),
    [
        (422, "no face found in image 1 (p0.jpg)", {}, 422, "Not accepted: no face found in image 1 (p0.jpg)"),
        (413, "upload larger than 10 MB", {}, 413, "The upload is too large: upload larger than 10 MB"),
        (415, "not an image in a supported format", {}, 415, "That file is not an image the service can read"),
        (400, "the image data is truncated", {}, 400, "The image could not be read: the image data is truncated"),
        (503, "queue full", {"Retry-After": "2"}, 503, "The face service is busy right now; please try again in 2 s"),
        (500, "boom", {}, 502, "The face service failed: boom"),
        (
            422,
            [{"loc": ["body", "image"], "msg": "Field required", "type": "missing"}],
            {},
            422,
            "image: Field required",
        ),
    ],
)
def test_api_errors_are_readable_on_every_form(client, fake, status, detail, headers, shown, expect):
    fake.fail = (status, detail, headers)
    for response in (recognize(client), enroll(client, "obama")):
        page = response.get_data(as_text=True)
        assert response.status_code == shown
        assert expect in page
        assert "Traceback" not in page and 'role="alert"' in page
    response = client.get("/gallery")
    assert response.status_code == shown and expect.split(":")[0] in response.get_data(as_text=True)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_api_down_is_a_readable_502():
    url = f"http://127.0.0.1:{_closed_port()}"
    client = create_app(WebSettings(api_url=url, secret_key="t")).test_client()
    for response in (client.get("/gallery"), recognize(client), enroll(client, "obama")):
        assert response.status_code == 502
        assert f"The face service at {url} is not reachable; is it running?" in response.get_data(as_text=True)


def test_api_timeout_is_a_readable_504(client, fake):
    fake.raise_exc = requests.ReadTimeout("slow")
    response = recognize(client)
    assert response.status_code == 504 and "did not answer within 5 s" in response.get_data(as_text=True)


def test_api_answer_that_is_not_json_is_an_api_error():
    fake = FakeApi()
    session = requests.Session()
    session.mount(API, fake)
    fake.send = lambda request, **kw: FakeApi._reply(request, 200, None)  # empty body
    with pytest.raises(ApiError, match="not JSON"):
        FaceClient(API, session=session).recognize(Upload("a.jpg", b"x"))


# --- CSRF ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/recognize", "/enroll", "/gallery/delete"])
def test_posts_without_the_sessions_csrf_token_are_refused(client, fake, path):
    fake.gallery["obama"] = 1
    form = {"name": "obama", "confirm": "yes", "consent": "yes", "image": (io.BytesIO(synthetic_photo()), "a.jpg")}
    assert client.post(path, data=form, content_type="multipart/form-data").status_code == 400
    real = token(client)
    wrong = client.post(
        path,
        data={**form, "csrf_token": real[:-2] + "xx", "image": (io.BytesIO(synthetic_photo()), "a.jpg")},
        content_type="multipart/form-data",
    )
    assert wrong.status_code == 400 and "Reload the page" in wrong.get_data(as_text=True)
    # another browser (no session cookie) with a token copied from this one is refused too
    other = site_app(fake).test_client()
    form_with_token = {**form, "csrf_token": real, "image": (io.BytesIO(synthetic_photo()), "a.jpg")}
    assert other.post(path, data=form_with_token, content_type="multipart/form-data").status_code == 400
    assert fake.calls == [] and fake.gallery == {"obama": 1}


# --- Enroll -------------------------------------------------------------------------------------
def test_enroll_adds_faces_and_forwards_the_key(client, fake):
    response = enroll(client, "Jean-Luc O'Neil", photos=2)
    assert response.status_code == 200
    assert "Added 2 faces to <strong>Jean-Luc O&#39;Neil</strong> (2 in total)" in response.get_data(as_text=True)
    call = fake.calls[-1]
    assert call.headers["X-API-Key"] == "sekret"
    assert urlsplit(call.url).path == "/identities/Jean-Luc%20O%27Neil/faces"
    assert fake.gallery == {"Jean-Luc O'Neil": 2}


def test_enroll_refused_by_the_quality_gate_offers_enroll_anyway(client, fake):
    fake.poor_face = "the face is too dark (mean grey level 20 of 255, at least 45 needed)"
    response = enroll(client, "obama")
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and fake.gallery == {}
    assert "the face is too dark (mean grey level 20 of 255" in page and 'value="obama"' in page
    assert 'name="force"' in page and "Enroll anyway" in page and "force=true" not in page
    sent = [p.get_param("name", header="content-disposition") for p in multipart_parts(fake.calls[-1])]
    assert "force" not in sent  # the override is never sent unless ticked
    response = enroll(client, "obama", force=True)
    assert response.status_code == 200 and "Added 1 face to <strong>obama</strong>" in response.get_data(as_text=True)
    assert fake.gallery == {"obama": 1}


def test_enroll_other_refusals_offer_no_override(client, fake):
    fake.fail = (422, "image: no face found", {})
    page = enroll(client, "obama").get_data(as_text=True)
    assert "no face found" in page and 'name="force"' not in page


def test_enroll_needs_consent_name_and_a_photo(client, fake):
    response = enroll(client, "obama", consent=False)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "agreed to be enrolled" in page and 'value="obama"' in page  # the form keeps what was typed
    assert enroll(client, "   ").status_code == 400
    assert enroll(client, "obama", photos=0).status_code == 400
    # names that cannot be a URL path segment never reach the API (it would refuse them with 422)
    for name in ("a/b", "..", "."):
        response = enroll(client, name)
        assert response.status_code == 400 and "Names may hold" in response.get_data(as_text=True)
    assert fake.calls == [] and fake.gallery == {}


def test_names_are_escaped_everywhere(client, fake):
    # the real API refuses such a name (422); the site must not rely on that
    evil, escaped = "<script>alert(1)", "&lt;script&gt;alert(1)"
    page = enroll(client, evil).get_data(as_text=True)
    assert escaped in page and evil not in page
    page = client.get("/gallery").get_data(as_text=True)
    assert escaped in page and evil not in page
    page = client.get("/gallery/delete", query_string={"name": evil}).get_data(as_text=True)
    assert escaped in page and evil not in page
    assert "/identities/%3Cscript%3Ealert%281%29/faces" in fake.calls[0].url
    fake.fail = (422, f"invalid name {evil!r}", {})
    page = enroll(client, evil).get_data(as_text=True)
    assert f"invalid name &#39;{escaped}&#39;" in page and evil not in page


# --- Gallery ------------------------------------------------------------------------------------
def test_gallery_lists_and_deletes_after_confirmation(client, fake):
    fake.gallery.update({"obama": 2, "biden": 1})
    page = client.get("/gallery").get_data(as_text=True)
    assert re.search(r'<td class="name">biden</td>\s*<td>1</td>', page)
    assert re.search(r'<td class="name">obama</td>\s*<td>2</td>', page)
    assert page.index(">biden<") < page.index(">obama<")
    assert 'href="/gallery/delete?name=obama"' in page

    confirm = client.get("/gallery/delete?name=obama").get_data(as_text=True)
    assert 'name="confirm"' in confirm and 'value="obama"' in confirm
    csrf = token(client, "/gallery/delete?name=obama")
    unticked = client.post("/gallery/delete", data={"csrf_token": csrf, "name": "obama"})
    assert unticked.status_code == 400 and fake.gallery["obama"] == 2

    done = client.post(
        "/gallery/delete", data={"csrf_token": csrf, "name": "obama", "confirm": "yes"}, follow_redirects=True
    )
    assert done.status_code == 200 and fake.calls[-2].method == "DELETE"
    assert fake.calls[-2].headers["X-API-Key"] == "sekret"
    page = done.get_data(as_text=True)
    assert "Deleted obama and all of their faces." in page and ">obama<" not in page and fake.gallery == {"biden": 1}

    again = client.post(
        "/gallery/delete", data={"csrf_token": csrf, "name": "obama", "confirm": "yes"}, follow_redirects=True
    )
    assert "obama is not in the gallery" in again.get_data(as_text=True)


def test_empty_gallery_invites_enrollment(client):
    assert "Nobody is enrolled yet" in client.get("/gallery").get_data(as_text=True)


# --- uploads: the site's limit, memory only ------------------------------------------------------
def test_upload_over_the_sites_limit_is_a_readable_413(fake):
    client = site_app(fake, max_upload_mb=0.05).test_client()
    response = recognize(client, data=b"\xff" * 120_000)
    assert response.status_code == 413
    assert "larger than the 0.05 MB limit" in response.get_data(as_text=True)
    assert fake.calls == []
    # just over the per-file limit but within the form's overhead allowance: the site's own check
    response = recognize(client, data=b"\xff" * (int(0.05 * 2**20) + 10))
    assert response.status_code == 400 and "larger than the 0.05 MB limit" in response.get_data(as_text=True)


def test_site_limit_follows_face_max_upload_mb(monkeypatch):
    monkeypatch.setenv("FACE_MAX_UPLOAD_MB", "3")
    monkeypatch.setenv("FACE_API_URL", "http://api:8000/")
    monkeypatch.setenv("FACE_API_KEY", "")
    monkeypatch.setenv("WEB_PORT", "5123")
    settings = WebSettings()
    assert (settings.max_upload_mb, settings.api_url, settings.api_key, settings.port) == (
        3,
        "http://api:8000",
        None,
        5123,
    )
    assert create_app(settings).config["MAX_CONTENT_LENGTH"] == 3 * 2**20 + 64 * 1024
    assert WebSettings().secret_key != WebSettings().secret_key  # random per process when unset


def test_uploads_are_not_written_to_disk(client, fake, monkeypatch):
    import tempfile

    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was spooled to a temporary file")

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", no_disk)
    monkeypatch.setattr(tempfile, "TemporaryFile", no_disk)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_disk)
    noise = Image.frombytes("RGB", (600, 400), os.urandom(600 * 400 * 3))
    out = io.BytesIO()
    noise.save(out, format="PNG")
    big = out.getvalue()
    assert len(big) > 600_000  # over Werkzeug's 500 KB spooling threshold
    fake.faces = []
    assert recognize(client, data=big).status_code == 200


def test_unknown_page_is_a_readable_404(client):
    response = client.get("/nope")
    assert response.status_code == 404 and "Back to the start page" in response.get_data(as_text=True)


def test_video_progress_refreshes_without_script_and_polls_with_it(fake, client):
    fake.videos[RUNNING_JOB["id"]] = RUNNING_JOB
    page = client.get(f"/videos/{RUNNING_JOB['id']}").get_data(as_text=True)
    # no JavaScript: the page refreshes itself (the meta only counts where scripts do not run)
    assert re.search(r'<noscript><meta http-equiv="refresh" content="\d+"></noscript>', page)
    assert '<script src="/static/video_progress.js" defer></script>' in page
    assert f'data-status-url="/videos/{RUNNING_JOB["id"]}/status"' in page
    assert client.get("/static/video_progress.js").status_code == 200
    status = client.get(f"/videos/{RUNNING_JOB['id']}/status")
    assert status.status_code == 200 and status.headers["Cache-Control"] == "no-store"
    assert status.get_json() == {
        "status": "running",
        "status_word": "Analysing",
        "fraction": 0.34,
        "frames_done": 110,
        "frames_total": 275,
        "text": "Finding and following faces: frame 110 of 275 (34%)",
    }
    assert client.get(f"/videos/{'b' * 32}/status").status_code == 404  # the script reloads on that
    fake.videos[RUNNING_JOB["id"]] = {**RUNNING_JOB, "status": "failed", "error": "not a video"}
    ended = client.get(f"/videos/{RUNNING_JOB['id']}").get_data(as_text=True)
    assert "<script" not in ended and "refresh" not in ended  # an ended job's page stays as it is
    assert client.get(f"/videos/{RUNNING_JOB['id']}/status").get_json()["text"] is None


def test_an_issued_id_is_used_once_even_by_racing_threads():
    from concurrent.futures import ThreadPoolExecutor

    from web_frontend.issued_ids import IdState, IssuedIds

    ids = IssuedIds(max_ids=10, ttl_s=60)
    issued = ids.issue()
    with ThreadPoolExecutor(8) as pool:
        states = list(pool.map(lambda _: ids.use(issued), range(32)))
    assert states.count(IdState.OPEN) == 1 and states.count(IdState.USED) == 31
    ids.reopen(issued)
    assert ids.use(issued) is IdState.OPEN
    assert ids.use("never issued") is IdState.UNKNOWN and ids.use(None) is IdState.UNKNOWN


def test_issued_ids_are_bounded_and_expire():
    from web_frontend.issued_ids import IssuedIds

    now = [0.0]
    ids = IssuedIds(max_ids=3, ttl_s=10, timer=lambda: now[0])
    first = ids.issue()
    rest = [ids.issue() for _ in range(3)]  # a fourth id pushes the oldest one out
    assert not ids.is_open(first) and all(ids.is_open(i) for i in rest)
    now[0] = 9.0
    assert ids.is_open(rest[0], renew=True)  # renewed: lives 10 s from now
    now[0] = 15.0
    assert ids.is_open(rest[0]) and not ids.is_open(rest[1])
    ids.revoke(rest[0])
    assert not ids.is_open(rest[0])


def test_removing_a_face_asks_first():
    fake = FakeApi()
    fake.gallery["Ada"] = 2
    client = site_app(fake).test_client()
    page = client.get("/gallery/person?name=Ada").get_data(as_text=True)
    face = f"{1:032x}"
    # the person's page links a confirmation page; no form on it removes a face at one click
    assert "/gallery/person/face/delete" not in re.findall(r'<form[^>]*action="([^"]*)"', page)
    assert f'href="/gallery/person/face/delete?name=Ada&amp;face_id={face}"' in page
    confirm = client.get(f"/gallery/person/face/delete?name=Ada&face_id={face}")
    text = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and face in text and 'name="confirm"' in text
    assert client.get(f"/gallery/person/face/delete?name=Ada&face_id={'f' * 32}").status_code == 404
    # posting without ticking the box removes nothing and goes back to the question
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)
    form = {"csrf_token": csrf, "name": "Ada", "face_id": face}
    refused = client.post("/gallery/person/face/delete", data=form)
    assert refused.status_code == 303 and "/gallery/person/face/delete?" in refused.headers["Location"]
    assert fake.gallery == {"Ada": 2} and not any(c.method == "DELETE" for c in fake.calls)
    done = client.post("/gallery/person/face/delete", data={**form, "confirm": "yes"}, follow_redirects=True)
    assert "Removed one face of Ada." in done.get_data(as_text=True) and fake.gallery == {"Ada": 1}

""" "Name this face" on the result page: the signed crop form, against the fake API of support/site_fakes.py,
and the crops themselves against the real detector (the face must be found again in its crop).

The whole path with the real API, the real site and Chromium is in test_e2e_naming.py.
"""

from __future__ import annotations

import base64
import html
import io
import re

import pytest
from PIL import Image

from inference_service.engine import iou, load_image
from web_frontend import naming
from web_frontend.face_crops import CROP_MAX_SIDE, MAX_NAMEABLE_FACES, cut_faces

from support.site_fakes import FACES, FakeApi, multipart_parts, recognize, site_app, token


def face_forms(page: str) -> list[dict[str, str]]:
    """Each "Name this face" form's hidden fields, in page order."""
    forms = []
    for form in re.findall(r'<form class="card name-face".*?</form>', page, re.S):
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))
        forms.append({k: html.unescape(v) for k, v in fields.items()})
    return forms


def name_it(client, form: dict[str, str], name: str = "Eve", consent: bool = True, **changes: str):
    data = {**form, "name": name, **({"consent": "yes"} if consent else {}), **changes}
    return client.post("/faces/name", data=data)


@pytest.fixture()
def fake() -> FakeApi:
    api = FakeApi()
    api.faces = FACES
    return api


@pytest.fixture()
def client(fake):
    return site_app(fake, api_key="sekret").test_client()


def test_every_face_gets_a_form_with_its_crop(client, fake):
    page = recognize(client).get_data(as_text=True)
    forms = face_forms(page)
    assert [f["number"] for f in forms] == ["1", "2"]
    assert page.count("Name this face") == 2 and 'data-box="400,60,520,220"' in page
    for form, face in zip(forms, FACES):
        crop = Image.open(io.BytesIO(base64.b64decode(form["crop"])))
        assert crop.format == "JPEG" and max(crop.size) <= CROP_MAX_SIDE
        x1, y1, x2, y2 = face["box"]
        # the crop holds the face with a margin of half its size on each side (clipped at y=0)
        assert crop.width / crop.height == pytest.approx(2 * (x2 - x1) / (y2 + (y2 - y1) / 2 + 1), rel=0.02)


def test_naming_a_face_sends_its_crop_and_box_with_the_write_key(client, fake):
    form = face_forms(recognize(client).get_data(as_text=True))[1]
    response = name_it(client, form, "Eve")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "Added this face to <strong>Eve</strong>" in response.get_data(as_text=True)
    call = fake.calls[-1]
    assert call.url.endswith("/identities/Eve/faces") and call.headers["X-API-Key"] == "sekret"
    parts = {p.get_param("name", header="content-disposition"): p for p in multipart_parts(call)}
    assert parts["image"].get_content() == base64.b64decode(form["crop"])
    # The box within the crop: the face of 120 x 160 px at (400, 60), a margin of 60 / 80 px
    # around it, clipped at the photo's top edge.
    box = [float(v) for v in parts["box"].get_content().split(",")]
    assert box == pytest.approx([60, 60, 180, 220], abs=1.01)


@pytest.mark.parametrize("tamper", ["crop", "token", "expired", "missing"])
def test_a_swapped_altered_or_old_form_is_refused_without_calling_the_api(client, fake, tamper, monkeypatch):
    forms = face_forms(recognize(client).get_data(as_text=True))
    form = dict(forms[0])
    if tamper == "crop":  # another face's crop under this face's token
        form["crop"] = forms[1]["crop"]
    elif tamper == "token":
        form["token"] = forms[1]["token"]
    elif tamper == "expired":
        monkeypatch.setattr(naming, "TOKEN_MAX_AGE_S", -1)
    else:
        del form["crop"]
    calls = len(fake.calls)
    response = name_it(client, form)
    assert response.status_code == 400
    assert "Recognise the photo again" in response.get_data(as_text=True)
    assert len(fake.calls) == calls


def test_a_token_signed_by_another_site_is_refused(fake):
    other = site_app(fake, api_key="k")
    other.secret_key = "another site's secret"
    form = face_forms(recognize(other.test_client()).get_data(as_text=True))[0]
    client = site_app(fake, api_key="k").test_client()
    form["csrf_token"] = token(client)
    response = name_it(client, form)
    assert response.status_code == 400 and "Recognise the photo again" in response.get_data(as_text=True)


def test_name_and_consent_are_needed_and_the_form_comes_back(client, fake):
    form = face_forms(recognize(client).get_data(as_text=True))[0]
    calls = len(fake.calls)
    response = name_it(client, form, "Eve", consent=False)
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "agreed to be enrolled" in page and 'value="Eve"' in page
    assert face_forms(page)[0]["crop"] == form["crop"]  # the same face can be named at once
    assert name_it(client, form, "  ").status_code == 400
    assert name_it(client, form, "a/b").status_code == 400
    assert len(fake.calls) == calls


def test_an_api_refusal_is_shown_with_the_form_which_can_be_sent_again(client, fake):
    form = face_forms(recognize(client).get_data(as_text=True))[0]
    fake.fail = (422, "no face found in image ('face.jpg') at box 1,2,3,4", {})
    response = name_it(client, form)
    assert response.status_code == 422
    assert "no face found in image" in response.get_data(as_text=True)
    fake.fail = None  # nothing was enrolled, so the form is still good for one enrollment
    assert name_it(client, form, "Eve").status_code == 200 and fake.gallery == {"Eve": 1}
    assert name_it(client, form, "Eve").status_code == 409


def test_a_face_too_poor_to_enroll_is_refused_with_the_reason_and_enrolled_anyway_when_ticked(client, fake):
    form = face_forms(recognize(client).get_data(as_text=True))[0]
    fake.poor_face = "the face is too blurred (sharpness 12, at least 40 needed)"
    response = name_it(client, form)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "the face is too blurred (sharpness 12" in page
    assert 'name="force"' in page and "force=true" not in page and fake.gallery == {}
    assert name_it(client, form, "Eve", force="yes").status_code == 200 and fake.gallery == {"Eve": 1}


def test_a_form_enrolls_its_face_once(client, fake):
    """A replay of one crop + token (same name or another) is refused with a clear message."""
    forms = face_forms(recognize(client).get_data(as_text=True))
    assert name_it(client, forms[0], "Eve").status_code == 200
    calls = len(fake.calls)
    for name in ("Eve", "Mallory", "eve"):
        response = name_it(client, forms[0], name)
        assert response.status_code == 409, name
        assert "already named with this form" in response.get_data(as_text=True)
    assert len(fake.calls) == calls and fake.gallery == {"Eve": 1}
    # the page's other face still has its own form, and a new recognition gives new forms
    assert name_it(client, forms[1], "Bob").status_code == 200
    again = face_forms(recognize(client).get_data(as_text=True))[0]
    assert again["token"] != forms[0]["token"] and name_it(client, again, "Eve").status_code == 200
    assert fake.gallery == {"Eve": 2, "Bob": 1}


def test_a_form_from_before_a_restart_is_refused(fake):
    """The open forms live in the site's process: a restarted site (same secret key) knows none of them."""
    form = face_forms(recognize(site_app(fake).test_client()).get_data(as_text=True))[0]
    client = site_app(fake).test_client()
    response = name_it(client, {**form, "csrf_token": token(client)})
    assert response.status_code == 400 and "Recognise the photo again" in response.get_data(as_text=True)
    assert fake.gallery == {}


def test_the_posts_need_the_csrf_token(client, fake):
    form = face_forms(recognize(client).get_data(as_text=True))[0]
    assert name_it(client, form, csrf_token="forged").status_code == 400


def test_with_a_password_naming_needs_a_login(fake):
    client = site_app(fake, password="pw").test_client()
    page = recognize(client).get_data(as_text=True)
    assert face_forms(page) == [] and "Log in</a>, then recognise the photo again" in page
    # A form made while logged in, posted after logging out, goes to the login page.
    client.post("/login", data={"csrf_token": token(client, "/login"), "password": "pw"})
    form = face_forms(recognize(client).get_data(as_text=True))[0]
    client.post("/logout", data={"csrf_token": token(client)})
    calls = len(fake.calls)
    response = name_it(client, {**form, "csrf_token": token(client)})
    assert response.status_code == 303 and "/login" in response.headers["Location"]
    assert len(fake.calls) == calls


def test_a_crowd_gets_forms_for_a_bounded_number_of_faces(client, fake):
    fake.faces = [
        {**FACES[1], "box": [10.0 + 12 * i, 10.0, 20.0 + 12 * i, 22.0]} for i in range(MAX_NAMEABLE_FACES + 5)
    ]
    assert len(face_forms(recognize(client).get_data(as_text=True))) == MAX_NAMEABLE_FACES


def test_the_detector_finds_each_face_again_in_its_crop(engine, manifest):
    """The crop's margin is enough context for the API's detector: every face of the group photo,
    cut out as the site does, is detected again at the box the form sends (IoU >= 0.5)."""
    row = next(r for r in manifest if r.path.as_posix().endswith("multi/six_faces.jpg"))
    data = row.path.read_bytes()
    faces = [f.to_dict() for f in engine.detect(load_image(data, 50_000_000))]
    assert len(faces) >= 6
    for face, crop in zip(faces, cut_faces(data, faces)):
        found = engine.detect(load_image(crop.jpeg, 50_000_000))
        assert max(iou(f.box, crop.box) for f in found) >= 0.5, face["box"]


def test_a_forged_face_number_is_only_a_caption(client, fake):
    """The number is not signed (it only captions the page): junk there is ignored, never a 500."""
    for junk in ("9" * 5000, "²", "-1"):
        form = face_forms(recognize(client).get_data(as_text=True))[0]
        assert name_it(client, form, number=junk).status_code == 200

"""Curating the gallery on the site (rename, merge, move a face, the Gallery report) against the fake API.

The fake (``support.site_fakes.FakeApi``) answers the curation endpoints as the API does: 404 for a
person or face that is gone, 409 for a taken name, 422 for a no-op; the site's real client runs.
The real API and site are exercised in ``tests/browser/test_e2e_curation.py``.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote, urlsplit

import pytest

from support.site_fakes import FakeApi, site_app, token

FACE0, FACE1 = f"{0:032x}", f"{1:032x}"


@pytest.fixture()
def fake() -> FakeApi:
    fake = FakeApi()
    fake.gallery.update({"Ada": 2, "Bob": 3, "Ada L": 1, "Zoe": 1})
    return fake


@pytest.fixture()
def client(fake: FakeApi):
    return site_app(fake, api_key="sekret").test_client()


def sent(fake: FakeApi, method: str) -> list[tuple[str, dict]]:
    """The (path, JSON body) of every ``method`` call the site made to the API."""
    return [
        (unquote(urlsplit(c.url).path), json.loads(c.body) if c.body else {}) for c in fake.calls if c.method == method
    ]


def text(response) -> str:
    return response.get_data(as_text=True)


def radios(page: str, field: str) -> list[str]:
    return re.findall(rf'type="radio" name="{field}" value="([^"]*)"', page)


# --- the person's page -----------------------------------------------------------------------------
def test_person_page_offers_rename_merge_and_move_and_marks_flagged_faces(client, fake):
    fake.flagged[("Ada", FACE1)] = 0.412
    page = text(client.get("/gallery/person?name=Ada"))
    assert 'action="/gallery/person/rename"' in page and 'name="new_name"' in page
    assert 'href="/gallery/person/merge?name=Ada"' in page
    for face in (FACE0, FACE1):
        assert f'href="/gallery/person/face/move?name=Ada&amp;face_id={face}"' in page
    rows = re.findall(r"<tr[^>]*>\s*<td class=\"face-id\">(.*?)</td>", page, re.S)
    assert len(rows) == 2
    assert "may not be this person" not in rows[0]
    assert "may not be this person" in rows[1] and "0.412" in rows[1]


# --- rename ------------------------------------------------------------------------------------------
def rename(client, name: str, new_name: str):
    form = {"csrf_token": token(client, f"/gallery/person?name={name}"), "name": name, "new_name": new_name}
    return client.post("/gallery/person/rename", data=form, follow_redirects=True)


def test_rename_moves_the_person_to_the_new_name(client, fake):
    response = rename(client, "Ada", "Ada Lovelace")
    assert response.status_code == 200 and "Renamed Ada to Ada Lovelace." in text(response)
    assert response.request.path == "/gallery/person" and response.request.args["name"] == "Ada Lovelace"
    assert fake.gallery["Ada Lovelace"] == 2 and "Ada" not in fake.gallery
    assert sent(fake, "PATCH") == [("/identities/Ada", {"name": "Ada Lovelace", "merge": False})]
    assert fake.calls[-2].headers["X-API-Key"] == "sekret"


def test_renaming_to_a_taken_name_offers_the_merge_with_that_person_chosen(client, fake):
    response = rename(client, "Ada", "Bob")
    page = text(response)
    assert response.request.path == "/gallery/person/merge"
    assert "Bob is already in the gallery. If they are one person, merge Ada into them." in page
    assert re.search(r'name="into" value="Bob" checked', page)
    assert fake.gallery["Ada"] == 2 and fake.gallery["Bob"] == 3  # nothing merged without the tick


def test_a_taken_name_typed_in_another_case_still_chooses_that_person(client, fake):
    reads = fake.send
    fake.send = lambda request, **kw: (
        FakeApi._reply(request, 409, {"detail": "identity 'Bob' exists"})
        if request.method == "PATCH"
        else reads(request)
    )
    page = text(rename(client, "Ada", "bob"))
    assert re.search(r'name="into" value="Bob" checked', page) and "bob is already in the gallery" in page


def test_rename_of_someone_gone_or_to_a_refused_name_says_why(client, fake):
    csrf = token(client, "/gallery/person?name=Ada")
    del fake.gallery["Ada"]
    gone = client.post(
        "/gallery/person/rename", data={"csrf_token": csrf, "name": "Ada", "new_name": "X"}, follow_redirects=True
    )
    assert gone.request.path == "/gallery" and "Ada is no longer in the gallery" in text(gone)
    fake.fail = (422, "name: may not hold control characters", {})
    refused = client.post("/gallery/person/rename", data={"csrf_token": csrf, "name": "Bob", "new_name": "B\x07"})
    assert refused.status_code == 303
    fake.fail = None
    page = text(client.get(refused.headers["Location"]))
    assert "Not accepted: name: may not hold control characters" in page


# --- merge --------------------------------------------------------------------------------------------
def test_merge_chooser_lists_the_most_similar_first(client, fake):
    fake.pairs = [
        {"a": "Ada", "b": "Zoe", "similarity": 0.931},
        {"a": "Ada L", "b": "Ada", "similarity": 0.978},
        {"a": "Bob", "b": "Zoe", "similarity": 0.99},  # not about Ada: no effect on her chooser
    ]
    page = text(client.get("/gallery/person/merge?name=Ada"))
    assert radios(page, "into") == ["Ada L", "Zoe", "Bob"]
    assert "1 face; similarity to Ada 0.978" in page and "Listed by name" not in page
    fake.pairs = None  # an API without the report: everyone, by name, and the page says so
    page = text(client.get("/gallery/person/merge?name=Ada"))
    assert radios(page, "into") == ["Ada L", "Bob", "Zoe"] and "Listed by name" in page


def test_merge_needs_a_choice_and_the_tick_then_moves_every_face(client, fake):
    csrf = token(client, "/gallery/person/merge?name=Ada")
    form = {"csrf_token": csrf, "name": "Ada", "into": "Bob"}
    unticked = client.post("/gallery/person/merge", data=form)
    assert unticked.status_code == 400 and "Tick the box to confirm merging Ada into Bob" in text(unticked)
    unchosen = client.post("/gallery/person/merge", data={**form, "into": "", "confirm": "yes"})
    assert unchosen.status_code == 400 and "Choose the person to merge into" in text(unchosen)
    assert sent(fake, "POST") == []
    done = client.post("/gallery/person/merge", data={**form, "confirm": "yes"}, follow_redirects=True)
    assert "Merged Ada into Bob: 2 faces moved, 5 in all." in text(done)
    assert done.request.args["name"] == "Bob" and fake.gallery == {"Bob": 5, "Ada L": 1, "Zoe": 1}
    assert sent(fake, "POST") == [("/identities/Ada/merge", {"into": "Bob"})]
    again = client.post("/gallery/person/merge", data={**form, "confirm": "yes"}, follow_redirects=True)
    assert again.request.path == "/gallery" and "Ada or Bob is no longer in the gallery" in text(again)


def test_a_merge_the_api_refuses_is_shown_on_the_merge_page(client, fake):
    csrf = token(client, "/gallery/person/merge?name=Ada")
    reads = fake.send

    def send(request, **kwargs):  # only the merge fails; the page's own reads are answered
        if request.method == "POST":
            return FakeApi._reply(request, 422, {"detail": "an identity cannot be merged into itself"})
        return reads(request, **kwargs)

    fake.send = send
    form = {"csrf_token": csrf, "name": "Ada", "into": "ada", "confirm": "yes"}
    response = client.post("/gallery/person/merge", data=form)
    assert response.status_code == 422
    assert "Not accepted: an identity cannot be merged into itself" in text(response)
    assert fake.gallery["Ada"] == 2


# --- move a face ---------------------------------------------------------------------------------------
def move(client, name: str, face_id: str, **fields: str):
    form = {"csrf_token": token(client, f"/gallery/person/face/move?name={name}&face_id={face_id}")}
    return client.post("/gallery/person/face/move", data={**form, "name": name, "face_id": face_id, **fields})


def test_move_a_face_to_someone_in_the_gallery(client, fake):
    fake.pairs = [{"a": "Bob", "b": "Ada", "similarity": 0.95}]
    page = text(client.get(f"/gallery/person/face/move?name=Ada&face_id={FACE1}"))
    assert radios(page, "to") == ["Bob", "Ada L", "Zoe"] and 'name="confirm"' not in page  # not her last face
    assert client.get(f"/gallery/person/face/move?name=Ada&face_id={'f' * 32}").status_code == 404
    response = move(client, "Ada", FACE1, to="Bob")
    assert response.status_code == 303 and unquote(response.headers["Location"]).endswith("name=Ada")
    assert "Moved the face" in text(client.get(response.headers["Location"]))
    assert fake.gallery["Ada"] == 1 and fake.gallery["Bob"] == 4
    assert sent(fake, "POST") == [(f"/identities/Ada/faces/{FACE1}/move", {"to": "Bob"})]


def test_moving_to_a_new_person_needs_their_consent(client, fake):
    refused = move(client, "Bob", FACE0, new_name="Carol", consent_note="form 7")
    assert refused.status_code == 400 and "Tick the box to confirm that Carol agreed to be enrolled" in text(refused)
    assert 'value="Carol"' in text(refused) and 'value="form 7"' in text(refused)  # what was typed is kept
    assert sent(fake, "POST") == []
    done = move(client, "Bob", FACE0, new_name="Carol", consent="yes", consent_note="form 7", to="Zoe")
    assert done.status_code == 303 and fake.gallery["Carol"] == 1 and fake.gallery["Zoe"] == 1
    path, body = sent(fake, "POST")[0]
    assert body == {"to": "Carol", "consent": "agreed (ticked on the site's Move a face form): form 7"}


def test_moving_the_last_face_asks_first_then_leads_to_where_it_went(client, fake):
    page = text(client.get(f"/gallery/person/face/move?name=Zoe&face_id={FACE0}"))
    assert 'name="confirm"' in page and "Zoe leaves the gallery" in page
    refused = move(client, "Zoe", FACE0, to="Bob")
    assert refused.status_code == 400 and "only face" in text(refused) and fake.gallery["Zoe"] == 1
    done = move(client, "Zoe", FACE0, to="Bob", confirm="yes")
    assert done.status_code == 303 and unquote(done.headers["Location"]).endswith("name=Bob")
    assert "Zoe had no other face" in text(client.get(done.headers["Location"]))
    assert "Zoe" not in fake.gallery and fake.gallery["Bob"] == 4


def test_a_move_of_a_face_gone_meanwhile_says_so(client, fake):
    last = f"{2:032x}"
    fake.gallery["Ada"] = 3
    csrf = token(client, f"/gallery/person/face/move?name=Ada&face_id={last}")
    fake.gallery["Ada"] = 2  # someone else removed that face (the fake's face ids are positions)
    form = {"csrf_token": csrf, "name": "Ada", "face_id": last, "to": "Bob"}
    response = client.post("/gallery/person/face/move", data=form, follow_redirects=True)
    assert f"The face {last} of Ada is no longer in the gallery" in text(response)
    assert fake.gallery == {"Ada": 2, "Bob": 3, "Ada L": 1, "Zoe": 1}


# --- the Gallery report ------------------------------------------------------------------------------------
def test_report_lists_pairs_best_first_and_flagged_faces(client, fake):
    fake.pairs = [{"a": "Bob", "b": "Zoe", "similarity": 0.931}, {"a": "Ada", "b": "Ada L", "similarity": 0.978}]
    fake.flagged[("Bob", FACE1)] = 0.5
    assert 'href="/gallery/report"' in text(client.get("/gallery"))
    page = text(client.get("/gallery/report"))
    assert page.index("0.978") < page.index("0.931")
    # the merge keeps the name with more faces, after a tick; "not the same person" is one click
    merges = re.findall(r'<form class="merge-pair".*?</form>', page, re.S)
    assert 'name="name" value="Ada L"' in merges[0] and 'name="into" value="Ada"' in merges[0]
    assert all('name="confirm" type="checkbox" value="yes" required' in m for m in merges)
    assert 'name="name" value="Zoe"' in merges[1] and 'name="into" value="Bob"' in merges[1]
    assert 'href="/gallery/person/merge?name=Ada&amp;into=Ada+L"' in page  # the other way round
    assert len(re.findall(r'<form class="distinct-pair"', page)) == 2
    assert f"<code>{FACE1}</code>" in page and "0.500" in page


def test_not_the_same_person_is_remembered(client, fake):
    fake.pairs = [{"a": "Ada", "b": "Ada L", "similarity": 0.978}]
    form = {"csrf_token": token(client, "/gallery/report"), "a": "Ada", "b": "Ada L"}
    response = client.post("/gallery/report/distinct", data=form, follow_redirects=True)
    page = text(response)
    assert "Noted: Ada and Ada L are not the same person" in page and 'class="merge-pair"' not in page
    assert "No two people in the gallery look like one person." in page
    assert sent(fake, "POST") == [("/gallery/report/dismissed", {"a": "Ada", "b": "Ada L"})]
    assert fake.distinct == {frozenset(("Ada", "Ada L"))} and fake.gallery["Ada"] == 2


def test_merge_from_the_report_comes_back_to_it(client, fake):
    fake.pairs = [{"a": "Ada", "b": "Ada L", "similarity": 0.978}]
    form = {"csrf_token": token(client, "/gallery/report"), "name": "Ada L", "into": "Ada", "next": "report"}
    response = client.post("/gallery/person/merge", data={**form, "confirm": "yes"}, follow_redirects=True)
    assert response.request.path == "/gallery/report" and "Merged Ada L into Ada: 1 face moved, 3 in all." in text(
        response
    )
    gone = client.post("/gallery/person/merge", data={**form, "confirm": "yes"}, follow_redirects=True)
    assert gone.request.path == "/gallery/report" and "no longer in the gallery" in text(gone)


def test_report_of_an_api_without_one_says_so(client, fake):
    response = client.get("/gallery/report")
    assert response.status_code == 404 and "does not make a gallery report" in text(response)
    fake.pairs = [{"a": "Ada", "b": "Ada L", "similarity": 0.978}]
    reads = fake.send
    fake.send = lambda request, **kw: (
        FakeApi._reply(request, 404, {"detail": "Not Found"}) if request.method == "POST" else reads(request)
    )
    form = {"csrf_token": token(client, "/gallery/report"), "a": "Ada", "b": "Ada L"}
    page = text(client.post("/gallery/report/distinct", data=form, follow_redirects=True))
    assert "cannot remember that two people differ" in page and "no longer in the gallery" not in page
    assert 'class="distinct-pair"' in page  # still suggested


def test_not_the_same_person_for_someone_gone_says_so(client, fake):
    fake.pairs = [{"a": "Ada", "b": "Ada L", "similarity": 0.978}]
    form = {"csrf_token": token(client, "/gallery/report"), "a": "Ada", "b": "Nobody"}
    page = text(client.post("/gallery/report/distinct", data=form, follow_redirects=True))
    assert "Ada or Nobody is no longer in the gallery" in page and fake.distinct == set()


@pytest.mark.parametrize(
    "path",
    ["/gallery/person/rename", "/gallery/person/merge", "/gallery/person/face/move", "/gallery/report/distinct"],
)
def test_curation_posts_need_the_csrf_token(client, fake, path):
    form = {"name": "Ada", "new_name": "X", "into": "Bob", "to": "Bob", "face_id": FACE0, "confirm": "yes"}
    response = client.post(path, data={**form, "a": "Ada", "b": "Bob"})
    assert response.status_code == 400 and "Reload the page" in text(response)
    assert fake.calls == []


def test_names_are_escaped_in_the_choosers_and_the_report(client, fake):
    evil, escaped = "<b>eve</b>", "&lt;b&gt;eve&lt;/b&gt;"
    fake.gallery[evil] = 1
    fake.pairs = [{"a": "Ada", "b": evil, "similarity": 0.95}]
    for path in (
        "/gallery/person/merge?name=Ada",
        f"/gallery/person/face/move?name=Ada&face_id={FACE0}",
        "/gallery/report",
    ):
        page = text(client.get(path))
        assert escaped in page and evil not in page, path


def test_curation_writes_carry_the_write_key_and_reads_the_read_key(fake):
    fake.pairs = [{"a": "Ada", "b": "Ada L", "similarity": 0.978}]
    client = site_app(fake, api_key="write", read_api_key="read").test_client()
    csrf = token(client, "/gallery/report")
    client.post("/gallery/report/distinct", data={"csrf_token": csrf, "a": "Ada", "b": "Ada L"})
    client.post("/gallery/person/rename", data={"csrf_token": csrf, "name": "Zoe", "new_name": "Zoé"})
    client.post("/gallery/person/merge", data={"csrf_token": csrf, "name": "Ada L", "into": "Ada", "confirm": "yes"})
    client.post("/gallery/person/face/move", data={"csrf_token": csrf, "name": "Bob", "face_id": FACE0, "to": "Ada"})
    keys = {(c.method, unquote(urlsplit(c.url).path)): c.headers.get("X-API-Key") for c in fake.calls}
    writes = {k: v for k, v in keys.items() if k[0] != "GET"}
    assert sorted(p for _, p in writes) == [
        "/gallery/report/dismissed",
        "/identities/Ada L/merge",
        f"/identities/Bob/faces/{FACE0}/move",
        "/identities/Zoe",
    ]
    assert set(writes.values()) == {"write"} and {v for k, v in keys.items() if k[0] == "GET"} == {"read"}
    assert fake.gallery == {"Ada": 4, "Bob": 2, "Zoé": 1}


def test_a_report_that_is_not_one_is_a_readable_502(client, fake):
    reads = fake.send
    fake.send = lambda request, **kw: (
        FakeApi._reply(request, 200, {"pairs": "none"})
        if urlsplit(request.url).path == "/gallery/report"
        else reads(request)
    )
    response = client.get("/gallery/report")
    assert response.status_code == 502 and "unexpected gallery report" in text(response)
    # the chooser does without it, by name
    assert radios(text(client.get("/gallery/person/merge?name=Zoe")), "into") == ["Ada", "Ada L", "Bob"]

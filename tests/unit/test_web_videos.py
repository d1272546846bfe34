"""The video page's tracks: time order, the ones too short or too small listed apart and never
offered for naming, a named track moving to its person at once, and Undo (fake API)."""

from __future__ import annotations

import re

from web_frontend.video_tracks import MIN_FACE_PX

from support.site_fakes import FakeApi, site_app, token

JOB = "c" * 32


def track(track_id: int, start: float, frames: int, height: float, identity: str | None = None) -> dict:
    first = round(start * 10)
    return {
        "track_id": track_id,
        "identity": identity,
        "similarity": 0.5,
        "start": start,
        "end": start + (frames - 1) / 10,
        "faces": frames,
        "frames": list(range(first, first + frames)),
        "boxes": [[100.0, 50.0, 100.0 + height, 50.0 + height]] * frames,
    }


def done_job() -> dict:
    tracks = [
        track(7, 0.0, 10, 60),  # nameable, first on screen though its number is high
        track(1, 3.0, 1, 90),  # one frame: too short
        track(2, 0.5, 12, MIN_FACE_PX - 6),  # the tiny face at the piano: too small
        track(3, 1.0, 8, 100),  # nameable
        track(4, 2.0, 9, 110, identity="Miranda"),
    ]
    timeline = {"fps": 10.0, "frames": 60, "width": 640, "height": 360, "min_faces": 3, "tracks": tracks}
    return {
        "id": JOB,
        "status": "done",
        "filename": "stage.mp4",
        "duration_s": 6.0,
        "error": None,
        "progress": {"stage": "rendering", "frames_done": 60, "frames_total": 60, "fraction": 1.0},
        "timeline": timeline,
        "summary": {
            "people": [{"identity": "Miranda", "seconds": 0.9, "first": 2.0, "last": 2.8, "tracks": 1}],
            "unknown": {"tracks": 4, "seconds": 3.1},
        },
        "track_faces": {"7": 5, "1": 1, "2": 5, "3": 4, "4": 5},
    }


def site():
    fake = FakeApi()
    fake.videos[JOB] = done_job()
    return fake, site_app(fake).test_client()


def name_track(client, track_id: int, name: str = "Guest", force: bool = False):
    form = {"csrf_token": token(client, f"/videos/{JOB}"), "name": name, "consent": "yes"}
    if force:
        form["force"] = "yes"
    return client.post(f"/videos/{JOB}/tracks/{track_id}/enroll", data=form)


def test_tracks_are_listed_in_time_order_and_the_weak_ones_apart():
    _, client = site()
    page = client.get(f"/videos/{JOB}").get_data(as_text=True)
    offered = [int(t) for t in re.findall(r'<form class="card track" id="track-(\d+)"', page)]
    assert offered == [7, 3]  # by start time, not by number; only the nameable ones have a form
    apart = re.findall(r'<li id="track-(\d+)" class="track-apart">(.*?)</li>', page, re.S)
    assert [int(t) for t, _ in apart] == [2, 1]
    assert f"faces about {MIN_FACE_PX - 6} px high" in apart[0][1] and "seen in only 1 frame" in apart[1][1]


def test_a_track_not_offered_is_refused_if_posted_anyway():
    fake, client = site()
    for track_id, why in ((1, "seen in only 1 frame"), (2, "too small"), (4, "already recognised as Miranda")):
        page = client.get(name_track(client, track_id).headers["Location"]).get_data(as_text=True)
        assert why in page, track_id
    assert fake.gallery == {} and not [c for c in fake.calls if c.method == "POST"]


def test_a_named_track_moves_to_its_person_at_once_and_undo_removes_its_faces():
    fake, client = site()
    before = client.get(f"/videos/{JOB}").get_data(as_text=True)
    timeline_before = re.search(r'id="timeline" class="timeline" src="([^"]+)"', before).group(1)
    response = name_track(client, 3, "Guest")
    assert response.status_code == 303 and response.headers["Location"].endswith("#named-3")
    assert fake.gallery == {"Guest": 4}
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Added 4 faces of track 3 to Guest." in page
    # no longer offered for naming; the people table counts it for Guest, with an Undo
    assert re.findall(r'<form class="card track" id="track-(\d+)"', page) == ["7"]
    people = re.findall(r'<td class="known"><a href="[^"]+">([^<]+)</a></td><td>([\d.]+) s', page)
    assert people == [("Miranda", "0.9"), ("Guest", "0.8")]
    assert 'id="named-3"' in page and ">Undo</button>" in page
    # the timeline image is drawn with it (and its URL changed, so no cached picture hides it)
    timeline_after = re.search(r'id="timeline" class="timeline" src="([^"]+)"', page).group(1)
    assert timeline_after != timeline_before
    assert client.get(timeline_after.replace("&amp;", "&")).status_code == 200
    # naming it again is refused; Undo deletes exactly the faces it added
    name_track(client, 3, "Someone Else")
    assert fake.gallery == {"Guest": 4}
    undo = client.post(f"/videos/{JOB}/tracks/3/undo", data={"csrf_token": token(client, f"/videos/{JOB}")})
    assert undo.status_code == 303
    deleted = [c.url for c in fake.calls if c.method == "DELETE"]
    assert len(deleted) == 4 and all("/identities/Guest/faces/" in u for u in deleted)
    assert fake.gallery == {}  # the last face took the person with it
    page = client.get(undo.headers["Location"]).get_data(as_text=True)
    assert "Undone: removed 4 faces of track 3 from Guest." in page
    assert re.findall(r'<form class="card track" id="track-(\d+)"', page) == ["7", "3"]


def test_a_naming_says_how_many_faces_the_quality_gate_left_out_and_why():
    fake, client = site()
    fake.videos[JOB]["track_poor"] = {"3": 1}
    response = name_track(client, 3, "Guest")
    assert fake.gallery == {"Guest": 3}
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Added 3 faces of track 3 to Guest. Left out 1 poor face (the face is too dark" in page


def test_a_track_with_no_good_face_is_refused_with_the_reason_and_enrolled_anyway_when_ticked():
    fake, client = site()
    fake.videos[JOB]["track_poor"] = {"3": 4}
    response = name_track(client, 3, "Guest")
    assert fake.gallery == {}
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "none of its 4 kept faces is good enough" in page and "force=true" not in page
    forms = re.findall(r'<form class="card track" id="track-(\d+)".*?</form>', page, re.S)
    offered = [t for t in forms if 'name="force"' in page.split(f'id="track-{t}"')[1].split("</form>")[0]]
    assert offered == ["3"]  # the override is offered on the refused track only
    assert 'name="force"' not in client.get(f"/videos/{JOB}").get_data(as_text=True)  # and once
    response = name_track(client, 3, "Guest", force=True)
    assert fake.gallery == {"Guest": 4}
    assert "Added 4 faces of track 3 to Guest." in client.get(response.headers["Location"]).get_data(as_text=True)

"""The site's Live page without a browser: its policy, the socket's URL and the ticket relay.

The browser itself (camera, drawing) is tests/browser/test_e2e_live.py.
"""

from __future__ import annotations

import io

from support.site_fakes import FakeApi, multipart_parts, site_app, token

CAMERA = {
    "name": "door",
    "state": "reconnecting",
    "last_error": "ConnectionRefusedError: refused; retrying in 4 s",
    "fps_in": 0.0,
    "fps_analysed": 0.0,
    "fps_dropped": 0.0,
    "lag_s": None,
    "present": [],
}
HALL = {**CAMERA, "name": "hall", "state": "live", "last_error": None, "fps_in": 25.0, "fps_analysed": 4.9}
HALL.update(fps_dropped=20.1, lag_s=0.31, present=[{"track_id": 3, "identity": "<b>ada</b>", "similarity": 0.95}])
EVENTS = [
    {
        "id": 9,
        "camera": "hall",
        "type": "left",
        "identity": "ada",
        "previous": None,
        "track_id": 3,
        "similarity": 0.95,
        "seconds_in_view": 42.4,
        "at": "2026-12-02T18:00:05.000Z",
        "face": "/events/9/face",
    },
    {
        "id": 8,
        "camera": "hall",
        "type": "appeared",
        "identity": None,
        "previous": None,
        "track_id": 4,
        "similarity": 0.5,
        "seconds_in_view": 0.0,
        "at": "2026-12-02T18:00:01.000Z",
        "face": None,
    },
]
EVENTS.append({**EVENTS[1], "id": 7, "camera": "door", "track_id": 1, "face": "/events/7/face"})


class TicketApi(FakeApi):
    """The fake API, answering POST /live/tickets as an API with a read key does, and the cameras'
    and events' listings."""

    def send(self, request, **kwargs):  # noqa: ANN001 - requests' adapter signature
        path = request.url.split("face-api.test", 1)[1]
        if self.fail is None and request.method == "POST" and path == "/live/tickets":
            self.calls.append(request)
            body = {"ticket": "123.ab.cd", "expires_in": 60, "protocol": "faces.live", "required": True}
            return self._reply(request, 200, body)
        if self.fail is None and request.method == "GET" and path == "/cameras":
            return self._reply(request, 200, {"cameras": [CAMERA, HALL]})
        if self.fail is None and request.method == "GET" and path.startswith("/events?"):
            self.calls.append(request)
            return self._reply(request, 200, {"events": EVENTS, "next": None})
        if self.fail is None and request.method == "GET" and path in ("/events/9/face", "/events/7/face"):
            response = self._reply(request, 200, None, {"content-type": "image/jpeg"})
            response.raw, response._content = io.BytesIO(b"\xff\xd8jpeg"), False  # streamed, as the API's
            return response
        return super().send(request, **kwargs)


def test_live_page_allows_scripts_from_the_site_and_a_connection_to_the_api_socket_only():
    client = site_app(TicketApi(), api_key="sekret").test_client()
    response = client.get("/live")
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and policy.endswith("connect-src 'self' ws://face-api.test")
    page = response.get_data(as_text=True)
    assert '<script src="/static/live.js" defer></script>' in page and 'id="live-start"' in page
    assert "<noscript>" in page  # says why nothing happens without JavaScript
    assert client.get("/static/live.js").status_code == 200
    assert client.get("/").headers["Content-Security-Policy"].count("connect-src") == 0  # other pages unchanged


def test_ticket_is_fetched_with_the_sites_key_and_handed_out_with_the_socket_url():
    fake = TicketApi()
    client = site_app(fake, api_key="sekret", live_url="wss://faces.example/api/live").test_client()
    response = client.get("/live/ticket")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {
        "url": "wss://faces.example/api/live",
        "protocol": "faces.live",
        "ticket": "123.ab.cd",
    }
    assert fake.calls[-1].headers["X-API-Key"] == "sekret"  # the key stays between the site and the API
    assert "sekret" not in response.get_data(as_text=True)
    assert "connect-src 'self' wss://faces.example" in client.get("/live").headers["Content-Security-Policy"]


def test_ticket_when_the_api_refuses_is_a_json_error():
    fake = TicketApi()
    fake.fail = (401, "a valid X-API-Key header is required", {})
    response = site_app(fake).test_client().get("/live/ticket")
    assert response.status_code == 502 and "detail" in response.get_json()


def test_cameras_page_shows_states_who_is_in_view_and_the_latest_events_with_faces():
    fake = TicketApi()
    client = site_app(fake, api_key="sekret").test_client()
    response = client.get("/cameras")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="5">' in page and "<script" not in page  # no script needed
    assert 'data-state="reconnecting"' in page and "ConnectionRefusedError: refused; retrying in 4 s" in page
    assert 'data-state="live"' in page and "25.0 / 4.9 / 20.1" in page and "0.31 s" in page
    assert "&lt;b&gt;ada&lt;/b&gt;" in page and "<b>ada</b>" not in page  # names are escaped
    assert "<strong>ada</strong> left after 42 s" in page and "<strong>someone unknown</strong> appeared" in page
    assert 'src="/cameras/events/9/face.jpg"' in page and page.count("<img") == 2  # event 8 has no face
    # naming is offered for the unknown face only, on a page of its own
    assert page.count("Name this person") == 1 and 'href="/cameras/events/7/name"' in page
    assert fake.calls[-1].url.endswith("/events?limit=20")
    face = client.get("/cameras/events/9/face.jpg")
    assert face.status_code == 200 and face.data == b"\xff\xd8jpeg" and face.content_type == "image/jpeg"
    assert client.get("/cameras/events/10/face.jpg").status_code == 404


def test_cameras_page_says_when_the_api_refuses():
    fake = TicketApi()
    fake.fail = (503, "the service is busy", {})
    response = site_app(fake).test_client().get("/cameras")
    assert response.status_code == 503 and "busy" in response.get_data(as_text=True)


def test_an_unknown_event_face_is_named_with_consent():
    fake = TicketApi()
    client = site_app(fake, api_key="sekret").test_client()
    assert client.get("/cameras/events/7/name").status_code == 200
    csrf = token(client, "/cameras/events/7/name")
    refused = client.post("/cameras/events/7/name", data={"csrf_token": csrf, "name": "ada"})
    assert refused.status_code == 400 and "agreed" in refused.get_data(as_text=True)  # no consent ticked
    assert not fake.gallery
    form = {"csrf_token": csrf, "name": "ada", "consent": "yes", "note": "form 12"}
    response = client.post("/cameras/events/7/name", data=form)
    assert response.status_code == 303 and response.headers["Location"] == "/cameras"
    assert fake.gallery == {"ada": 1}
    enroll = fake.calls[-1]
    parts = {p.get_param("name", header="content-disposition"): p for p in multipart_parts(enroll)}
    assert parts["image"].get_payload(decode=True) == b"\xff\xd8jpeg"  # the event's face, as the API keeps it
    assert parts["consent"].get_payload() == "agreed (ticked on the site's Cameras form): form 12"
    assert enroll.headers["X-API-Key"] == "sekret"


def test_an_event_face_too_poor_to_enroll_is_refused_with_the_reason_and_enrolled_anyway_when_ticked():
    fake = TicketApi()
    fake.poor_face = "the face is 30 px wide, at least 40 are needed"
    client = site_app(fake).test_client()
    form = {"csrf_token": token(client, "/cameras/events/7/name"), "name": "ada", "consent": "yes"}
    refused = client.post("/cameras/events/7/name", data=form)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "30 px wide, at least 40" in page and 'name="force"' in page
    assert not fake.gallery
    response = client.post("/cameras/events/7/name", data={**form, "force": "yes"})
    assert response.status_code == 303 and fake.gallery == {"ada": 1}

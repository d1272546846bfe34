"""The site's Live page without a browser: its policy, the socket's URL and the ticket relay.

The browser itself (camera, drawing) is tests/browser/test_e2e_live.py.
"""

from __future__ import annotations

from support.site_fakes import FakeApi, site_app


class TicketApi(FakeApi):
    """The fake API, answering POST /live/tickets as an API with a read key does."""

    def send(self, request, **kwargs):  # noqa: ANN001 - requests' adapter signature
        if request.method == "POST" and request.url.endswith("/live/tickets") and self.fail is None:
            self.calls.append(request)
            body = {"ticket": "123.ab.cd", "expires_in": 60, "protocol": "faces.live", "required": True}
            return self._reply(request, 200, body)
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

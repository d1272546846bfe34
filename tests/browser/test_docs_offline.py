"""The API's /docs and /redoc in Chromium with every request outside the service blocked (as on a
machine without internet): the pages load their assets from the service and render every operation.
And the site's favicon: its pages link one that exists, so no page logs a 404.
"""

from __future__ import annotations

import pytest
import requests

from support.live_servers import start_api, start_web


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    logs = tmp_path_factory.mktemp("docs")
    server = start_api(logs, logs / "gallery.sqlite3")
    yield server
    server.stop()


def offline_page(browser, origin: str):
    """A page whose requests may reach ``origin`` only; what else it asked for, and its console errors."""
    context = browser.new_context()
    outside: list[str] = []
    errors: list[str] = []

    def only_the_service(route) -> None:
        url = route.request.url
        if url == origin or url.startswith(origin + "/"):
            route.continue_()
        else:
            outside.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", only_the_service)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return context, page, outside, errors


def operations(api_url: str) -> list[tuple[str, str]]:
    spec = requests.get(api_url + "/openapi.json", timeout=30).json()
    methods = {"get", "head", "post", "put", "patch", "delete", "options"}
    return [(m.upper(), p) for p, item in spec["paths"].items() for m in item if m in methods]


def test_swagger_ui_renders_every_operation_offline(api, browser):
    expected = operations(api.url)
    assert ("POST", "/recognize") in expected and len(expected) >= 10
    context, page, outside, errors = offline_page(browser, api.url)
    page.goto(api.url + "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    shown = page.locator(".opblock").evaluate_all(
        "els => els.map(e => [e.querySelector('.opblock-summary-method').textContent,"
        " e.querySelector('.opblock-summary-path').getAttribute('data-path')])"
    )
    assert sorted(map(tuple, shown)) == sorted(expected)
    assert page.locator(".info .title").inner_text().startswith("Face inference service")
    assert outside == [] and errors == [], (outside, errors)
    context.close()


def test_redoc_renders_every_operation_offline(api, browser):
    expected = operations(api.url)
    context, page, outside, errors = offline_page(browser, api.url)
    page.goto(api.url + "/redoc")
    page.wait_for_selector("[data-section-id^='operation/']", timeout=30_000)
    sections = page.locator("[data-section-id^='operation/']").count()
    assert sections == len(expected)
    assert "Face inference service" in page.locator("h1").first.inner_text()
    assert outside == [] and errors == [], (outside, errors)
    context.close()


def test_the_site_has_a_favicon_and_no_page_logs_a_404(api, browser, tmp_path):
    web = start_web(tmp_path, api.url)
    try:
        context, page, outside, errors = offline_page(browser, web.url)
        for path in ("/", "/gallery", "/videos", "/login"):
            page.goto(web.url + path)
            page.wait_for_load_state("load")
        icon = page.locator("link[rel=icon]").get_attribute("href")
        response = page.request.get(web.url + icon)
        assert response.status == 200 and response.headers["content-type"].startswith("image/svg+xml")
        assert page.request.get(web.url + "/favicon.ico").status == 200  # followed to the same file
        assert outside == [] and errors == [], (outside, errors)
        context.close()
    finally:
        web.stop()

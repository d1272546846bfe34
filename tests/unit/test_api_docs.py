"""/docs and /redoc name only the service's own assets, and the service serves them (no CDN).

The app is built but not started (no lifespan: no model, no gallery); Chromium's view of the same
pages, offline, is in tests/browser/test_docs_offline.py.
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from inference_service.api import create_app
from inference_service.api.docs import REDOCLY_LOGO
from inference_service.config import Settings


def test_the_docs_pages_load_everything_from_the_service(tmp_path):
    client = TestClient(create_app(Settings(gallery=tmp_path / "g.sqlite3")))
    for page, kinds in (("/docs", ("js", "css", "png")), ("/redoc", ("js", "png"))):
        html = client.get(page)
        assert html.status_code == 200
        urls = re.findall(r'(?:src|href)="([^"]+)"', html.text) + re.findall(r"url: '([^']+)'", html.text)
        assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
        assets = [u for u in urls if u.startswith("/docs-assets/")]
        assert sorted({a.rsplit(".", 1)[1] for a in assets}) == sorted(kinds), assets
        for asset in assets:
            response = client.get(asset)
            assert response.status_code == 200 and len(response.content) > 1000, asset
    script = client.get("/docs-assets/redoc.standalone.js")
    assert REDOCLY_LOGO not in script.content and b"docs-assets/favicon.png" in script.content
    assert "javascript" in script.headers["content-type"]

"""``/docs`` (Swagger UI) and ``/redoc`` served entirely by the service: no CDN, no internet.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (jsdelivr), so on a machine without
internet ``/docs`` is a blank page ("SwaggerUIBundle is not defined"). The same assets ship in the
``fastapi-offline`` package (Swagger UI, ReDoc and FastAPI's favicon, MIT/Apache-2.0); they are
served from its folder under :data:`ASSETS_URL`, and the two pages are FastAPI's own HTML pointed
at them (ReDoc without Google Fonts: the system fonts it falls back to are fine). One asset is
served changed: ReDoc's sidebar shows Redocly's logo from ``cdn.redoc.ly`` whatever its options say,
so its script is served with that address pointing at the package's own favicon instead.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"
REDOC_JS = "redoc.standalone.js"
REDOCLY_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@cache
def _redoc_script() -> bytes:
    """ReDoc's bundle with its one hard-wired outside address made local.

    Relative to the page (``/redoc``), so it also holds behind a proxy's path prefix.
    """
    script = (ASSETS_DIR / REDOC_JS).read_bytes()
    return script.replace(REDOCLY_LOGO, ASSETS_URL.lstrip("/").encode() + b"/favicon.png")


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve the docs pages and their assets; ``app`` must be made with ``docs_url=None, redoc_url=None``."""
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    # Before the mount, which would otherwise answer this path with the file as shipped.
    @app.get(f"{ASSETS_URL}/{REDOC_JS}", include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(_redoc_script(), media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})

    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    def prefix(request: Request) -> str:
        """The app's mount point behind a proxy (``root_path``), so the pages' links still reach it."""
        return str(request.scope.get("root_path") or "")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + oauth2_redirect_url,
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/{REDOC_JS}",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

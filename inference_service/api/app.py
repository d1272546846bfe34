"""The FastAPI application: wiring of settings, engine, gallery, worker pool and routes.

``create_app`` builds the app without loading anything; models load once, at start-up, in the
lifespan (or are handed in, as tests and ``python -m inference_service`` do), never at import.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from ..analysis.engine_loader import load_engine, share_passes_if_wanted
from ..cameras import Cameras
from ..config import Settings
from ..engine import FaceEngine
from ..events.service import open_event_log
from ..gallery import Gallery
from ..gallery.factory import describe
from ..gallery.replica import start_sync
from ..gallery.retention import RetentionSweeper
from ..videos import VideoJobs
from . import audit, cameras, curation, events, health, identities, inference, live, videos
from .app_state import Services
from .docs import install_docs
from .errors import CatchAllMiddleware, install_error_handlers
from .security import READ_SCHEME, warn_if_open
from .uploads import UploadLimitMiddleware
from .workers import InferencePool

log = logging.getLogger(__name__)

DESCRIPTION = """
Self-hosted face detection, embedding, recognition and verification over an enrolled gallery.

* Uploads are multipart files in field `image` (`image_a`/`image_b` for /verify), at most
  `FACE_MAX_UPLOAD_MB` MiB per request (sent within `FACE_BODY_TIMEOUT_S` seconds),
  `FACE_MAX_PIXELS` pixels per image and `FACE_MAX_REQUEST_PIXELS` pixels in all.
* Every error is JSON `{"detail": "..."}`.
* When `FACE_API_KEY` is set, enrollment and deletion need header `X-API-Key`; reads stay open
  unless `FACE_READ_API_KEY` is set too (then every endpoint but /health needs either key).
* With `FACE_API_KEYS` (`label:key` pairs) several write keys exist; the audit trail
  (`GET /audit`, write key) records which one enrolled, deleted or exported whom.
* The service stores embeddings, boxes, names and times, never the uploaded images. It does not
  estimate age, gender, emotion or ethnicity.
"""


def open_gallery(settings: Settings, engine: FaceEngine) -> Gallery:
    """Open the gallery file for the engine's embedder; ``GalleryMismatchError`` for another's."""
    gallery = Gallery.open(
        settings.gallery, engine.embedder.name, engine.embedder.dim, settings.index, settings.snapshot_dir
    )
    start_sync(gallery, settings.sync_poll_s)  # PostgreSQL: follow the other replicas' writes
    stats = gallery.stats()
    log.info("gallery %s: %d identities, %d faces", describe(settings.gallery), stats["identities"], stats["faces"])
    return gallery


def _mark_binary(node: Any) -> None:
    """Add ``format: binary`` to every upload field of the spec, in place.

    FastAPI declares an ``UploadFile`` as ``contentMediaType: application/octet-stream`` only
    (OpenAPI 3.1's way); many generators and fuzzers (schemathesis among them) recognise a file
    field by the older ``format: binary``, which 3.1 still allows, and would send text otherwise.
    """
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("contentMediaType") == "application/octet-stream":
            node.setdefault("format", "binary")
        for value in node.values():
            _mark_binary(value)
    elif isinstance(node, list):
        for value in node:
            _mark_binary(value)


def declare_keys(spec: dict[str, Any], read_key_configured: bool) -> None:
    """Declare the read key only where it is asked for, in place: on reads when the service runs
    with FACE_READ_API_KEY, nowhere otherwise (a spec that says a key is needed where none is
    makes every client and fuzzer expect a 401 that never comes). Writes name their write key."""
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "security" not in operation:
                continue
            schemes = operation["security"]
            writes = any(set(s) - {READ_SCHEME} for s in schemes)
            if writes or not read_key_configured:
                schemes = [s for s in schemes if READ_SCHEME not in s]
            if schemes:
                operation["security"] = schemes
            else:
                del operation["security"]
    if not read_key_configured:
        spec.get("components", {}).get("securitySchemes", {}).pop(READ_SCHEME, None)


def _declare_binary_uploads(app: FastAPI, read_key_configured: bool) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()  # also kept as app.openapi_schema
            _mark_binary(spec)
            declare_keys(spec, read_key_configured)
            return spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings, engine: FaceEngine | None = None, gallery: Gallery | None = None) -> FastAPI:
    """The API app. Engine and gallery are loaded in the lifespan unless given (then not closed)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned_gallery = gallery is None
        eng = (
            engine
            if engine is not None
            else load_engine(settings, gallery=settings.gallery, concurrent_callers=settings.workers)
        )
        gal = gallery if gallery is not None else open_gallery(settings, eng)
        shared = share_passes_if_wanted(eng, settings)
        pool = InferencePool(settings.workers, settings.queue_size)
        sweeper = RetentionSweeper(gal, settings.retention_sweep_s, settings.audit_forget_names).start()
        app.state.services = Services(settings, eng, gal, pool, sweeper)
        app.state.videos = VideoJobs(settings, eng, gal)
        app.state.videos.start()
        app.state.events = open_event_log(settings, gal)
        app.state.cameras = Cameras(settings, eng, gal, on_events=app.state.events.record, visits=app.state.events)
        app.state.cameras.start_all()
        warn_if_open(settings.api_key, settings.api_keys)
        log.info(
            "ready: embedder %s, threshold %.3f, %d workers + %d queue slots, uploads <= %g MiB",
            eng.embedder.name,
            eng.threshold,
            settings.workers,
            settings.queue_size,
            settings.max_upload_mb,
        )
        try:
            yield
        finally:
            app.state.cameras.stop_all()
            app.state.events.close()
            sweeper.stop()
            app.state.videos.stop()
            pool.shutdown()
            if shared:
                eng.stop_sharing()
            if owned_gallery:
                gal.close()

    app = FastAPI(
        title="Face inference service",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # install_docs serves both pages from the service itself, not a CDN
        redoc_url=None,
    )
    install_docs(app)
    install_error_handlers(app)
    _declare_binary_uploads(app, bool(settings.read_api_key))
    app.include_router(health.router)
    app.include_router(inference.router)
    app.include_router(identities.router)
    app.include_router(curation.router)
    app.include_router(audit.router)
    app.include_router(videos.router)
    app.include_router(live.router)
    app.include_router(cameras.router)
    app.include_router(events.router)
    # add_middleware wraps outward: the size cap sees the raw stream before anything else.
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(
        UploadLimitMiddleware,
        limit_mb=settings.max_upload_mb,
        body_timeout_s=settings.body_timeout_s,
        streamed=[("POST", "/videos")],  # counted by its route against FACE_MAX_VIDEO_MB (api/video_upload.py)
    )
    return app

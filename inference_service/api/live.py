"""The browser's camera: WebSocket ``/live``, one JPEG frame per binary message, one JSON answer per
analysed frame: ``{"faces": [{"box", "track_id", "identity", "similarity", "decided"}], "dropped": n}``.

One frame is analysed at a time per connection; a frame that arrives meanwhile waits in a slot of
one, and a newer one replaces it (latest wins: a slow analysis never builds a queue, and the
answer counts what was dropped). Each connection holds at most two frames (one analysed, one
waiting) of at most ``FACE_LIVE_MAX_FRAME_MB``, its tracks keep a bounded number of faces, and a
connection silent for ``FACE_LIVE_IDLE_S`` is closed; at most ``FACE_LIVE_MAX_CONNECTIONS`` are
open at once (more are closed with 1013, "try again later"). The analysis runs on the API's worker
pool, so live video and photo requests share the same bounded CPU.

A bad frame (not an image, too many pixels, too many bytes) is answered with
``{"error": kind, "detail": sentence}`` and the connection stays open for the next frame.

Where ``FACE_READ_API_KEY`` is set, the handshake needs header ``X-API-Key`` (either key) or a
ticket from ``POST /live/tickets`` offered as subprotocol ``ticket.<ticket>`` (browsers cannot set
headers on a WebSocket). The server answers with subprotocol ``faces.live`` when it was offered.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from ..analysis.live import LatestSlot, LiveSession
from ..analysis.matcher import EngineMatcher
from ..analysis.photos import InputError, image_error_kind
from ..engine import ImageError, load_image
from . import live_tickets
from .app_state import Services
from .deps import ServicesDep
from .schemas import error_responses
from .security import key_matches, matching_label, require_read_key
from .workers import PoolFullError

log = logging.getLogger(__name__)
router = APIRouter(tags=["live"])

PROTOCOL = "faces.live"
CLOSE_POLICY = 1008  # RFC 6455: the handshake lacked a valid key or ticket
CLOSE_TRY_LATER = 1013  # RFC 6455 (IANA registry): too many live connections right now


def _authorised(services: Services, websocket: WebSocket, offered: list[str]) -> bool:
    settings = services.settings
    if not settings.read_api_key:
        return True
    given = websocket.headers.get("x-api-key")
    write = matching_label(given, settings.write_keys())
    if key_matches(given, settings.read_api_key) or write is not None:
        return True
    ticket = live_tickets.from_protocols(offered)
    return ticket is not None and live_tickets.valid(settings.read_api_key, ticket)


def _analyse(session: LiveSession, data: bytes, max_pixels: int) -> dict[str, Any]:
    """Decode one frame and run it through the session (on a worker thread)."""
    try:
        rgb = load_image(data, max_pixels)
    except ImageError as exc:
        raise InputError(image_error_kind(exc), str(exc)) from None
    result = session.analyse(rgb)
    return {
        "faces": [face.as_dict() for face in result.faces],
        "width": int(rgb.shape[1]),
        "height": int(rgb.shape[0]),
        "analysis_ms": round(1000 * result.seconds, 1),
    }


@router.post(
    "/live/tickets",
    dependencies=[Depends(require_read_key)],
    responses=error_responses(401),
    summary="A short-lived ticket that opens the /live WebSocket (for browsers)",
)
async def live_ticket(services: ServicesDep) -> dict[str, Any]:
    settings = services.settings
    if not settings.read_api_key:
        return {"ticket": None, "expires_in": None, "protocol": PROTOCOL, "required": False}
    ticket = live_tickets.issue(settings.read_api_key, settings.live_ticket_s)
    return {"ticket": ticket, "expires_in": settings.live_ticket_s, "protocol": PROTOCOL, "required": True}


@router.websocket("/live")
async def live(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    settings = services.settings
    offered = list(websocket.scope.get("subprotocols") or [])
    await websocket.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
    if not _authorised(services, websocket, offered):
        await websocket.close(CLOSE_POLICY, "a valid X-API-Key header or live ticket is required")
        return
    state = websocket.app.state
    open_now = getattr(state, "live_connections", 0)
    if open_now >= settings.live_max_connections:
        await websocket.close(CLOSE_TRY_LATER, f"at most {settings.live_max_connections} live connections at once")
        return
    state.live_connections = open_now + 1
    try:
        await _serve(websocket, services)
    finally:
        state.live_connections -= 1


async def _serve(websocket: WebSocket, services: Services) -> None:
    settings = services.settings
    max_bytes = int(settings.live_max_frame_mb * 1024 * 1024)
    session = LiveSession(EngineMatcher(services.engine, services.gallery, workers=1))
    slot: LatestSlot[bytes] = LatestSlot()
    wake = asyncio.Event()
    send_lock = asyncio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with send_lock:
            if websocket.application_state == WebSocketState.CONNECTED:
                await websocket.send_text(json.dumps(message))

    async def analyser() -> None:
        while True:
            await wake.wait()
            wake.clear()
            data = slot.take()
            if data is None:
                continue
            try:
                answer = await services.pool.run(_analyse, session, data, settings.max_pixels)
            except InputError as exc:
                await send({"error": exc.kind, "detail": exc.detail, "dropped": slot.dropped_since_last()})
                continue
            except PoolFullError:
                await send({"error": "busy", "detail": "the service is busy; this frame was dropped", "dropped": 0})
                continue
            answer["dropped"] = slot.dropped_since_last()
            await send(answer)

    task = asyncio.create_task(analyser())
    try:
        while True:
            try:
                message = await asyncio.wait_for(websocket.receive(), settings.live_idle_s)
            except TimeoutError:
                await websocket.close(1000, f"no frame for {settings.live_idle_s:g} s")
                return
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                await send({"error": "invalid", "detail": "send each frame as one binary message (JPEG)"})
            elif len(data) > max_bytes:
                detail = f"a frame may be at most {settings.live_max_frame_mb:g} MiB; this one is {len(data) / 2**20:.1f} MiB"
                await send({"error": "too_large", "detail": detail})
            elif not data:
                await send({"error": "corrupt", "detail": "an empty message is not a frame"})
            else:
                slot.put(data)
                wake.set()
            if task.done():  # the analyser failed: a bug, not the client's doing
                task.result()
    except WebSocketDisconnect:
        return
    finally:
        task.cancel()
        log.debug("live connection closed after %d analysed frames", session.frames)

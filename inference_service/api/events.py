"""GET /events (paged, filtered), GET /events/{id}/face, GET /events/stream (Server-Sent Events).

Events are what the cameras tell (``appeared``, ``named``, ``renamed``, ``left``), newest first,
``limit`` per page; ``next`` is the ``before_id`` of the following page. The stream sends each new
event as ``id: N``, ``event: <type>``, ``data: <the event's JSON>``; a client that reconnects with
``Last-Event-ID: N`` (browsers' EventSource does so by itself) gets every event after N, none
twice. All of it needs the read key where one is set.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..events.store import EventFilter
from .deps import EventsDep
from .schemas import error_responses
from .security import require_read_key

router = APIRouter(prefix="/events", tags=["events"], dependencies=[Depends(require_read_key)])

POLL_S = 0.5  # how often a stream looks for new events (any replica may have written them)
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream
MAX_STREAMS = 16  # open streams per process; each holds a connection and polls
MAX_ID = 2**63 - 1  # ids are 64-bit integers in both stores


def _time(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise HTTPException(
            status_code=422, detail=f"{name} must be an ISO 8601 time, e.g. 2026-01-31T18:00:00Z"
        ) from None


@router.get("", responses=error_responses(401, 422), summary="Camera events, newest first")
def list_events(
    events: EventsDep,
    camera: str | None = Query(None, max_length=64),
    type: Literal["appeared", "named", "renamed", "left"] | None = Query(None),
    identity: str | None = Query(None, max_length=200),
    since: str | None = Query(None, description="ISO 8601: events at or after this time"),
    until: str | None = Query(None, description="ISO 8601: events before this time"),
    before_id: int | None = Query(None, ge=1, le=MAX_ID, description="the previous page's `next`"),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    where = EventFilter(camera, type, identity, _time(since, "since"), _time(until, "until"), None, before_id)
    page = events.page(where, limit)
    return {"events": page, "next": page[-1]["id"] if len(page) == limit else None}


STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events, without end",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **error_responses(401, 422, 503),
}


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses=STREAM_RESPONSES,
    summary="New events as Server-Sent Events",
)
async def stream(
    events: EventsDep,
    request: Request,
    last_event_id: str | None = Header(None, description="resume after this event id"),
) -> StreamingResponse:
    state = request.app.state
    if getattr(state, "event_streams", 0) >= MAX_STREAMS:
        raise HTTPException(
            status_code=503, detail=f"at most {MAX_STREAMS} event streams at once", headers={"Retry-After": "5"}
        )
    if last_event_id is not None and not (last_event_id.strip().isdigit() and int(last_event_id) <= MAX_ID):
        raise HTTPException(status_code=422, detail="Last-Event-ID must be an event id (a whole number)")
    start = int(last_event_id) if last_event_id is not None else await run_in_threadpool(events.latest_id)
    state.event_streams = getattr(state, "event_streams", 0) + 1

    async def lines() -> AsyncIterator[str]:
        last, quiet = start, 0.0
        try:
            yield "retry: 2000\n\n"
            while True:
                batch = await run_in_threadpool(events.after, last, 100)
                for event in batch:
                    last = event["id"]
                    yield f"id: {last}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"
                if batch:
                    quiet = 0.0
                    continue
                await asyncio.sleep(POLL_S)
                quiet += POLL_S
                if quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
        finally:
            state.event_streams -= 1

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(lines(), media_type="text/event-stream", headers=headers)


@router.get("/delivery", responses=error_responses(401), summary="How webhooks and MQTT fare")
def delivery(events: EventsDep) -> dict[str, Any]:
    return events.delivery()


@router.get(
    "/{event_id}/face",
    response_class=Response,
    responses={
        200: {"description": "The face, a JPEG", "content": {"image/jpeg": {}}},
        **error_responses(401, 404, 422),
    },
    summary="The face of one event (JPEG)",
)
def event_face(events: EventsDep, event_id: int = Path(ge=1, le=MAX_ID)) -> Response:
    data = events.face(event_id)
    if data is None:
        raise HTTPException(status_code=404, detail=f"event {event_id} has no face (or does not exist)")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

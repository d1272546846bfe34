"""What a route may ask FastAPI for, each declared once as an ``Annotated`` alias.

A route takes ``services: ServicesDep``, ``jobs: JobsDep``, ``cameras: CamerasDep`` or
``events: EventsDep`` instead of repeating
``Depends(...)``, so how a dependency is found is written in one place.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..cameras import Cameras
from ..events.service import EventLog
from ..videos import VideoJobs
from .app_state import Services, get_services


def get_jobs(request: Request) -> VideoJobs:
    """The video jobs of the app serving this request."""
    return request.app.state.videos


def get_cameras(request: Request) -> Cameras:
    """The network cameras this process watches (or stands by for)."""
    return request.app.state.cameras


def get_events(request: Request) -> EventLog:
    """The live events: their store, stream and deliveries."""
    return request.app.state.events


ServicesDep = Annotated[Services, Depends(get_services)]
JobsDep = Annotated[VideoJobs, Depends(get_jobs)]
CamerasDep = Annotated[Cameras, Depends(get_cameras)]
EventsDep = Annotated[EventLog, Depends(get_events)]

"""What a route may ask FastAPI for, each declared once as an ``Annotated`` alias.

A route takes ``services: ServicesDep`` or ``jobs: JobsDep`` instead of repeating
``Depends(...)``, so how a dependency is found is written in one place.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..videos import VideoJobs
from .app_state import Services, get_services


def get_jobs(request: Request) -> VideoJobs:
    """The video jobs of the app serving this request."""
    return request.app.state.videos


ServicesDep = Annotated[Services, Depends(get_services)]
JobsDep = Annotated[VideoJobs, Depends(get_jobs)]

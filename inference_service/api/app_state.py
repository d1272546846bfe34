"""What request handlers share: the process's settings, engine, gallery and worker pool."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from ..analysis.photos import PixelLimits
from ..config import Settings
from ..engine import FaceEngine
from ..gallery import Gallery
from ..gallery.retention import RetentionSweeper
from .workers import InferencePool


@dataclass
class Services:
    """Built once per process in the app's lifespan."""

    settings: Settings
    engine: FaceEngine
    gallery: Gallery
    pool: InferencePool
    sweeper: RetentionSweeper | None = None  # erases expired identities (see gallery/retention.py)

    @property
    def pixel_limits(self) -> PixelLimits:
        return PixelLimits(self.settings.max_pixels, self.settings.max_request_pixels)


def get_services(request: Request) -> Services:
    """Dependency: the services of the app serving this request."""
    return request.app.state.services

"""The one way to build the engine from settings, for the API, the command line and evaluation.

It lives in the core, above both the engine and the gallery, because choosing the embedder needs the
gallery (a gallery written by one embedder keeps it) and the gallery package needs the engine's types.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import Settings
from ..engine import FaceEngine
from ..gallery import stored_embedder

log = logging.getLogger(__name__)


def load_engine(settings: Settings, *, gallery: str | Path | None = None, concurrent_callers: int = 1) -> FaceEngine:
    """Load the models; with ``gallery`` given, ``auto`` keeps the embedder that gallery was written
    with, because vectors of two embedders must never be compared.

    ``concurrent_callers``: threads that call the engine at once (the API's workers), which share
    ``FACE_THREADS`` between them.
    """

    stored = stored_embedder(gallery) if gallery is not None else None
    return FaceEngine.from_settings(settings, gallery_embedder=stored, concurrent_callers=concurrent_callers)


def share_passes_if_wanted(engine: FaceEngine, settings: Settings) -> bool:
    """Turn on shared batched passes (``FACE_BATCH``): on with ``on``, or with ``auto`` on CUDA.

    Only the API does this: it is where many callers meet; the command line batches its own frames.
    """
    on_gpu = engine.detector.device.type == "cuda"
    if settings.batch == "on" or (settings.batch == "auto" and on_gpu):
        engine.share_passes(settings.batch_window_ms / 1000.0, settings.batch_max_images)
        log.info(
            "shared passes on: requests within %g ms share one pass of up to %d images",
            settings.batch_window_ms,
            settings.batch_max_images,
        )
        return True
    return False

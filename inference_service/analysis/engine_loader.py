"""The one way to build the engine from settings, for the API, the command line and evaluation.

It lives in the core, above both the engine and the gallery, because choosing the embedder needs the
gallery (a gallery written by one embedder keeps it) and the gallery package needs the engine's types.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..engine import FaceEngine
from ..gallery import stored_embedder


def load_engine(settings: Settings, *, gallery: str | Path | None = None, concurrent_callers: int = 1) -> FaceEngine:
    """Load the models; with ``gallery`` given, ``auto`` keeps the embedder that gallery was written
    with, because vectors of two embedders must never be compared.

    ``concurrent_callers``: threads that call the engine at once (the API's workers), which share
    ``FACE_THREADS`` between them.
    """

    stored = stored_embedder(gallery) if gallery is not None else None
    return FaceEngine.from_settings(settings, gallery_embedder=stored, concurrent_callers=concurrent_callers)

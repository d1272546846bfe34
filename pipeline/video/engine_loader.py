"""Building the face engine for a command, from the same ``FACE_*`` settings as the API.

Models load here, when a command needs them, never at import. When a gallery file is involved its
embedder wins (``auto`` resolves to it), because vectors of two embedders must never be compared.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import PipelineError

log = logging.getLogger(__name__)


def load_engine(embedder: str | None = None, gallery: str | Path | None = None):
    """A ``FaceEngine`` configured from the environment, with ``embedder`` overriding FACE_EMBEDDER."""
    from inference_service.analysis.engine_loader import load_engine as load_service_engine
    from inference_service.config import Settings
    from inference_service.gallery import stored_embedder

    overrides: dict[str, Any] = {"embedder": embedder} if embedder else {}
    try:
        settings = Settings(**overrides)
    except ValueError as exc:
        raise PipelineError(f"invalid settings: {exc}") from None
    stored = stored_embedder(gallery) if gallery is not None else None
    if stored and settings.embedder not in ("auto", stored):
        raise PipelineError(
            f"gallery {gallery} holds {stored} embeddings but {settings.embedder} was asked for; "
            "vectors of different embedders cannot be compared"
        )
    try:
        engine = load_service_engine(settings, gallery=gallery)
    except RuntimeError as exc:  # missing weights, FACE_DEVICE=cuda without a GPU
        raise PipelineError(f"cannot load the face models: {exc}") from None
    # Frames are independent: on a CPU, FACE_THREADS frames at once beat threads within one.
    engine.parallelize_images(settings.threads)
    return engine

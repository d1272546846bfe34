"""Where annotate's faces get their candidate identities: a local gallery file or the API.

Both give, per analysed frame, the faces with their top gallery candidates, so tracking and
naming are the same code either way. Locally the engine analyses frames in batches and the
gallery is searched in process (embeddings are kept for tracking). The API has no endpoint that
returns gallery embeddings, so there each frame goes to ``POST /recognize`` (two requests in
flight, to keep the server's worker pool busy) and tracks link on overlap alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from inference_service.analysis.matcher import EngineMatcher
from inference_service.analysis.tracking import Detection

from ..errors import PipelineError
from .api import api_client

API_JPEG_QUALITY = 90
API_CONCURRENCY = 2  # the API's default worker count


class LocalMatcher(EngineMatcher):
    """Engine + gallery (a SQLite file or a PostgreSQL URL) loaded for this command."""

    def __init__(self, gallery_path: str | Path, embedder: str | None = None, threshold: float | None = None) -> None:
        from inference_service.gallery import Gallery, GalleryError
        from inference_service.gallery.factory import describe, preflight

        from .engine_loader import load_engine

        try:
            preflight(gallery_path, must_exist=True)  # a gallery to name faces from, never a new empty one
        except GalleryError as exc:
            raise PipelineError(str(exc)) from None
        try:
            engine = load_engine(embedder, gallery=gallery_path)
            gallery = Gallery.open(gallery_path, engine.embedder.name, engine.embedder.dim)
        except GalleryError as exc:
            raise PipelineError(f"cannot open gallery {describe(gallery_path)}: {exc}") from None
        shown = describe(gallery_path)
        if not gallery.identities():
            raise PipelineError(f"gallery {shown} has no identities: enroll someone first")
        super().__init__(engine, gallery, threshold, source=f"gallery {shown}")

    def close(self) -> None:
        self.gallery.close()


class ApiMatcher:
    """``POST /recognize`` per analysed frame."""

    def __init__(self, url: str, threshold: float | None = None) -> None:
        self.client = api_client(url)
        health = self.client.health()
        self.threshold = float(health["embedder"]["threshold"]) if threshold is None else threshold
        self.embedder = health["embedder"]["name"]
        if not health.get("gallery", {}).get("identities", 1):
            raise PipelineError(f"the API at {url} has no enrolled identities: enroll someone first")
        self.source = f"api {url}"
        self._pool = ThreadPoolExecutor(max_workers=API_CONCURRENCY)

    def _one(self, frame_rgb: np.ndarray, index: int) -> list[Detection]:
        ok, data = cv2.imencode(
            ".jpg", cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, API_JPEG_QUALITY]
        )
        if not ok:
            raise PipelineError(f"cannot encode frame {index} as JPEG")
        answer = self.client.recognize(data.tobytes())
        return [
            Detection(
                index,
                tuple(float(v) for v in face["box"]),  # type: ignore[arg-type]
                float(face.get("score", 1.0)),
                None,
                {c["identity"]: float(c["similarity"]) for c in face.get("candidates", [])},
            )
            for face in answer.get("faces", [])
        ]

    def analyze(self, frames_rgb: Sequence[np.ndarray], indices: Sequence[int]) -> list[list[Detection]]:
        return list(self._pool.map(self._one, frames_rgb, indices))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

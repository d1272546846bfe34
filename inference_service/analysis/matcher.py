"""Faces and their gallery candidates for a batch of frames, from an engine and a gallery in this process.

The one matcher the core owns: video jobs, live cameras and the CLI's local gallery all name
faces through it, so tracking sees the same detections, embeddings and candidates everywhere.
(The CLI's matcher over HTTP lives in ``pipeline/video/matchers.py``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .quality import FaceQuality
from .templates import identity_scores, track_threshold_for
from .tracking import Detection


class FrameMatcher(Protocol):
    """What tracking needs from wherever faces get their candidates (this process, or the API)."""

    threshold: float
    embedder: str
    source: str

    def analyze(self, frames_rgb: Sequence[np.ndarray], indices: Sequence[int]) -> list[list[Detection]]: ...

    def close(self) -> None: ...


class EngineMatcher:
    """An engine and a gallery already open in this process (the API's video jobs use theirs).

    ``workers`` frames are detected at once, one torch thread each (see
    ``FaceEngine.detect_batch``); an empty gallery is allowed: every face is then unknown.
    """

    MAX_CANDIDATES = 20

    def __init__(
        self, engine, gallery, threshold: float | None = None, workers: int | None = None, source: str = "engine"
    ) -> None:
        self.engine = engine
        self.gallery = gallery
        self.workers = workers
        self.threshold = engine.threshold if threshold is None else threshold
        self.track_threshold = track_threshold_for(self.threshold)
        self.embedder = engine.embedder.name
        self.source = source

    def analyze(self, frames_rgb: Sequence[np.ndarray], indices: Sequence[int]) -> list[list[Detection]]:
        analysed = self.engine.analyze_batch(list(frames_rgb), workers=self.workers)
        flat = [a for faces in analysed for a in faces]
        top_k = max(1, min(len(self.gallery.identities()), self.MAX_CANDIDATES))
        found = self.gallery.search(np.stack([a.embedding for a in flat]), self.threshold, top_k) if flat else []
        out: list[list[Detection]] = []
        k = 0
        for index, frame, faces in zip(indices, frames_rgb, analysed):
            row = []
            for a in faces:
                candidates = {c.identity: c.similarity for c in found[k].candidates}
                quality = FaceQuality.of(frame, a.face.box)
                row.append(
                    Detection(
                        index,
                        a.face.box,
                        a.face.score,
                        a.embedding,
                        candidates,
                        landmarks=np.asarray(a.face.landmarks, dtype=np.float32),
                        sharpness=quality.sharpness,
                        brightness=quality.brightness,
                    )
                )
                k += 1
            out.append(row)
        return out

    def template_candidates(self, template: np.ndarray) -> dict[str, float]:
        """Identity -> score of a track template: the better of its best single gallery face
        and the identity's template (templates.identity_scores), for its top identities."""
        top_k = max(1, min(len(self.gallery.identities()), self.MAX_CANDIDATES))
        found = self.gallery.search(np.asarray(template, dtype=np.float32)[None], self.threshold, top_k)[0]
        single = {c.identity: c.similarity for c in found.candidates}
        faces = {}
        for name in single:
            records = self.gallery.faces_of(name)
            if records:
                faces[name] = np.stack([f.embedding for f in records])
        return identity_scores(template, single, faces)

    def close(self) -> None:
        """The engine and gallery belong to the caller."""

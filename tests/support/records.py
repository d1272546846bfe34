"""Gallery records with random unit vectors, for the store suites."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np

from inference_service.gallery import FaceRecord

DIM = 128


EMBEDDER = "dlib-resnet"


def make_records(identity: str, count: int, seed: int, box: bool = True) -> list[FaceRecord]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC) + timedelta(minutes=seed)
    return [
        FaceRecord(
            face_id=uuid.uuid4().hex,
            identity=identity,
            embedding=vectors[i],
            embedder=EMBEDDER,
            created_at=(start + timedelta(microseconds=i)).isoformat(timespec="microseconds"),
            box=(10.0 + i, 20.0, 110.5, 140.25) if box else None,
        )
        for i in range(count)
    ]

"""A gallery store that keeps nothing after the process: for tests, benchmarks and dry runs."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from .names import identity_key
from .store import FaceRecord, FaceTable, GalleryStore


class MemoryStore(GalleryStore):
    """A store that keeps nothing after the process: for tests, benchmarks and dry runs."""

    def __init__(self) -> None:
        self._records: list[FaceRecord] = []
        self._lock = threading.Lock()

    def embedder(self) -> str | None:
        return self._records[0].embedder if self._records else None

    def load_all(self) -> list[FaceRecord]:
        with self._lock:
            return sorted(self._records, key=lambda r: r.identity)

    def load_table(self, dim: int) -> FaceTable:
        with self._lock:
            records = list(self._records)  # in the order added; no sort needed for the index
        return FaceTable.from_records(records, dim)

    def add_faces(self, records: Sequence[FaceRecord]) -> None:
        with self._lock:
            self._records.extend(records)

    def delete_identity(self, identity: str) -> int:
        key = identity_key(identity)
        with self._lock:
            before = len(self._records)
            self._records = [r for r in self._records if identity_key(r.identity) != key]
            gone = before - len(self._records)
        return gone if gone else -1

    def delete_face(self, identity: str, face_id: str) -> bool:
        key = identity_key(identity)
        with self._lock:
            before = len(self._records)
            self._records = [r for r in self._records if not (identity_key(r.identity) == key and r.face_id == face_id)]
            return len(self._records) < before

    def close(self) -> None:
        pass

"""A gallery store that keeps nothing after the process: for tests, benchmarks and dry runs."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from .errors import IdentityExistsError, IdentityNotFoundError
from .names import identity_key
from .store import FaceRecord, FaceTable, GalleryStore


class MemoryStore(GalleryStore):
    """A store that keeps nothing after the process: for tests, benchmarks and dry runs."""

    def __init__(self) -> None:
        self._records: list[FaceRecord] = []
        self._dismissed: set[tuple[str, str]] = set()
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

    def _name(self, identity: str) -> str | None:
        key = identity_key(identity)
        return next((r.identity for r in self._records if identity_key(r.identity) == key), None)

    def _relabel(self, face_ids: set[str], name: str) -> None:
        self._records = [replace(r, identity=name) if r.face_id in face_ids else r for r in self._records]

    def rename_identity(self, identity: str, new_name: str) -> tuple[str, list[str]]:
        with self._lock:
            old = self._name(identity)
            if old is None:
                raise IdentityNotFoundError(identity)
            taken = self._name(new_name)
            if taken is not None and identity_key(taken) != identity_key(old):
                raise IdentityExistsError(taken)
            ids = [r.face_id for r in self._records if r.identity == old]
            self._relabel(set(ids), new_name)
        return new_name, ids

    def merge_identity(self, identity: str, into: str) -> tuple[str, list[str]]:
        with self._lock:
            source, target = self._name(identity), self._name(into)
            if source is None or target is None:
                raise IdentityNotFoundError(into if source else identity)
            if source == target:
                return target, []
            ids = [r.face_id for r in self._records if r.identity == source]
            self._relabel(set(ids), target)
        return target, ids

    def move_face(self, identity: str, face_id: str, to: str) -> str:
        with self._lock:
            source = self._name(identity)
            if source is None or not any(r.identity == source and r.face_id == face_id for r in self._records):
                raise IdentityNotFoundError(identity, face_id)
            target = self._name(to) or to
            self._relabel({face_id}, target)
        return target

    def dismiss_pair(self, a: str, b: str) -> None:
        with self._lock:
            for name in (a, b):
                if self._name(name) is None:
                    raise IdentityNotFoundError(name)
            x, y = identity_key(a), identity_key(b)
            self._dismissed.add((min(x, y), max(x, y)))

    def dismissed_pairs(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._dismissed)

    def close(self) -> None:
        pass

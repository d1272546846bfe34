"""Durable storage of enrolled faces: the interface every store implements, and its records.

The in-memory index answers searches; a store is what survives a restart. Keeping it behind
``GalleryStore`` lets a server database replace SQLite without touching search or the API. The
stores: ``sqlite_store`` (one file), ``pg_store`` (PostgreSQL, shared by replicas) and
``memory_store`` (nothing kept); ``factory.open_store`` picks one from ``FACE_GALLERY``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from .audit import AuditEvent, AuditQuery, IdentityTerms, WriteContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceRecord:
    """One enrolled face. ``box`` is where it was found in the (discarded) source image;
    ``thumbnail`` a small JPEG crop of the face kept for people to see (stores write it, memory
    never holds it: ``GalleryStore.thumbnail`` reads it back)."""

    face_id: str
    identity: str
    embedding: np.ndarray
    embedder: str
    created_at: str
    box: tuple[float, float, float, float] | None = None
    thumbnail: bytes | None = None


@dataclass(frozen=True)
class FaceTable:
    """Every stored face column by column: what a gallery loads at start-up.

    A million faces as a million ``FaceRecord`` objects cost seconds and several times the
    vectors' own memory; as a few arrays they load in one pass and cost little beyond the vectors.
    """

    face_ids: np.ndarray  # (n,) "S32": the uuid hex of each face
    identity: np.ndarray  # (n,) int32: index into ``names``
    names: list[str]  # display name of each identity (first spelling enrolled)
    embeddings: np.ndarray  # (n, dim) float32, unit rows
    created_at: np.ndarray  # (n,) datetime64[us], UTC
    boxes: np.ndarray  # (n, 4) float32; NaN where the box is unknown

    @classmethod
    def from_records(cls, records: Sequence[FaceRecord], dim: int) -> FaceTable:
        names: dict[str, int] = {}
        identity = np.fromiter((names.setdefault(r.identity, len(names)) for r in records), np.int32, len(records))
        return cls(
            face_ids=np.array([r.face_id for r in records], dtype="S32").reshape(len(records)),
            identity=identity,
            names=list(names),
            embeddings=(
                np.stack([np.asarray(r.embedding, np.float32) for r in records])
                if records
                else np.zeros((0, dim), np.float32)
            ),
            created_at=np.array(
                [np.datetime64(r.created_at.replace("+00:00", ""), "us") for r in records], dtype="datetime64[us]"
            ).reshape(len(records)),
            boxes=np.array([r.box if r.box is not None else (np.nan,) * 4 for r in records], dtype=np.float32).reshape(
                len(records), 4
            ),
        )


class GalleryStore(ABC):
    """What the gallery needs from persistent storage. Each call is atomic."""

    # True for a store several processes write (PostgreSQL): each then follows the others' changes
    # (``replica.start_sync``).
    replicated: bool = False

    @abstractmethod
    def embedder(self) -> str | None:
        """The embedder whose vectors this store holds, or None while it is empty."""

    @abstractmethod
    def load_all(self) -> list[FaceRecord]:
        """Every face, ordered by identity, then in the order it was added."""

    def load_table(self, dim: int) -> FaceTable:
        """Every face as columns (stores override this with a bulk read)."""
        return FaceTable.from_records(self.load_all(), dim)

    @abstractmethod
    def add_faces(self, records: Sequence[FaceRecord]) -> None:
        """Store all records or none of them."""

    @abstractmethod
    def delete_identity(self, identity: str) -> int:
        """Remove an identity and all its faces for good; returns how many faces went."""

    @abstractmethod
    def delete_face(self, identity: str, face_id: str) -> bool:
        """Remove one face; drops the identity when it was its last face."""

    def thumbnail(self, identity: str, face_id: str) -> bytes | None:
        """The JPEG crop kept for a face of ``identity`` (any case), None when there is none."""
        return None

    @abstractmethod
    def close(self) -> None: ...

    # -- curation: each one transaction, audited, carried to replicas ----------------------------
    @abstractmethod
    def rename_identity(self, identity: str, new_name: str) -> tuple[str, list[str]]:
        """Give ``identity`` the name ``new_name`` (a change of case or spelling included);
        returns (the new name, its face ids). ``IdentityNotFoundError`` when absent,
        ``IdentityExistsError`` when another identity has the name."""

    @abstractmethod
    def merge_identity(self, identity: str, into: str) -> tuple[str, list[str]]:
        """Move every face of ``identity`` into ``into`` and remove ``identity``; both histories
        and consent records are kept, the earlier expiry wins. Returns (the target's name, the
        face ids moved)."""

    def dismiss_pair(self, a: str, b: str) -> None:
        """Remember that ``a`` and ``b`` are not the same person (the report stops suggesting
        them); ``IdentityNotFoundError`` when either is absent. Forgotten when either is erased
        or merged away."""
        raise NotImplementedError

    def dismissed_pairs(self) -> set[tuple[str, str]]:
        """The dismissed pairs as (name key, name key), the smaller key first."""
        return set()

    @abstractmethod
    def move_face(self, identity: str, face_id: str, to: str) -> str:
        """Move one face to ``to`` (created when new, with the write context's consent and
        expiry); a source left empty is removed. Returns the target's name."""

    # -- people's data: consent, expiry, audit (stores that keep nothing answer empty) ---------
    def identity_terms(self, identity: str) -> IdentityTerms | None:
        """The consent record and expiry of ``identity`` (any case), None when absent."""
        return None

    def all_terms(self) -> dict[str, IdentityTerms]:
        """Every identity's terms by name key (one read, for listings)."""
        return {}

    def restore_terms(self, terms: Sequence[IdentityTerms]) -> None:  # noqa: B027 - optional: a no-op by default
        """Set consent records and expiries copied from another store where this one has none
        (``copy``); identities this store lacks are skipped."""

    def audit_events(self, query: AuditQuery) -> list[AuditEvent]:
        """Audit rows matching ``query``, oldest first, after ``query.after``."""
        return []

    def expired_identities(self, now: datetime) -> list[str]:
        """Names whose ``expires_at`` is at or before ``now``."""
        return []

    def next_expiry(self) -> str | None:
        """The earliest ``expires_at`` of any identity."""
        return None

    def export_identity(self, identity: str, context: WriteContext) -> dict | None:
        """Everything stored about ``identity`` read in one transaction that also records the export."""
        return None

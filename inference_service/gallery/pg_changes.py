"""The PostgreSQL gallery's change log: what replicas read to apply each other's writes.

Every write transaction appends one row to ``gallery_changes`` (a monotonic ``seq``, the
operation, the identity's name and the face ids, never an embedding: a replica re-reads added
faces by id, so an erased person's vectors do not linger in the log) and NOTIFYs ``CHANNEL``
with the ``seq``. Replicas (``replica.py``) read the entries after the last one they applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Protocol

import numpy as np
import psycopg

from .store import FaceRecord

CHANNEL = "face_gallery"
# Entries whose faces a replica re-reads: added ones, and moved ones (rename, merge, move) with
# the identity they belong to now.
REREAD = ("add", "move")


def face_hex(face_id: Any) -> str:
    return face_id.hex if isinstance(face_id, uuid.UUID) else str(face_id)


@dataclass(frozen=True)
class Change:
    """One committed gallery write, as a replica applies it."""

    seq: int
    op: str  # add | delete_identity | delete_face | move (faces that left ``name``)
    name: str  # display name of the identity
    face_ids: tuple[str, ...]
    records: tuple[FaceRecord, ...] = ()  # for adds and moves: the faces as stored when the log was read


@dataclass(frozen=True)
class ChangeBatch:
    """What a replica reads after ``after``: the changes in order, or ``trimmed`` when the log
    no longer reaches back that far (the replica must then reload everything)."""

    after: int
    changes: list[Change] = field(default_factory=list)
    latest: int = 0
    trimmed: bool = False


class WriteObserver(Protocol):
    """Told about each write of this process (``replica.ReplicaSync``): reads, inside the write's
    transaction, what others committed before it, and is told once it committed. ``lock`` (the
    gallery's reentrant write lock) is held from before the read until after the commit."""

    @property
    def lock(self) -> Any: ...

    def before_write(self, read: Callable[[int], ChangeBatch]) -> ChangeBatch: ...

    def after_commit(self, earlier: ChangeBatch, seq: int | None) -> None: ...


# -- helpers shared by the store's reads and the replica's catch-up --------------------------------
def log_position(cur: psycopg.Cursor) -> int:
    """The last committed change (or the trimmed position when the log is empty)."""
    cur.execute(
        "SELECT greatest((SELECT max(seq) FROM gallery_changes), "
        "(SELECT value::bigint FROM gallery_meta WHERE key = 'trimmed_through'), 0)"
    )
    return int(one(cur))


def one(cur: psycopg.Cursor) -> Any:
    """The first column of the one row a query answers (an aggregate, a RETURNING)."""
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("PostgreSQL answered no row where one was due")
    return row[0]


def box_of(values: Sequence[Any]) -> tuple[float, float, float, float] | None:
    x1, y1, x2, y2 = values
    return None if x1 is None else (float(x1), float(y1), float(x2), float(y2))


def face_record(row: Sequence[Any], embedder: str) -> FaceRecord:
    face_id, name, blob, created_at, *box = row
    return FaceRecord(
        face_id=face_hex(face_id),
        identity=name,
        embedding=np.frombuffer(blob, dtype="<f4").astype(np.float32),
        embedder=embedder,
        created_at=created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        box=box_of(box),
    )


def read_changes_after(cur: psycopg.Cursor, after: int, embedder: str) -> ChangeBatch:
    cur.execute("SELECT value::bigint FROM gallery_meta WHERE key = 'trimmed_through'")
    row = cur.fetchone()
    latest = log_position(cur)
    if row is not None and after < row[0]:
        return ChangeBatch(after, [], latest, trimmed=True)
    cur.execute("SELECT seq, op, name, face_ids FROM gallery_changes WHERE seq > %s ORDER BY seq", (after,))
    entries = cur.fetchall()
    wanted = [fid for seq, op, name, ids in entries if op in REREAD for fid in ids]
    faces: dict[str, FaceRecord] = {}
    if wanted:
        cur.execute(
            "SELECT f.face_id, i.name, f.embedding, f.created_at, f.box_x1, f.box_y1, f.box_x2, f.box_y2 "
            "FROM gallery_faces f JOIN gallery_identities i ON i.id = f.identity_id "
            "WHERE f.face_id = ANY(%s) ORDER BY f.row_id",
            (wanted,),
        )
        faces = {rec.face_id: rec for rec in (face_record(r, embedder) for r in cur)}
    changes = []
    for seq, op, name, ids in entries:
        hex_ids = tuple(face_hex(i) for i in ids)
        records = tuple(faces[i] for i in hex_ids if i in faces) if op in REREAD else ()
        changes.append(Change(int(seq), op, name, hex_ids, records))
    return ChangeBatch(after, changes, max(latest, after))

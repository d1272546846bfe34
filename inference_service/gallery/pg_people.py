"""People's data in the PostgreSQL gallery: consent, expiry, the audit trail and the export.

Method for method the same as ``sqlite_people.SQLitePeople`` (same names, same order), so a
reader sees the parallel and a change to one is easily made to the other. The private helpers
run inside the caller's write transaction (``cur``), so a person's faces, consent record and
audit row are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import psycopg

from .audit import AuditEvent, AuditQuery, IdentityTerms, WriteContext, utc_text
from .export import export_document
from .names import identity_key, name_key
from .pg_changes import face_hex
from .store import FaceRecord


class PostgresPeople:
    """The people's-data half of ``PostgresStore`` (which provides ``_cursor``)."""

    @staticmethod
    def _append_audit(
        cur: psycopg.Cursor, action: str, name: str | None, face_ids: Sequence[str], context: WriteContext
    ) -> int:
        cur.execute(
            "INSERT INTO gallery_audit (action, name, name_key, face_ids, key_label, client) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING seq",
            (
                action,
                name,
                None if name is None else name_key(name),
                list(face_ids),
                context.actor.key_label,
                context.actor.client,
            ),
        )
        return int(cur.fetchone()[0])

    def _erased(
        self, cur: psycopg.Cursor, name: str, face_ids: Sequence[str], action: str, context: WriteContext
    ) -> None:
        seq = self._append_audit(cur, action, name, face_ids, context)
        if context.forget_names:
            cur.execute(
                "UPDATE gallery_audit SET name = NULL, name_key = NULL WHERE name_key = %s AND seq < %s",
                (name_key(name), seq),
            )

    def _record_enrollment(
        self,
        cur: psycopg.Cursor,
        identity_id: int,
        name: str,
        group: Sequence[FaceRecord],
        ids: Sequence[Any],
        context: WriteContext,
    ) -> None:
        at = datetime.fromisoformat(group[0].created_at)
        if context.consent is not None:
            cur.execute(
                "UPDATE gallery_identities SET consent = %s, consent_at = %s, consent_by = %s WHERE id = %s",
                (context.consent, at, context.actor.key_label, identity_id),
            )
        if context.expires_at is not None:
            cur.execute(
                "UPDATE gallery_identities SET expires_at = %s WHERE id = %s", (context.expires_at, identity_id)
            )
        self._append_audit(cur, "enroll", name, [face_hex(i) for i in ids], context)

    @staticmethod
    def _terms(cur: psycopg.Cursor, identity: str) -> tuple[int, IdentityTerms] | None:
        cur.execute(
            "SELECT id, name, created_at, consent, consent_at, consent_by, expires_at FROM gallery_identities "
            "WHERE name_key = %s",
            (name_key(identity),),
        )
        row = cur.fetchone()
        return None if row is None else (row[0], _terms_of(row[1:]))

    def restore_terms(self, terms: Sequence[IdentityTerms]) -> None:
        """Not a change replicas need to apply (terms are read from the database), so no log entry."""
        with self._cursor() as cur:
            for t in terms:
                key = identity_key(t.name)  # names an older rule let in are folded, not refused
                if t.consent is not None:
                    cur.execute(
                        "UPDATE gallery_identities SET consent = %s, consent_at = %s, consent_by = %s "
                        "WHERE name_key = %s AND consent IS NULL",
                        (t.consent, t.consent_at, t.consent_by, key),
                    )
                if t.expires_at is not None:
                    cur.execute(
                        "UPDATE gallery_identities SET expires_at = %s WHERE name_key = %s AND expires_at IS NULL",
                        (t.expires_at, key),
                    )

    def all_terms(self) -> dict[str, IdentityTerms]:
        with self._cursor() as cur:
            cur.execute(
                "SELECT name_key, name, created_at, consent, consent_at, consent_by, expires_at FROM gallery_identities"
            )
            return {row[0]: _terms_of(row[1:]) for row in cur.fetchall()}

    def identity_terms(self, identity: str) -> IdentityTerms | None:
        with self._cursor() as cur:
            found = self._terms(cur, identity)
        return None if found is None else found[1]

    @staticmethod
    def _events(cur: psycopg.Cursor, query: AuditQuery) -> list[AuditEvent]:
        where, args = query.where("%s", lambda bound: bound)
        cur.execute(
            "SELECT seq, at, action, name, face_ids, key_label, client FROM gallery_audit WHERE "
            + where
            + " ORDER BY seq LIMIT %s",
            (*args, query.limit),
        )
        return [
            AuditEvent(int(seq), utc_text(at), action, name, tuple(ids), label, client)
            for seq, at, action, name, ids, label, client in cur.fetchall()
        ]

    def audit_events(self, query: AuditQuery) -> list[AuditEvent]:
        with self._cursor() as cur:
            return self._events(cur, query)

    def expired_identities(self, now: datetime) -> list[str]:
        with self._cursor() as cur:
            cur.execute("SELECT name FROM gallery_identities WHERE expires_at <= %s ORDER BY expires_at", (now,))
            return [r[0] for r in cur.fetchall()]

    def next_expiry(self) -> str | None:
        with self._cursor() as cur:
            cur.execute("SELECT min(expires_at) FROM gallery_identities")
            found = cur.fetchone()[0]
        return None if found is None else utc_text(found)

    def export_identity(self, identity: str, context: WriteContext) -> dict | None:
        with self._cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            found = self._terms(cur, identity)
            if found is None:
                return None
            ident, terms = found
            cur.execute(
                "SELECT face_id, embedding, created_at, box_x1, box_y1, box_x2, box_y2 FROM gallery_faces "
                "WHERE identity_id = %s ORDER BY row_id",
                (ident,),
            )
            faces = [
                {
                    "face_id": face_hex(face_id),
                    "box": None if box[0] is None else [float(v) for v in box],
                    "created_at": utc_text(created),
                    "embedding": np.frombuffer(blob, dtype="<f4").astype(float).tolist(),
                }
                for face_id, blob, created, *box in cur.fetchall()
            ]
            self._append_audit(cur, "export", terms.name, [f["face_id"] for f in faces], context)
            events = self._events(cur, AuditQuery(identity=terms.name, limit=1_000_000))
        return export_document(terms, faces, events)


def _terms_of(row: Sequence[Any]) -> IdentityTerms:
    name, created, consent, consent_at, consent_by, expires = row
    return IdentityTerms(
        name,
        utc_text(created),
        consent,
        None if consent_at is None else utc_text(consent_at),
        consent_by,
        None if expires is None else utc_text(expires),
    )

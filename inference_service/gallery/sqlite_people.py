"""People's data in the SQLite gallery: consent, expiry, the audit trail and the export.

Method for method the same as ``pg_people.PostgresPeople`` (same names, same order). The
private helpers run inside the caller's write transaction, so a person's faces, consent record
and audit row are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from .audit import AuditEvent, AuditQuery, IdentityTerms, WriteContext, now_utc, utc_text
from .export import export_document
from .names import identity_key
from .store import FaceRecord


class SQLitePeople:
    """The people's-data half of ``SQLiteStore`` (which provides ``_db``, ``_reading`` and
    ``_transaction``)."""

    def _append_audit(self, action: str, name: str | None, face_ids: Sequence[str], context: WriteContext) -> int:
        cursor = self._db.execute(
            "INSERT INTO audit(at, action, name, name_key, face_ids, key_label, client) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                utc_text(now_utc()),
                action,
                name,
                None if name is None else identity_key(name),
                ",".join(face_ids),
                context.actor.key_label,
                context.actor.client,
            ),
        )
        return int(cursor.lastrowid)

    def _erased(self, name: str, face_ids: Sequence[str], action: str, context: WriteContext) -> None:
        """Audit an erase; with ``forget_names`` the earlier rows lose the person's name."""
        seq = self._append_audit(action, name, face_ids, context)
        if context.forget_names:
            self._db.execute(
                "UPDATE audit SET name = NULL, name_key = NULL WHERE name_key = ? AND seq < ?",
                (identity_key(name), seq),
            )

    def _record_enrollment(self, records: Sequence[FaceRecord], context: WriteContext) -> None:
        name = self._stored_name(records[0].identity)
        at = records[0].created_at
        if context.consent is not None:
            self._db.execute(
                "UPDATE identities SET consent = ?, consent_at = ?, consent_by = ? WHERE name = ?",
                (context.consent, at, context.actor.key_label, name),
            )
        if context.expires_at is not None:
            self._db.execute(
                "UPDATE identities SET expires_at = ? WHERE name = ?", (utc_text(context.expires_at), name)
            )
        self._append_audit("enroll", name, [r.face_id for r in records], context)

    def _terms(self, identity: str) -> IdentityTerms | None:
        row = self._db.execute(
            "SELECT name, created_at, consent, consent_at, consent_by, expires_at FROM identities WHERE name_key = ?",
            (identity_key(identity),),
        ).fetchone()
        return IdentityTerms(*row) if row else None

    def identity_terms(self, identity: str) -> IdentityTerms | None:
        with self._reading():
            return self._terms(identity)

    def restore_terms(self, terms: Sequence[IdentityTerms]) -> None:
        with self._transaction():
            for t in terms:
                key = identity_key(t.name)
                if t.consent is not None:
                    self._db.execute(
                        "UPDATE identities SET consent = ?, consent_at = ?, consent_by = ? "
                        "WHERE name_key = ? AND consent IS NULL",
                        (t.consent, t.consent_at, t.consent_by, key),
                    )
                if t.expires_at is not None:
                    self._db.execute(
                        "UPDATE identities SET expires_at = ? WHERE name_key = ? AND expires_at IS NULL",
                        (utc_text(datetime.fromisoformat(t.expires_at)), key),
                    )

    def all_terms(self) -> dict[str, IdentityTerms]:
        with self._reading():
            rows = self._db.execute(
                "SELECT name_key, name, created_at, consent, consent_at, consent_by, expires_at FROM identities"
            ).fetchall()
        return {key: IdentityTerms(*rest) for key, *rest in rows}

    def _events(self, query: AuditQuery) -> list[AuditEvent]:
        where, args = query.where("?", utc_text)
        rows = self._db.execute(
            "SELECT seq, at, action, name, face_ids, key_label, client FROM audit WHERE "
            + where
            + " ORDER BY seq LIMIT ?",
            (*args, query.limit),
        ).fetchall()
        return [
            AuditEvent(seq, at, action, name, tuple(filter(None, ids.split(","))), label, client)
            for seq, at, action, name, ids, label, client in rows
        ]

    def audit_events(self, query: AuditQuery) -> list[AuditEvent]:
        with self._reading():
            return self._events(query)

    def expired_identities(self, now: datetime) -> list[str]:
        with self._reading():
            rows = self._db.execute(
                "SELECT name FROM identities WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at",
                (utc_text(now),),
            ).fetchall()
        return [r[0] for r in rows]

    def next_expiry(self) -> str | None:
        with self._reading():
            return self._db.execute("SELECT min(expires_at) FROM identities").fetchone()[0]

    def export_identity(self, identity: str, context: WriteContext) -> dict | None:
        with self._transaction():
            terms = self._terms(identity)
            if terms is None:
                return None
            rows = self._db.execute(
                "SELECT face_id, embedding, dim, created_at, box_x1, box_y1, box_x2, box_y2 FROM faces "
                "WHERE identity = ? ORDER BY rowid",
                (terms.name,),
            ).fetchall()
            faces = [
                {
                    "face_id": face_id,
                    "box": None if box[0] is None else list(box),
                    "created_at": created_at,
                    "embedding": np.frombuffer(blob, dtype="<f4", count=dim).astype(float).tolist(),
                }
                for face_id, blob, dim, created_at, *box in rows
            ]
            self._append_audit("export", terms.name, [f["face_id"] for f in faces], context)
            events = self._events(AuditQuery(identity=terms.name, limit=1_000_000))
        return export_document(terms, faces, events)

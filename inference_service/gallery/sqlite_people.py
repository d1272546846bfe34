"""People's data in the SQLite gallery: consent, expiry, the audit trail and the export.

Method for method the same as ``pg_people.PostgresPeople`` (same names, same order): a change to
one is made to the other. The helpers that take ``cur`` run inside the caller's write
transaction, so a person's faces, consent record and audit row are committed together or not at
all. A person is their identity's ``uid``, not their name: a name enrolled again after an erase
starts a history of its own, and every enrollment's consent is kept as history.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime

import numpy as np

from .audit import AuditEvent, AuditQuery, ConsentEntry, IdentityTerms, WriteContext, now_utc, utc_text
from .export import export_document, thumbnail_text
from .names import identity_key

Cursor = sqlite3.Connection  # what ``cur`` is here: SQLite runs statements on the connection


class SQLitePeople:
    """The people's-data half of ``SQLiteStore``, which provides these three."""

    _db: sqlite3.Connection

    def _reading(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    # -- inside a write transaction ------------------------------------------------------------
    @staticmethod
    def _count_deleted(cur: Cursor, rows: int) -> None:
        """Add to the ``deleted_faces`` counter in ``meta``, in the transaction that deleted (or
        rewrote) ``rows`` face rows: a start-up snapshot compares it with the count it recorded to
        know, without reading the table, whether any face it holds changed since (``warm_start``)."""
        if rows:
            cur.execute(
                "INSERT INTO meta(key, value) VALUES ('deleted_faces', ?) ON CONFLICT(key) DO UPDATE SET "
                "value = CAST(CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER) AS TEXT)",
                (str(rows),),
            )

    def _append_audit(
        self,
        cur: Cursor,
        action: str,
        uid: str | None,
        name: str | None,
        face_ids: Sequence[str],
        context: WriteContext,
        consent: str | None = None,
        detail: str | None = None,
    ) -> int:
        row = cur.execute(
            "INSERT INTO audit(at, action, name, name_key, face_ids, key_label, client, identity_uid, consent, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                utc_text(now_utc()),
                action,
                name,
                None if name is None else identity_key(name),
                ",".join(face_ids),
                context.actor.key_label,
                context.actor.client,
                uid,
                consent,
                detail,
            ),
        )
        return int(row.lastrowid or 0)

    def _erased(
        self,
        cur: Cursor,
        uid: str,
        name: str,
        face_ids: Sequence[str],
        action: str,
        context: WriteContext | None,
    ) -> None:
        """The person's consent history goes with them; the erase is audited, and with
        ``forget_names`` their earlier rows lose the name and consent texts."""
        cur.execute("DELETE FROM consents WHERE identity_uid = ?", (uid,))
        cur.execute("DELETE FROM dismissed_pairs WHERE uid_a = ? OR uid_b = ?", (uid, uid))
        if context is None:
            return
        seq = self._append_audit(cur, action, uid, name, face_ids, context)
        if context.forget_names:
            cur.execute(
                "UPDATE audit SET name = NULL, name_key = NULL, consent = NULL "
                "WHERE (identity_uid = ? OR name_key = ?) AND seq < ?",
                (uid, identity_key(name), seq),
            )

    def _record_terms(self, cur: Cursor, uid: str, at: str, context: WriteContext) -> None:
        """An enrollment's consent added to the history (the identity shows the latest) and its expiry."""
        if context.consent is not None:
            cur.execute(
                "INSERT INTO consents(identity_uid, consent, given_at, key_label) VALUES (?, ?, ?, ?)",
                (uid, context.consent, at, context.actor.key_label),
            )
            cur.execute(
                "UPDATE identities SET consent = ?, consent_at = ?, consent_by = ? WHERE uid = ?",
                (context.consent, at, context.actor.key_label, uid),
            )
        if context.expires_at is not None:
            cur.execute("UPDATE identities SET expires_at = ? WHERE uid = ?", (utc_text(context.expires_at), uid))

    def _record_enrollment(
        self, cur: Cursor, uid: str, name: str, face_ids: Sequence[str], at: str, context: WriteContext
    ) -> None:
        """One enrollment: its terms, and its audit row with the consent text."""
        self._record_terms(cur, uid, at, context)
        self._append_audit(cur, "enroll", uid, name, face_ids, context, consent=context.consent)

    def _terms(self, cur: Cursor, identity: str) -> tuple[str, IdentityTerms] | None:
        row = cur.execute(
            "SELECT uid, name, created_at, consent, consent_at, consent_by, expires_at FROM identities "
            "WHERE name_key = ?",
            (identity_key(identity),),
        ).fetchone()
        return None if row is None else (row[0], IdentityTerms(*row[1:]))

    def _consents(self, cur: Cursor, uid: str) -> list[ConsentEntry]:
        rows = cur.execute(
            "SELECT consent, given_at, key_label FROM consents WHERE identity_uid = ? ORDER BY seq", (uid,)
        ).fetchall()
        return [ConsentEntry(*row) for row in rows]

    def _events(self, cur: Cursor, query: AuditQuery) -> list[AuditEvent]:
        where, args = query.where("?", utc_text)
        rows = cur.execute(
            "SELECT seq, at, action, name, face_ids, key_label, client, consent, detail FROM audit WHERE "
            + where
            + " ORDER BY seq LIMIT ?",
            (*args, query.limit),
        ).fetchall()
        return [
            AuditEvent(seq, at, action, name, tuple(filter(None, ids.split(","))), label, client, consent, detail)
            for seq, at, action, name, ids, label, client, consent, detail in rows
        ]

    # -- reads and writes of their own ---------------------------------------------------------
    def identity_terms(self, identity: str) -> IdentityTerms | None:
        with self._reading():
            found = self._terms(self._db, identity)
        return None if found is None else found[1]

    def all_terms(self) -> dict[str, IdentityTerms]:
        with self._reading():
            rows = self._db.execute(
                "SELECT name_key, name, created_at, consent, consent_at, consent_by, expires_at FROM identities"
            ).fetchall()
        return {key: IdentityTerms(*rest) for key, *rest in rows}

    def restore_terms(self, terms: Sequence[IdentityTerms]) -> None:
        with self._transaction():
            cur = self._db
            for t in terms:
                key = identity_key(t.name)  # names an older rule let in are folded, not refused
                if t.consent is not None:
                    done = cur.execute(
                        "UPDATE identities SET consent = ?, consent_at = ?, consent_by = ? "
                        "WHERE name_key = ? AND consent IS NULL",
                        (t.consent, t.consent_at, t.consent_by, key),
                    ).rowcount
                    if done:
                        cur.execute(
                            "INSERT INTO consents(identity_uid, consent, given_at, key_label) "
                            "SELECT uid, consent, IFNULL(consent_at, created_at), consent_by FROM identities "
                            "WHERE name_key = ?",
                            (key,),
                        )
                if t.expires_at is not None:
                    cur.execute(
                        "UPDATE identities SET expires_at = ? WHERE name_key = ? AND expires_at IS NULL",
                        (utc_text(datetime.fromisoformat(t.expires_at)), key),
                    )

    def audit_events(self, query: AuditQuery) -> list[AuditEvent]:
        with self._reading():
            return self._events(self._db, query)

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
        """This person's faces, consent history and audit events (their own: not those of an
        earlier person who had the name), read in the transaction that records the export."""
        with self._transaction():
            cur = self._db
            found = self._terms(cur, identity)
            if found is None:
                return None
            uid, terms = found
            rows = cur.execute(
                "SELECT f.face_id, f.embedding, f.dim, f.created_at, t.jpeg, f.box_x1, f.box_y1, f.box_x2, f.box_y2 "
                "FROM faces f LEFT JOIN face_thumbnails t ON t.face_id = f.face_id "
                "WHERE f.identity = ? ORDER BY f.rowid",
                (terms.name,),
            ).fetchall()
            faces = [
                {
                    "face_id": face_id,
                    "box": None if box[0] is None else list(box),
                    "created_at": created_at,
                    "embedding": np.frombuffer(blob, dtype="<f4", count=dim).astype(float).tolist(),
                    "thumbnail_jpeg_base64": thumbnail_text(jpeg),
                }
                for face_id, blob, dim, created_at, jpeg, *box in rows
            ]
            self._append_audit(cur, "export", uid, terms.name, [f["face_id"] for f in faces], context)
            events = self._events(cur, AuditQuery(identity_uid=uid, limit=1_000_000))
            consents = self._consents(cur, uid)
        return export_document(terms, faces, events, consents)

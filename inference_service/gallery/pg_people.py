"""People's data in the PostgreSQL gallery: consent, expiry, the audit trail and the export.

Method for method the same as ``sqlite_people.SQLitePeople`` (same names, same order): a change
to one is made to the other. The helpers that take ``cur`` run inside the caller's write
transaction, so a person's faces, consent record and audit row are committed together or not at
all. A person is their identity's ``uid``, not their name: a name enrolled again after an erase
starts a history of its own, and every enrollment's consent is kept as history.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import numpy as np
import psycopg

from .audit import AuditEvent, AuditQuery, ConsentEntry, IdentityTerms, WriteContext, utc_text
from .export import export_document, thumbnail_text
from .names import identity_key, name_key
from .pg_changes import face_hex, one

Cursor = psycopg.Cursor


class PostgresPeople:
    """The people's-data half of ``PostgresStore``, which provides ``_cursor``."""

    def _cursor(self, transaction: bool = True) -> AbstractContextManager[psycopg.Cursor]:
        raise NotImplementedError

    # -- inside a write transaction ------------------------------------------------------------
    def _append_audit(
        self,
        cur: Cursor,
        action: str,
        uid: Any,
        name: str | None,
        face_ids: Sequence[str],
        context: WriteContext,
        consent: str | None = None,
        detail: str | None = None,
    ) -> int:
        cur.execute(
            "INSERT INTO gallery_audit (action, name, name_key, face_ids, key_label, client, identity_uid, consent, "
            "detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING seq",
            (
                action,
                name,
                None if name is None else name_key(name),
                list(face_ids),
                context.actor.key_label,
                context.actor.client,
                uid,
                consent,
                detail,
            ),
        )
        return int(one(cur))

    def _erased(
        self,
        cur: Cursor,
        uid: Any,
        name: str,
        face_ids: Sequence[str],
        action: str,
        context: WriteContext | None,
    ) -> None:
        """The person's consent history goes with them; the erase is audited, and with
        ``forget_names`` their earlier rows lose the name and consent texts."""
        cur.execute("DELETE FROM gallery_consents WHERE identity_uid = %s", (uid,))
        cur.execute("DELETE FROM gallery_dismissed_pairs WHERE uid_a = %s OR uid_b = %s", (uid, uid))
        if context is None:
            return
        seq = self._append_audit(cur, action, uid, name, face_ids, context)
        if context.forget_names:
            cur.execute(
                "UPDATE gallery_audit SET name = NULL, name_key = NULL, consent = NULL "
                "WHERE (identity_uid = %s OR name_key = %s) AND seq < %s",
                (uid, identity_key(name), seq),
            )

    def _record_terms(self, cur: Cursor, uid: Any, at: datetime, context: WriteContext) -> None:
        """An enrollment's consent added to the history (the identity shows the latest) and its expiry."""
        if context.consent is not None:
            cur.execute(
                "INSERT INTO gallery_consents (identity_uid, consent, given_at, key_label) VALUES (%s, %s, %s, %s)",
                (uid, context.consent, at, context.actor.key_label),
            )
            cur.execute(
                "UPDATE gallery_identities SET consent = %s, consent_at = %s, consent_by = %s WHERE uid = %s",
                (context.consent, at, context.actor.key_label, uid),
            )
        if context.expires_at is not None:
            cur.execute("UPDATE gallery_identities SET expires_at = %s WHERE uid = %s", (context.expires_at, uid))

    def _record_enrollment(
        self, cur: Cursor, uid: Any, name: str, face_ids: Sequence[str], at: datetime, context: WriteContext
    ) -> None:
        """One enrollment: its terms, and its audit row with the consent text."""
        self._record_terms(cur, uid, at, context)
        self._append_audit(cur, "enroll", uid, name, face_ids, context, consent=context.consent)

    def _terms(self, cur: Cursor, identity: str) -> tuple[Any, IdentityTerms] | None:
        cur.execute(
            "SELECT uid, name, created_at, consent, consent_at, consent_by, expires_at FROM gallery_identities "
            "WHERE name_key = %s",
            (name_key(identity),),
        )
        row = cur.fetchone()
        return None if row is None else (row[0], _terms_of(row[1:]))

    def _consents(self, cur: Cursor, uid: Any) -> list[ConsentEntry]:
        cur.execute(
            "SELECT consent, given_at, key_label FROM gallery_consents WHERE identity_uid = %s ORDER BY seq", (uid,)
        )
        return [ConsentEntry(text, utc_text(at), label) for text, at, label in cur.fetchall()]

    def _events(self, cur: Cursor, query: AuditQuery) -> list[AuditEvent]:
        where, args = query.where("%s", lambda bound: bound)
        cur.execute(
            "SELECT seq, at, action, name, face_ids, key_label, client, consent, detail FROM gallery_audit WHERE "
            + where
            + " ORDER BY seq LIMIT %s",
            (*args, query.limit),
        )
        return [
            AuditEvent(int(seq), utc_text(at), action, name, tuple(ids), label, client, consent, detail)
            for seq, at, action, name, ids, label, client, consent, detail in cur.fetchall()
        ]

    # -- reads and writes of their own ---------------------------------------------------------
    def identity_terms(self, identity: str) -> IdentityTerms | None:
        with self._cursor() as cur:
            found = self._terms(cur, identity)
        return None if found is None else found[1]

    def all_terms(self) -> dict[str, IdentityTerms]:
        with self._cursor() as cur:
            cur.execute(
                "SELECT name_key, name, created_at, consent, consent_at, consent_by, expires_at FROM gallery_identities"
            )
            return {row[0]: _terms_of(row[1:]) for row in cur.fetchall()}

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
                    if cur.rowcount:
                        cur.execute(
                            "INSERT INTO gallery_consents (identity_uid, consent, given_at, key_label) "
                            "SELECT uid, consent, coalesce(consent_at, created_at), consent_by FROM gallery_identities "
                            "WHERE name_key = %s",
                            (key,),
                        )
                if t.expires_at is not None:
                    cur.execute(
                        "UPDATE gallery_identities SET expires_at = %s WHERE name_key = %s AND expires_at IS NULL",
                        (t.expires_at, key),
                    )

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
            found = one(cur)
        return None if found is None else utc_text(found)

    def export_identity(self, identity: str, context: WriteContext) -> dict | None:
        """This person's faces, consent history and audit events (their own: not those of an
        earlier person who had the name), read in the transaction that records the export."""
        with self._cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            found = self._terms(cur, identity)
            if found is None:
                return None
            uid, terms = found
            cur.execute(
                "SELECT f.face_id, f.embedding, f.created_at, t.jpeg, f.box_x1, f.box_y1, f.box_x2, f.box_y2 "
                "FROM gallery_faces f JOIN gallery_identities i ON i.id = f.identity_id "
                "LEFT JOIN gallery_face_thumbnails t ON t.face_id = f.face_id "
                "WHERE i.uid = %s ORDER BY f.row_id",
                (uid,),
            )
            faces = [
                {
                    "face_id": face_hex(face_id),
                    "box": None if box[0] is None else [float(v) for v in box],
                    "created_at": utc_text(created),
                    "embedding": np.frombuffer(blob, dtype="<f4").astype(float).tolist(),
                    "thumbnail_jpeg_base64": thumbnail_text(jpeg),
                }
                for face_id, blob, created, jpeg, *box in cur.fetchall()
            ]
            self._append_audit(cur, "export", uid, terms.name, [f["face_id"] for f in faces], context)
            events = self._events(cur, AuditQuery(identity_uid=uid, limit=1_000_000))
            consents = self._consents(cur, uid)
        return export_document(terms, faces, events, consents)


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

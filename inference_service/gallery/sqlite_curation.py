"""Curating the SQLite gallery: rename, merge, move a face, each one write transaction.

Side by side with ``pg_curation.PostgresCuration`` (same methods, same order). Faces point at
their identity by name here, so a rename or merge rewrites the identity's faces' rows (deferring
the foreign key to the commit): the cost of the identity's faces, not of the gallery.
"""

from __future__ import annotations

import uuid

from .audit import WriteContext, current, now_utc, utc_text
from .errors import IdentityExistsError, IdentityNotFoundError
from .names import identity_key
from .sqlite_people import Cursor, SQLitePeople


class SQLiteCuration(SQLitePeople):
    """Rename, merge and move for ``SQLiteStore``."""

    def _found(self, cur: Cursor, identity: str) -> tuple[str, str, str | None]:
        """(uid, name, expires_at) of an enrolled identity; ``IdentityNotFoundError`` otherwise."""
        row = cur.execute(
            "SELECT uid, name, expires_at FROM identities WHERE name_key = ?", (identity_key(identity),)
        ).fetchone()
        if row is None:
            raise IdentityNotFoundError(identity)
        return row[0], row[1], row[2]

    def _face_ids(self, cur: Cursor, name: str) -> list[str]:
        return [r[0] for r in cur.execute("SELECT face_id FROM faces WHERE identity = ? ORDER BY rowid", (name,))]

    def rename_identity(self, identity: str, new_name: str) -> tuple[str, list[str]]:
        context = current()
        with self._transaction():
            cur = self._db
            uid, old, _ = self._found(cur, identity)
            key = identity_key(new_name)
            if key != identity_key(old):
                taken = cur.execute("SELECT name FROM identities WHERE name_key = ?", (key,)).fetchone()
                if taken is not None:
                    raise IdentityExistsError(taken[0])
            face_ids = self._face_ids(cur, old)
            if new_name == old:
                return old, face_ids
            cur.execute("PRAGMA defer_foreign_keys = ON")  # the identity and its faces change together
            cur.execute("UPDATE identities SET name = ?, name_key = ? WHERE uid = ?", (new_name, key, uid))
            cur.execute("UPDATE faces SET identity = ? WHERE identity = ?", (new_name, old))
            if context is not None:
                self._append_audit(cur, "rename", uid, new_name, face_ids, context, detail=f"from {old!r}")
        return new_name, face_ids

    def merge_identity(self, identity: str, into: str) -> tuple[str, list[str]]:
        context = current()
        with self._transaction():
            cur = self._db
            source_uid, source, source_expiry = self._found(cur, identity)
            target_uid, target, target_expiry = self._found(cur, into)
            if source_uid == target_uid:
                return target, []
            face_ids = self._face_ids(cur, source)
            cur.execute("PRAGMA defer_foreign_keys = ON")
            cur.execute("UPDATE faces SET identity = ? WHERE identity = ?", (target, source))
            cur.execute("DELETE FROM identities WHERE uid = ?", (source_uid,))
            # both people's histories become the merged identity's
            cur.execute("UPDATE consents SET identity_uid = ? WHERE identity_uid = ?", (target_uid, source_uid))
            cur.execute("UPDATE audit SET identity_uid = ? WHERE identity_uid = ?", (target_uid, source_uid))
            expiries = [e for e in (source_expiry, target_expiry) if e is not None]
            cur.execute(
                "UPDATE identities SET expires_at = ?, (consent, consent_at, consent_by) = "
                "(SELECT consent, given_at, key_label FROM consents WHERE identity_uid = ? ORDER BY given_at DESC, "
                "seq DESC LIMIT 1) WHERE uid = ?",
                (min(expiries) if expiries else None, target_uid, target_uid),
            )
            if context is not None:
                self._append_audit(cur, "merge", target_uid, target, face_ids, context, detail=f"from {source!r}")
        return target, face_ids

    def move_face(self, identity: str, face_id: str, to: str) -> str:
        context = current()
        with self._transaction():
            cur = self._db
            source_uid, source, _ = self._found(cur, identity)
            if not cur.execute("SELECT 1 FROM faces WHERE identity = ? AND face_id = ?", (source, face_id)).fetchone():
                raise IdentityNotFoundError(source, face_id)
            try:
                target_uid, target, _ = self._found(cur, to)
            except IdentityNotFoundError:
                target_uid, target = self._created(cur, to, context)
            if target_uid == source_uid:
                return target
            cur.execute("UPDATE faces SET identity = ? WHERE face_id = ?", (target, face_id))
            left = cur.execute("SELECT count(*) FROM faces WHERE identity = ?", (source,)).fetchone()[0]
            if context is not None:
                self._append_audit(cur, "move_face", source_uid, source, [face_id], context, detail=f"to {target!r}")
                self._append_audit(cur, "move_face", target_uid, target, [face_id], context, detail=f"from {source!r}")
            if left == 0:  # the source went with its last face: nothing of it stays
                cur.execute("DELETE FROM identities WHERE uid = ?", (source_uid,))
                self._erased(cur, source_uid, source, [], "delete_identity", None)
        return target

    def _created(self, cur: Cursor, name: str, context: WriteContext | None) -> tuple[str, str]:
        """A new identity for a moved face, with the consent and expiry the request carried."""
        uid = uuid.uuid4().hex
        at = utc_text(now_utc())
        cur.execute(
            "INSERT INTO identities(name, name_key, created_at, uid) VALUES (?, ?, ?, ?)",
            (name, identity_key(name), at, uid),
        )
        if context is not None:
            self._record_terms(cur, uid, at, context)
        return uid, name

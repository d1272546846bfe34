"""Curating the PostgreSQL gallery: rename, merge, move a face, each one logged write transaction.

Side by side with ``sqlite_curation.SQLiteCuration`` (same methods, same order). Each is one
entry ``move`` in the change log naming the identity the faces left and the faces; a replica
re-reads those faces with the identity they belong to now and applies the whole entry under its
write lock, so it never holds half a merge.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .audit import WriteContext, current, now_utc
from .errors import IdentityExistsError, IdentityNotFoundError
from .names import name_key
from .pg_changes import face_hex
from .pg_people import Cursor, PostgresPeople

_HEX = "0123456789abcdef"


class PostgresCuration(PostgresPeople):
    """Rename, merge and move for ``PostgresStore``."""

    def _write(self, work: Callable[[Cursor], tuple[Any, tuple | None]]) -> Any:
        raise NotImplementedError

    def _found(self, cur: Cursor, identity: str) -> tuple[int, Any, str, datetime | None]:
        """(id, uid, name, expires_at) of an enrolled identity, locked; ``IdentityNotFoundError`` otherwise."""
        cur.execute(
            "SELECT id, uid, name, expires_at FROM gallery_identities WHERE name_key = %s FOR UPDATE",
            (name_key(identity),),
        )
        row = cur.fetchone()
        if row is None:
            raise IdentityNotFoundError(identity)
        return row[0], row[1], row[2], row[3]

    def _face_ids(self, cur: Cursor, identity_id: int) -> list[uuid.UUID]:
        cur.execute("SELECT face_id FROM gallery_faces WHERE identity_id = %s ORDER BY row_id", (identity_id,))
        return [r[0] for r in cur.fetchall()]

    def rename_identity(self, identity: str, new_name: str) -> tuple[str, list[str]]:
        context = current()

        def work(cur: Cursor) -> tuple[tuple[str, list[str]], tuple | None]:
            ident, uid, old, _ = self._found(cur, identity)
            key = name_key(new_name)
            if key != name_key(old):
                cur.execute("SELECT name FROM gallery_identities WHERE name_key = %s", (key,))
                taken = cur.fetchone()
                if taken is not None:
                    raise IdentityExistsError(taken[0])
            ids = self._face_ids(cur, ident)
            hexed = [face_hex(i) for i in ids]
            if new_name == old:
                return (old, hexed), None
            cur.execute("UPDATE gallery_identities SET name = %s, name_key = %s WHERE id = %s", (new_name, key, ident))
            if context is not None:
                self._append_audit(cur, "rename", uid, new_name, hexed, context, detail=f"from {old!r}")
            return (new_name, hexed), ("move", name_key(old), old, ids)

        return self._write(work)

    def merge_identity(self, identity: str, into: str) -> tuple[str, list[str]]:
        context = current()

        def work(cur: Cursor) -> tuple[tuple[str, list[str]], tuple | None]:
            source_id, source_uid, source, source_expiry = self._found(cur, identity)
            target_id, target_uid, target, target_expiry = self._found(cur, into)
            if source_id == target_id:
                return (target, []), None
            ids = self._face_ids(cur, source_id)
            cur.execute("UPDATE gallery_faces SET identity_id = %s WHERE identity_id = %s", (target_id, source_id))
            cur.execute("DELETE FROM gallery_identities WHERE id = %s", (source_id,))
            # both people's histories become the merged identity's
            cur.execute(
                "UPDATE gallery_consents SET identity_uid = %s WHERE identity_uid = %s", (target_uid, source_uid)
            )
            cur.execute("UPDATE gallery_audit SET identity_uid = %s WHERE identity_uid = %s", (target_uid, source_uid))
            cur.execute("DELETE FROM gallery_dismissed_pairs WHERE uid_a = %s OR uid_b = %s", (source_uid, source_uid))
            expiries = [e for e in (source_expiry, target_expiry) if e is not None]
            cur.execute(
                "UPDATE gallery_identities SET expires_at = %s, (consent, consent_at, consent_by) = "
                "(SELECT consent, given_at, key_label FROM gallery_consents WHERE identity_uid = %s "
                "ORDER BY given_at DESC, seq DESC LIMIT 1) WHERE id = %s",
                (min(expiries) if expiries else None, target_uid, target_id),
            )
            hexed = [face_hex(i) for i in ids]
            if context is not None:
                self._append_audit(cur, "merge", target_uid, target, hexed, context, detail=f"from {source!r}")
            return (target, hexed), ("move", name_key(source), source, ids)

        return self._write(work)

    def move_face(self, identity: str, face_id: str, to: str) -> str:
        context = current()
        if len(face_id) != 32 or any(c not in _HEX for c in face_id):
            raise IdentityNotFoundError(identity, face_id)

        def work(cur: Cursor) -> tuple[str, tuple | None]:
            source_id, source_uid, source, _ = self._found(cur, identity)
            cur.execute(
                "SELECT 1 FROM gallery_faces WHERE identity_id = %s AND face_id = %s", (source_id, uuid.UUID(face_id))
            )
            if cur.fetchone() is None:
                raise IdentityNotFoundError(source, face_id)
            try:
                target_id, target_uid, target, _ = self._found(cur, to)
            except IdentityNotFoundError:
                target_id, target_uid, target = self._created(cur, to, context)
            if target_id == source_id:
                return target, None
            cur.execute("UPDATE gallery_faces SET identity_id = %s WHERE face_id = %s", (target_id, uuid.UUID(face_id)))
            if context is not None:
                self._append_audit(cur, "move_face", source_uid, source, [face_id], context, detail=f"to {target!r}")
                self._append_audit(cur, "move_face", target_uid, target, [face_id], context, detail=f"from {source!r}")
            cur.execute(
                "DELETE FROM gallery_identities i WHERE i.id = %s "
                "AND NOT EXISTS (SELECT 1 FROM gallery_faces f WHERE f.identity_id = i.id)",
                (source_id,),
            )
            if cur.rowcount:  # the source went with its last face: nothing of it stays
                self._erased(cur, source_uid, source, [], "delete_identity", None)
            return target, ("move", name_key(source), source, [uuid.UUID(face_id)])

        return self._write(work)

    def dismiss_pair(self, a: str, b: str) -> None:
        """Not in the change log (only the report reads it, from the database), but serialised
        with the other writes so the audit trail's order is the commit order. Audited once, in
        each identity's trail (naming the other), the first time the pair is dismissed."""
        context = current()

        def work(cur: Cursor) -> tuple[None, None]:
            first, second = self._found(cur, a), self._found(cur, b)
            pair = sorted((first[1], second[1]), key=str)
            cur.execute(
                "INSERT INTO gallery_dismissed_pairs (uid_a, uid_b, key_label) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (*pair, None if context is None else context.actor.key_label),
            )
            if cur.rowcount and context is not None:
                for (_, uid, name, _), (_, _, other, _) in ((first, second), (second, first)):
                    detail = f"not the same person as {other!r}"
                    self._append_audit(cur, "dismiss_pair", uid, name, [], context, detail=detail)
            return None, None

        self._write(work)

    def dismissed_pairs(self) -> set[tuple[str, str]]:
        with self._cursor() as cur:
            cur.execute(
                "SELECT a.name_key, b.name_key FROM gallery_dismissed_pairs d "
                "JOIN gallery_identities a ON a.uid = d.uid_a JOIN gallery_identities b ON b.uid = d.uid_b"
            )
            return {(min(x, y), max(x, y)) for x, y in cur.fetchall()}

    def _created(self, cur: Cursor, name: str, context: WriteContext | None) -> tuple[int, Any, str]:
        """A new identity for a moved face, with the consent and expiry the request carried."""
        at = now_utc()
        cur.execute(
            "INSERT INTO gallery_identities (name_key, name, created_at) VALUES (%s, %s, %s) RETURNING id, uid",
            (name_key(name), name, at),
        )
        row = cur.fetchone()
        assert row is not None
        if context is not None:
            self._record_terms(cur, row[1], at, context)
        return row[0], row[1], name

"""Curating the SQLite gallery: rename, merge, move a face, each one write transaction.

Side by side with ``pg_curation.PostgresCuration`` (same methods, same order). Faces point at
their identity by name here, so a rename or merge rewrites the identity's faces' rows (deferring
the foreign key to the commit): the cost of the identity's faces, not of the gallery. Moved rows
are deleted and inserted again (new rowids, and counted as deleted), so a snapshot's position
(``warm_start``) notices.
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

    def _rehome(self, cur: Cursor, name: str, face_id: str | None, to: str) -> None:
        """The faces of ``name`` (or the one face) rewritten under ``to`` as new rows: a moved face
        gets a new rowid, as an added one does, so a snapshot's rowid position sees the change."""
        where, args = (
            ("identity = ?", (name,)) if face_id is None else ("identity = ? AND face_id = ?", (name, face_id))
        )
        rows = cur.execute(
            f"SELECT face_id, embedding, dim, embedder, created_at, box_x1, box_y1, box_x2, box_y2 FROM faces "
            f"WHERE {where} ORDER BY rowid",
            args,
        ).fetchall()
        # the thumbnails go with their faces' rows (the foreign key cascades), so they are put back
        thumbs = cur.execute(
            f"SELECT face_id, jpeg FROM face_thumbnails WHERE face_id IN (SELECT face_id FROM faces WHERE {where})",
            args,
        ).fetchall()
        cur.execute(f"DELETE FROM faces WHERE {where}", args)
        self._count_deleted(cur, len(rows))
        cur.executemany(
            "INSERT INTO faces(face_id, identity, embedding, dim, embedder, created_at, box_x1, box_y1, box_x2, box_y2) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(row[0], to, *row[1:]) for row in rows],
        )
        cur.executemany("INSERT INTO face_thumbnails(face_id, jpeg) VALUES (?, ?)", thumbs)

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
            self._rehome(cur, old, None, new_name)
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
            self._rehome(cur, source, None, target)
            cur.execute("DELETE FROM identities WHERE uid = ?", (source_uid,))
            # both people's histories become the merged identity's
            cur.execute("UPDATE consents SET identity_uid = ? WHERE identity_uid = ?", (target_uid, source_uid))
            cur.execute("UPDATE audit SET identity_uid = ? WHERE identity_uid = ?", (target_uid, source_uid))
            cur.execute("DELETE FROM dismissed_pairs WHERE uid_a = ? OR uid_b = ?", (source_uid, source_uid))
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
            self._rehome(cur, source, face_id, target)
            left = cur.execute("SELECT count(*) FROM faces WHERE identity = ?", (source,)).fetchone()[0]
            if context is not None:
                self._append_audit(cur, "move_face", source_uid, source, [face_id], context, detail=f"to {target!r}")
                self._append_audit(cur, "move_face", target_uid, target, [face_id], context, detail=f"from {source!r}")
            if left == 0:  # the source went with its last face: nothing of it stays
                cur.execute("DELETE FROM identities WHERE uid = ?", (source_uid,))
                self._erased(cur, source_uid, source, [], "delete_identity", None)
        return target

    def dismiss_pair(self, a: str, b: str) -> None:
        """Audited once, in each identity's trail (naming the other), the first time the pair is
        dismissed."""
        context = current()
        with self._transaction():
            cur = self._db
            first, second = self._found(cur, a), self._found(cur, b)
            pair = sorted((first[0], second[0]))
            row = cur.execute(
                "INSERT OR IGNORE INTO dismissed_pairs(uid_a, uid_b, at, key_label) VALUES (?, ?, ?, ?)",
                (*pair, utc_text(now_utc()), None if context is None else context.actor.key_label),
            )
            if row.rowcount and context is not None:
                for (uid, name, _), (_, other, _) in ((first, second), (second, first)):
                    detail = f"not the same person as {other!r}"
                    self._append_audit(cur, "dismiss_pair", uid, name, [], context, detail=detail)

    def dismissed_pairs(self) -> set[tuple[str, str]]:
        with self._reading():
            rows = self._db.execute(
                "SELECT a.name_key, b.name_key FROM dismissed_pairs d JOIN identities a ON a.uid = d.uid_a "
                "JOIN identities b ON b.uid = d.uid_b"
            ).fetchall()
        return {(min(x, y), max(x, y)) for x, y in rows}

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

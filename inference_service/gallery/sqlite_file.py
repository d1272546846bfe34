"""The gallery's SQLite file: where it may live, what it must look like, how old ones are upgraded.

A path given in ``FACE_GALLERY`` is hostile until identified: it may be another program's
database, a damaged copy, a folder, or sit where the service cannot write. Everything here reads
an existing file through a read-only connection (``mode=ro``: no pragma that writes, no WAL
switch, no table created) and refuses what it cannot identify with a ``GalleryOpenError`` whose
one-line message names the file and what to do. A new file is only ever created where nothing
exists, built aside and linked into place, so a crash never leaves a half-made gallery.

Our files carry SQLite's ``application_id`` :data:`APPLICATION_ID` and their schema version in
the meta table. Files of the first version (application_id 0, the exact tables of
:data:`SCHEMA_V1`) are recognised by their schema and upgraded in one transaction.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import GalleryMismatchError, GalleryOpenError
from .names import identity_key

log = logging.getLogger(__name__)

# b"FACE" read as a big-endian 32-bit integer: the marker SQLite stores at offset 68 of the header.
APPLICATION_ID = 0x46414345
SCHEMA_VERSION = 6
_SQLITE_MAGIC = b"SQLite format 3\x00"

# Version 1 exactly as the first release created it (application_id 0, no schema_version).
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS identities (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    face_id TEXT PRIMARY KEY,
    identity TEXT NOT NULL REFERENCES identities(name) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    dim INTEGER NOT NULL,
    embedder TEXT NOT NULL,
    created_at TEXT NOT NULL,
    box_x1 REAL, box_y1 REAL, box_x2 REAL, box_y2 REAL
);
CREATE INDEX IF NOT EXISTS faces_by_identity ON faces(identity, created_at);
"""

# Version 2: identities are compared by name_key (names.name_key), one row per person.
_V1_TO_V2 = """
ALTER TABLE identities ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
"""
_V2_INDEX = "CREATE UNIQUE INDEX identities_by_key ON identities(name_key)"

# Version 3: a consent record and an expiry per identity, and the audit trail (never an image or
# an embedding: see ``audit.py``). Times are UTC ISO 8601 text in one form, so they sort as text.
_V2_TO_V3 = """
ALTER TABLE identities ADD COLUMN consent TEXT;
ALTER TABLE identities ADD COLUMN consent_at TEXT;
ALTER TABLE identities ADD COLUMN consent_by TEXT;
ALTER TABLE identities ADD COLUMN expires_at TEXT;
CREATE INDEX identities_by_expiry ON identities(expires_at);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    name TEXT,
    name_key TEXT,
    face_ids TEXT NOT NULL,
    key_label TEXT,
    client TEXT
);
CREATE INDEX audit_by_key ON audit(name_key, seq);
"""

# Version 4: an identity's history is its own. Each identity gets a ``uid`` when first enrolled
# (a name enrolled again after an erase is another person, with another uid); audit rows and the
# consent history point at it, so an export lists this person's events and consents only. Every
# enrollment's consent is kept (``consents``), and its text is in the enrollment's audit row;
# ``detail`` says what a rename, merge or move did (``from 'Chris Lee'``).
_V3_TO_V4 = """
ALTER TABLE identities ADD COLUMN uid TEXT;
CREATE UNIQUE INDEX identities_by_uid ON identities(uid);
ALTER TABLE audit ADD COLUMN identity_uid TEXT;
ALTER TABLE audit ADD COLUMN consent TEXT;
ALTER TABLE audit ADD COLUMN detail TEXT;
CREATE INDEX audit_by_uid ON audit(identity_uid, seq);
CREATE TABLE consents (
    seq INTEGER PRIMARY KEY,
    identity_uid TEXT NOT NULL,
    consent TEXT NOT NULL,
    given_at TEXT NOT NULL,
    key_label TEXT
);
CREATE INDEX consents_by_uid ON consents(identity_uid, seq);
"""
# Version 5: the pairs of identities someone said are not the same person (the report skips them).
_V4_TO_V5 = """
CREATE TABLE IF NOT EXISTS dismissed_pairs (
    uid_a TEXT NOT NULL,
    uid_b TEXT NOT NULL,
    at TEXT NOT NULL,
    key_label TEXT,
    PRIMARY KEY (uid_a, uid_b)
);
"""
# Version 6: a small JPEG crop of each face kept at enrollment (never the uploaded photo), in its
# own table so listings never read it; erased with its face by the foreign key.
_V5_TO_V6 = """
CREATE TABLE IF NOT EXISTS face_thumbnails (
    face_id TEXT PRIMARY KEY REFERENCES faces(face_id) ON DELETE CASCADE,
    jpeg BLOB NOT NULL
);
"""
# Filling version 4's columns for what version 3 holds: a uid per identity, the events since the
# name's last erase as its history, the one consent record it kept as the first of its history.
_V4_BACKFILL = """
UPDATE identities SET uid = lower(hex(randomblob(16))) WHERE uid IS NULL;
UPDATE audit SET identity_uid = (SELECT i.uid FROM identities i WHERE i.name_key = audit.name_key)
WHERE name_key IS NOT NULL AND seq > IFNULL((SELECT max(e.seq) FROM audit e WHERE e.name_key = audit.name_key
    AND e.action IN ('delete_identity', 'expire')), 0);
INSERT INTO consents(identity_uid, consent, given_at, key_label)
SELECT uid, consent, IFNULL(consent_at, created_at), consent_by FROM identities WHERE consent IS NOT NULL;
"""


def _run(db: sqlite3.Connection, script: str) -> None:
    """The statements of ``script`` one by one: ``executescript`` would commit the caller's
    transaction first."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


@dataclass(frozen=True)
class GalleryFile:
    """What an existing gallery file holds, read without writing to it."""

    schema_version: int
    embedder: str | None
    dim: int | None


# -- where the file may live ------------------------------------------------------------------
def check_location(path: Path) -> None:
    """Refuse paths SQLite could not use as a writable gallery, before anything is opened."""
    try:
        _check_location(path)
    except OSError as exc:  # e.g. a parent folder the service may not enter
        raise GalleryOpenError(
            f"cannot reach gallery {path} ({exc.strerror or exc}); check FACE_GALLERY and its folders' permissions"
        ) from exc


def _check_location(path: Path) -> None:
    if path.is_dir():
        raise GalleryOpenError(
            f"FACE_GALLERY={path} is a folder; set it to a file path such as {path / 'gallery.sqlite3'}"
        )
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise GalleryOpenError(
            f"FACE_GALLERY={path}: {ancestor} is a file, not a folder; point FACE_GALLERY at a file in a folder"
        )
    if path.exists():
        if not path.is_file():
            raise GalleryOpenError(f"FACE_GALLERY={path} is not a regular file; point it at a gallery file")
        if not os.access(path, os.R_OK | os.W_OK):
            raise GalleryOpenError(
                f"gallery {path} is read-only; make it writable for the service's user "
                "or point FACE_GALLERY at a writable copy"
            )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise GalleryOpenError(
            f"the folder {ancestor} of gallery {path} is not writable (SQLite keeps its -wal and -shm "
            "files beside the gallery); make it writable or point FACE_GALLERY into a writable folder"
        )


# -- what the file is -------------------------------------------------------------------------
def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write. Without a ``-wal`` file beside it the file is the whole
    database, and ``immutable=1`` reads it without creating ``-wal``/``-shm`` files either; with
    one (a gallery whose process was killed) the log's committed pages must be read too."""
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    if not Path(f"{path}-wal").exists():
        uri += "&immutable=1"
    return sqlite3.connect(uri, uri=True, check_same_thread=False)


def _shape(db: sqlite3.Connection) -> dict[str, tuple]:
    """Tables with their columns and indexes with their columns: what "exact schema" compares."""
    shape: dict[str, tuple] = {}
    rows = db.execute(
        "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    for kind, name, table in rows:
        if kind == "table":
            shape[name] = tuple(db.execute("SELECT * FROM pragma_table_info(?)", (name,)).fetchall())
        elif kind == "index":
            columns = db.execute("SELECT * FROM pragma_index_info(?)", (name,)).fetchall()
            shape[f"index {name} on {table}"] = tuple(columns)
        else:
            shape[f"{kind} {name}"] = ()
    return shape


def _reference_shape(version: int) -> dict[str, tuple]:
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        _run(db, SCHEMA_V1)
        if version >= 2:
            _run(db, _V1_TO_V2)
            db.execute(_V2_INDEX)
        if version >= 3:
            _run(db, _V2_TO_V3)
        if version >= 4:
            _run(db, _V3_TO_V4)
        if version >= 5:
            _run(db, _V4_TO_V5)
        if version >= 6:
            _run(db, _V5_TO_V6)
        return _shape(db)
    finally:
        db.close()


_SHAPES = {version: _reference_shape(version) for version in range(1, SCHEMA_VERSION + 1)}
# Shapes a version may also have: development builds wrote version 4 with the dismissed pairs
# already in it (they became version 5); such a file is upgraded like any version 4.
_ALSO = {4: [_SHAPES[5]]}


def identify(path: Path, thorough: bool = True) -> GalleryFile | None:
    """What the gallery at ``path`` holds, or None where nothing exists; never writes to it.

    ``thorough`` runs SQLite's ``quick_check`` over every page, so a damaged file is refused at
    start-up instead of failing on the first write (or being written further).
    """
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise GalleryOpenError(
            f"cannot read gallery {path} ({exc.strerror}); check FACE_GALLERY and its permissions"
        ) from exc
    if not header:
        raise GalleryOpenError(
            f"{path} is an empty file, not a gallery; delete it to start a new gallery there, "
            "or point FACE_GALLERY at your gallery file"
        )
    if not header.startswith(_SQLITE_MAGIC):
        raise GalleryOpenError(
            f"{path} is not a gallery (not an SQLite database); it was left untouched: point FACE_GALLERY "
            "at your gallery file or at a path where a new one may be created"
        )
    try:
        db = _read_only(path)
        try:
            return _inspect(db, path, thorough)
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise GalleryOpenError(
            f"gallery {path} is damaged or truncated ({' '.join(str(exc).split())}); it was left untouched: "
            "restore it from a backup, or point FACE_GALLERY at a new file"
        ) from exc


def _inspect(db: sqlite3.Connection, path: Path, thorough: bool) -> GalleryFile:
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    shape = _shape(db)
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall()) if "meta" in shape else {}
    if app_id == APPLICATION_ID:
        stored = meta.get("schema_version", "")
        version = int(stored) if stored.isdigit() else 0
        if version > SCHEMA_VERSION:
            raise GalleryOpenError(
                f"gallery {path} has schema version {version}, newer than this service's "
                f"{SCHEMA_VERSION}; run a newer version of the service on it"
            )
        if version < 2 or (shape != _SHAPES[version] and shape not in _ALSO.get(version, [])):  # upgraded in place
            raise GalleryOpenError(
                f"gallery {path} carries the gallery marker but not the gallery's tables; it was left "
                "untouched: restore it from a backup, or point FACE_GALLERY at a new file"
            )
    elif app_id == 0 and shape == _SHAPES[1]:
        version = 1
    else:
        tables = [name for name in shape if " " not in name]
        if app_id:
            what = f"application_id {app_id:#x}"
        else:
            what = ("tables " + ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")) if tables else "no tables"
        raise GalleryOpenError(
            f"{path} is an SQLite database of another program ({what}), not a gallery; it was left "
            "untouched: point FACE_GALLERY at your gallery file or at a path where a new one may be created"
        )
    # Only a file identified as ours is read whole (a foreign one may be large).
    if thorough:
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(problems))
    dim = meta.get("dim")
    return GalleryFile(version, meta.get("embedder"), int(dim) if dim and dim.isdigit() else None)


def check_embedder(path: Path, found: GalleryFile | None, embedder: str | None) -> None:
    """``GalleryMismatchError`` when the file holds another embedder's vectors."""
    if embedder is None or found is None or found.embedder is None or found.embedder == embedder:
        return
    dim = f"{found.dim}-d" if found.dim else "of another size"
    raise GalleryMismatchError(
        f"gallery {path} holds {found.embedder} embeddings ({dim}) but the service uses {embedder}; "
        f"vectors of different models cannot be compared. Use FACE_EMBEDDER={found.embedder}, "
        "or point FACE_GALLERY at another file."
    )


def open_checks(path: Path, embedder: str | None = None, thorough: bool = True) -> GalleryFile | None:
    """Everything to know before the first write: the location, the file, its embedder."""
    check_location(path)
    found = identify(path, thorough)
    check_embedder(path, found, embedder)
    return found


# -- building and upgrading -------------------------------------------------------------------
def upgrade(db: sqlite3.Connection, path: Path | str, from_version: int) -> None:
    """Bring an older schema to the current one; the caller holds a write transaction.

    Version 1 compared names exactly, so ``Obama`` and ``obama`` may both exist: the later
    spelling's faces join the first enrolled one (the spelling kept for display), and a log line
    says so. Version 2 gains the consent, expiry and audit columns and table (all empty); version
    4 the identities' uids and the consent history (see ``_V4_BACKFILL``), version 5 the dismissed
    pairs, version 6 the faces' thumbnails (none for faces enrolled before).
    """
    if from_version >= SCHEMA_VERSION:
        return
    if from_version < 2:
        _v1_to_v2(db, path)
    if from_version < 3:
        _run(db, _V2_TO_V3)
    if from_version < 4:
        _run(db, _V3_TO_V4)
        _run(db, _V4_BACKFILL)
    _run(db, _V4_TO_V5)
    _run(db, _V5_TO_V6)
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    if from_version > 0:
        log.info("gallery %s: upgraded from schema version %d to %d", path, from_version, SCHEMA_VERSION)


def _v1_to_v2(db: sqlite3.Connection, path: Path | str) -> None:
    _run(db, _V1_TO_V2)
    first: dict[str, str] = {}
    for (name,) in db.execute("SELECT name FROM identities ORDER BY created_at, rowid").fetchall():
        key = identity_key(name)
        if key in first:
            moved = db.execute("UPDATE faces SET identity = ? WHERE identity = ?", (first[key], name)).rowcount
            db.execute("DELETE FROM identities WHERE name = ?", (name,))
            log.warning(
                "gallery %s: identity %r merged into %r (%d faces): names now compare case-insensitively",
                path,
                name,
                first[key],
                moved,
            )
        else:
            first[key] = name
            db.execute("UPDATE identities SET name_key = ? WHERE name = ?", (key, name))
    db.execute(_V2_INDEX)


def build(db: sqlite3.Connection, path: Path | str) -> None:
    """The current schema in an empty database; the caller holds a write transaction."""
    _run(db, SCHEMA_V1)
    upgrade(db, path, 0)


def create(path: Path, embedder: str | None, dim: int | None) -> None:
    """A new, empty gallery at ``path``, built beside it and linked into place whole.

    Linking (not renaming) never replaces a file another process created meanwhile; that file
    is then identified like any other.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.new")
    try:
        db = sqlite3.connect(str(partial), isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            build(db, path)
            if embedder is not None:
                db.execute("INSERT INTO meta(key, value) VALUES ('embedder', ?)", (embedder,))
                if dim is not None:
                    db.execute("INSERT INTO meta(key, value) VALUES ('dim', ?)", (str(dim),))
            db.execute("COMMIT")
        finally:
            db.close()
        try:
            os.link(partial, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: rename, still never over a file
            if not path.exists():
                os.replace(partial, path)
    except (OSError, sqlite3.Error) as exc:
        raise GalleryOpenError(f"cannot create gallery {path} ({exc}); check FACE_GALLERY and its folder") from exc
    finally:
        partial.unlink(missing_ok=True)

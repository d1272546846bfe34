"""Which store a ``FACE_GALLERY`` value names, and opening it.

A plain path or ``sqlite:///path`` (``sqlite:////abs/path`` for an absolute one, as SQLAlchemy
spells it) is the embedded SQLite file; ``postgresql://user:pass@host:port/db`` (or
``postgres://``) is a PostgreSQL database shared by several API replicas. Everything above
the stores takes one of these strings, so the API, the pipeline and ``copy`` open either.
"""

from __future__ import annotations

from pathlib import Path

from .errors import GalleryOpenError
from .store import GalleryStore, SQLiteStore
from .store import stored_embedder as sqlite_stored_embedder

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite:///"


def is_postgres(url: str | Path) -> bool:
    return str(url).startswith(POSTGRES_SCHEMES)


def sqlite_path(url: str | Path) -> Path:
    """The file a plain path or ``sqlite:///`` URL names."""
    text = str(url)
    if text.startswith(SQLITE_SCHEME):
        text = text[len(SQLITE_SCHEME) :]
        if not text:
            raise GalleryOpenError("FACE_GALLERY sqlite:/// needs a file path after the scheme")
    elif "://" in text:
        raise GalleryOpenError(
            f"FACE_GALLERY {text.split('://')[0]}:// is not a gallery store: give a file path, "
            "sqlite:///path or postgresql://user:password@host:port/database"
        )
    return Path(text)


def describe(url: str | Path) -> str:
    """The gallery for log lines: a path, or the database URL without its password."""
    if is_postgres(url):
        from .postgres import redact

        return redact(str(url))
    return str(sqlite_path(url))


def open_store(url: str | Path, embedder_name: str | None = None, dim: int | None = None) -> GalleryStore:
    """Open (creating if new) the store ``url`` names; refuses one written by another embedder."""
    if is_postgres(url):
        from .postgres import PostgresStore  # psycopg only loads for a PostgreSQL gallery

        return PostgresStore(str(url), embedder_name, dim)
    return SQLiteStore(sqlite_path(url), embedder_name, dim)


def stored_embedder(url: str | Path | None) -> str | None:
    """The embedder an existing gallery was written with (None when absent or empty)."""
    if url is None:
        return None
    if is_postgres(url):
        store = open_store(url)
        try:
            return store.embedder()
        finally:
            store.close()
    return sqlite_stored_embedder(sqlite_path(url))

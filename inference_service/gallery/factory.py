"""The one place that turns a ``FACE_GALLERY`` value into a store: opening it, and checking it first.

Everything above the stores (the API's start, the pipeline's commands, ``copy``) takes the string
(see ``urls.py`` for the forms) and calls these, so none of them branches on the kind of store,
tests files itself, or catches a driver's exceptions: every failure is a ``GalleryError``.
"""

from __future__ import annotations

from pathlib import Path

from . import sqlite_file
from .errors import GalleryOpenError
from .store import GalleryStore
from .urls import describe, is_postgres, local_folder, redact, sqlite_path

__all__ = [
    "describe",
    "is_postgres",
    "local_folder",
    "open_store",
    "preflight",
    "redact",
    "sqlite_path",
    "stored_embedder",
]


def open_store(url: str | Path, embedder_name: str | None = None, dim: int | None = None) -> GalleryStore:
    """Open (creating if new) the store ``url`` names; refuses one written by another embedder."""
    if is_postgres(url):
        from .pg_store import PostgresStore  # psycopg only loads for a PostgreSQL gallery

        return PostgresStore(str(url), embedder_name, dim)
    from .sqlite_store import SQLiteStore

    return SQLiteStore(sqlite_path(url), embedder_name, dim)


def preflight(url: str | Path, embedder_name: str | None = None, *, must_exist: bool = False) -> str | None:
    """Every check opening ``url`` makes before its first write, made without writing anything.

    The API's start runs it before loading any model, so a bad ``FACE_GALLERY`` fails in a second
    with one line; commands that read a gallery (``annotate``) pass ``must_exist`` to refuse a
    gallery that is not there instead of creating an empty one. Returns the embedder the gallery
    was written with (None for a new or empty one). A PostgreSQL gallery is identified when it
    opens (a connection is the check), so here only its URL is read.
    """
    if is_postgres(url):
        return None
    path = sqlite_path(url)
    if must_exist and not path.is_file():
        raise GalleryOpenError(f"gallery file not found: {path}")
    found = sqlite_file.open_checks(path, embedder_name)
    return found.embedder if found else None


def stored_embedder(url: str | Path | None) -> str | None:
    """The embedder an existing gallery was written with (None when absent or empty).

    A SQLite file is read through a read-only connection; a file that is not a gallery raises
    ``GalleryOpenError`` (``auto`` must not guess an embedder from a foreign file).
    """
    if url is None:
        return None
    if is_postgres(url):
        store = open_store(url)
        try:
            return store.embedder()
        finally:
            store.close()
    path = sqlite_path(url)
    sqlite_file.check_location(path)
    found = sqlite_file.identify(path, thorough=False)
    return found.embedder if found else None

"""Which store a ``FACE_GALLERY`` value names, read from the string alone (no driver loads here).

A plain path or ``sqlite:///path`` (``sqlite:////abs/path`` for an absolute one, as SQLAlchemy
spells it) is the embedded SQLite file; ``postgresql://user:pass@host:port/db`` (or
``postgres://``) is a PostgreSQL database shared by several API replicas.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import GalleryOpenError

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


def redact(url: str) -> str:
    """The URL without its password, for log lines and messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def describe(url: str | Path) -> str:
    """The gallery for log lines: a path, or the database URL without its password."""
    if is_postgres(url):
        return redact(str(url))
    return str(sqlite_path(url))


def local_folder(url: str | Path) -> Path | None:
    """The folder holding a SQLite gallery file (where files that belong with it may go); None for
    a database server, whose replicas share no folder by default."""
    return None if is_postgres(url) else sqlite_path(url).parent

"""Gallery errors that mean the same whichever store is behind the gallery.

Nothing above the stores catches ``sqlite3`` or ``psycopg`` exceptions: each store turns its
driver's failures into one of these, and the API maps them to status codes (503 with
Retry-After for an unreachable store, 507 for a full disk) and ``__main__`` to one start-up line.
"""

from __future__ import annotations


class GalleryError(RuntimeError):
    """Base of every backend-neutral gallery failure."""


class GalleryOpenError(GalleryError):
    """The gallery cannot be opened or is not ours; the message names the file or setting and what to do."""


class GalleryMismatchError(GalleryOpenError):
    """The gallery was written by another embedder; its vectors cannot be compared."""


class GalleryUnavailableError(GalleryError):
    """The store cannot be reached right now (a server restarting, a network cut): retry later."""

    retry_after_s: int = 5


class GalleryFullError(GalleryError):
    """The store has no space left; nothing of the failed write was kept."""


class IdentityNotFoundError(GalleryError):
    """A rename, merge or move named an identity (or a face of one) that is not enrolled."""

    def __init__(self, name: str, face_id: str | None = None) -> None:
        what = f"no face {face_id} in identity {name!r}" if face_id else f"no identity {name!r}"
        super().__init__(what)
        self.name = name
        self.face_id = face_id


class IdentityExistsError(GalleryError):
    """A rename to a name another identity has: the caller may merge instead."""

    def __init__(self, name: str) -> None:
        super().__init__(f"identity {name!r} exists; merge into it instead")
        self.name = name

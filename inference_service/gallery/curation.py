"""Curating a gallery: rename an identity, merge one into another, move a face to another person.

Each change is one transaction of the store (audited with the acting key's label through the
write context, carried to PostgreSQL replicas through the change log); memory follows under the
gallery's write lock, as for an enrollment, in one published step (``index_moves``): a search
sees the faces under their old identity or their new one, never neither or both.
"""

from __future__ import annotations

from .gallery import Gallery
from .names import validate_name


def rename(gallery: Gallery, identity: str, new_name: str) -> str:
    """``identity`` shown and found as ``new_name`` from now on; returns the name stored.
    ``IdentityExistsError`` when another identity has that name (merge instead)."""
    new_name = validate_name(new_name)
    with gallery.write_lock:
        old = _shown(gallery, identity)
        name, face_ids = gallery.store.rename_identity(old, new_name)
        if name != old:
            _follow(gallery, old, name, face_ids)
    return name


def merge(gallery: Gallery, identity: str, into: str) -> tuple[str, list[str]]:
    """Every face of ``identity`` into ``into``, and ``identity`` removed; (target, face ids moved)."""
    with gallery.write_lock:
        source = _shown(gallery, identity)
        target, face_ids = gallery.store.merge_identity(source, validate_name(into))
        _follow(gallery, source, target, face_ids)
    return target, face_ids


def move_face(gallery: Gallery, identity: str, face_id: str, to: str) -> str:
    """One face of ``identity`` to ``to`` (created when new); returns the target's name."""
    to = validate_name(to)
    with gallery.write_lock:
        source = _shown(gallery, identity)
        target = gallery.store.move_face(source, face_id, to)
        _follow(gallery, source, target, [face_id])
    return target


def _shown(gallery: Gallery, identity: str) -> str:
    """The spelling memory shows (the store decides whether it exists: memory may lag behind a
    replica's write, which the store's observer applies before this write's own change)."""
    faces = gallery.faces_of(identity)
    return faces[0].identity if faces else validate_name(identity)


def _follow(gallery: Gallery, source: str, target: str, face_ids: list[str]) -> None:
    """Memory after a committed move: the faces leave ``source`` for ``target`` in one step."""
    gallery.apply_moved(source, target, face_ids)

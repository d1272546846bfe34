"""Moving faces between identities of a ``FaceIndex`` in one published view.

A rename, merge or move must never be seen half done: removing the faces from one identity and
adding them to the other are two views, and a search between them would find the faces missing
(or, added first, in both). Here the faces' identity column is rewritten in copies of the blocks
that hold them and published once, the way ``FaceIndex`` publishes a deletion; vectors are not
copied. This reaches into the index's internals, so it lives beside it in a file of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from .index import FACE_ID_BYTES, FaceIndex
from .names import identity_key


def reassign(index: FaceIndex, source: str, target: str, face_ids: Iterable[str] | None = None) -> int:
    """Give ``source``'s faces (all, or those named) to ``target`` (created with that spelling when
    new; a change of spelling of the same identity renames it). Returns how many moved."""
    wanted = None if face_ids is None else np.array([f.encode("ascii") for f in face_ids], f"S{FACE_ID_BYTES}")
    with index._lock:
        view = index._view
        src = index._live_id(view, source)
        if src is None or (wanted is not None and len(wanted) == 0):
            return 0
        if identity_key(target) == identity_key(source):
            index._ids.pop(identity_key(source), None)  # a new id carries the new spelling
        dst = index._id_for(target)
        counts = np.zeros(len(index._names), np.int64)
        counts[: len(view.counts)] = view.counts
        blocks, moved = [], 0
        for block in view.blocks:
            rows = np.flatnonzero(block.identity[: block.rows] == src)
            if wanted is not None and len(rows):
                rows = rows[np.isin(block.face_ids[rows], wanted)]
            if len(rows):
                identity = block.identity.copy()
                identity[rows] = dst
                block = replace(block, identity=identity)
                moved += len(rows)
            blocks.append(block)
        counts[src] -= moved
        counts[dst] += moved
        if counts[src] == 0 and index._ids.get(identity_key(source)) == src:
            index._ids.pop(identity_key(source))
        if moved:
            index._publish(blocks, counts)
        elif counts[src] and identity_key(target) == identity_key(source):
            index._ids[identity_key(source)] = src  # nothing moved: the identity keeps its id
        return moved

"""Moving faces between identities of a ``FaceIndex`` in one published view.

A rename, merge or move must never be seen half done: removing the faces from one identity and
adding them to the other through ``remove_faces`` and ``add`` publishes two views, and a search
between them finds the faces missing. Here the same two steps (the rows tombstoned where they
are, the same vectors appended under the other identity with new labels) are published as one
view, and the approximate index is told exactly what ``_remove`` and ``add`` would tell it. This
reaches into the index's internals, so it lives beside it in a file of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from .blocks import FACE_ID_BYTES, Block, compacted
from .index import FaceIndex
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
        blocks: list[Block] = []
        parts: list[tuple[np.ndarray, ...]] = []
        for block in view.blocks:
            rows = np.flatnonzero(block.identity[: block.rows] == src)
            if wanted is not None and len(rows):
                rows = rows[np.isin(block.face_ids[rows], wanted)]
            if len(rows) == 0:
                blocks.append(block)
                continue
            parts.append(tuple(column[rows].copy() for column in _moving_columns(block)))
            identity = block.identity.copy()
            identity[rows] = -1
            changed = replace(block, identity=identity, dead=block.dead + len(rows))
            if changed.dead * 2 > changed.rows:
                changed = compacted(changed)
            if changed.rows:
                blocks.append(changed)
        if not parts:
            return 0
        vectors, face_id_column, created, boxes, old_labels = (np.concatenate(c) for c in zip(*parts))
        moved = len(vectors)
        key = identity_key(source)
        if identity_key(target) == key:
            index._ids.pop(key, None)  # a new id carries the new spelling
        dst = index._id_for(target)
        labels = np.arange(index._next_label, index._next_label + moved, dtype=np.int64)
        index._next_label += moved
        index.append_rows(blocks, dst, vectors, labels, face_id_column, created, boxes)
        counts = np.zeros(len(index._names), np.int64)
        counts[: len(view.counts)] = view.counts
        counts[src] -= moved
        counts[dst] += moved
        if counts[src] == 0 and index._ids.get(key) == src:
            index._ids.pop(key)
        index._publish(blocks, counts)
        ids = np.full(moved, dst, np.int32)
        if index._ann is not None:
            index._ann.remove(old_labels, src)
            index._ann.add(vectors, labels, ids)
        if index._building is not None:
            index._building[1].append((old_labels, src))  # the new labels are past the build's watermark
        index._plan_ann()
        return moved


def _moving_columns(block: Block) -> tuple[np.ndarray, ...]:
    return block.vectors, block.face_ids, block.created_at, block.boxes, block.labels

"""Reading the whole ``gallery_faces`` table as numpy arrays in one binary COPY.

A million faces as a million Python rows cost seconds; the binary COPY stream of a query whose
rows are all the same width is one numpy structured array, decoded without a Python loop.
"""

from __future__ import annotations

import numpy as np

from .errors import GalleryError
from .store import FaceTable

# One row of ``COPY ... TO STDOUT (FORMAT binary)`` of COPY_FACES is fixed-width (no NULLs: a
# missing box is NaN), so the whole stream is read as one numpy structured array.
COPY_FACES = (
    "COPY (SELECT face_id, identity_id, embedding, created_at, coalesce(box_x1, 'NaN'), "
    "coalesce(box_y1, 'NaN'), coalesce(box_x2, 'NaN'), coalesce(box_y2, 'NaN') "
    "FROM gallery_faces) TO STDOUT (FORMAT binary)"
)  # no ORDER BY: sorting a million rows doubles the load time; created_at gives the order
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_PG_EPOCH_US = np.datetime64("2000-01-01T00:00:00", "us")


def copy_row_dtype(dim: int) -> np.dtype:
    fields: list[tuple] = [("n", ">i2"), ("l_id", ">i4"), ("face_id", "V16"), ("l_ident", ">i4"), ("ident", ">i4")]
    fields += [("l_emb", ">i4"), ("emb", "<f4", (dim,)), ("l_ts", ">i4"), ("ts", ">i8")]
    for name in ("x1", "y1", "x2", "y2"):
        fields += [(f"l_{name}", ">i4"), (name, ">f4")]
    return np.dtype(fields)


def parse_copy(buffer: bytearray, row_dtype: np.dtype, identities: list[tuple[int, str]], dim: int) -> FaceTable:
    """The binary COPY stream as a FaceTable (header, fixed-width rows, -1 trailer)."""
    if buffer[:11] != _COPY_SIGNATURE:
        raise GalleryError("unexpected COPY stream from PostgreSQL")
    ext = int.from_bytes(buffer[15:19], "big")
    start = 19 + ext
    body = memoryview(buffer)[start : len(buffer) - 2]
    if len(body) % row_dtype.itemsize:
        raise GalleryError(f"gallery holds embeddings that are not {dim}-d")
    rows = np.frombuffer(body, dtype=row_dtype)
    if len(rows) and (np.any(rows["n"] != 8) or np.any(rows["l_emb"] != 4 * dim)):
        raise GalleryError(f"gallery holds embeddings that are not {dim}-d")
    ids = np.array([i for i, _ in identities], dtype=np.int64)
    names = [n for _, n in identities]
    hexed = _uuid_hex(rows["face_id"])
    boxes = (
        np.stack([rows[c].astype(np.float32) for c in ("x1", "y1", "x2", "y2")], axis=1)
        if len(rows)
        else (np.zeros((0, 4), np.float32))
    )
    return FaceTable(
        face_ids=hexed,
        identity=np.searchsorted(ids, rows["ident"].astype(np.int64)).astype(np.int32),
        names=names,
        embeddings=np.ascontiguousarray(rows["emb"], dtype=np.float32).reshape(len(rows), dim),
        created_at=_PG_EPOCH_US + rows["ts"].astype(np.int64).astype("timedelta64[us]"),
        boxes=boxes.reshape(len(rows), 4),
    )


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _uuid_hex(raw: np.ndarray) -> np.ndarray:
    """16-byte uuids as their 32-character hex ("S32"), vectorised."""
    octets = np.frombuffer(raw.tobytes(), dtype=np.uint8).reshape(len(raw), 16)
    digits = np.empty((len(raw), 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX_DIGITS[octets >> 4]
    digits[:, 1::2] = _HEX_DIGITS[octets & 15]
    return digits.view("S32").reshape(len(raw))

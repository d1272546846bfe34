"""The snapshot file: named arrays and a JSON header in one file, replaced whole or not at all.

Layout: a magic line, the arrays one after another (each 64-byte aligned), the JSON header
(metadata and, per array, its dtype, shape, offset and CRC-32), then a fixed-size footer giving
the header's offset, length and CRC-32 and the magic again. The header goes last so that arrays
can be streamed from the index's blocks without first being gathered in memory.

Writing goes to a temporary file in the same folder, fsynced, then ``os.replace``d over the old
snapshot and the folder fsynced: a reader (or a start after ``kill -9`` or a power cut) finds the
old file or the new one, never a mixture. Reading checks every checksum: a truncated, damaged or
foreign file raises ``SnapshotError`` (the caller rebuilds from the store), it is never served.
"""

from __future__ import annotations

import json
import os
import struct
import uuid
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"FACE-SNAPSHOT-1\n"
_FOOTER = struct.Struct("<QQI16s")  # header offset, header length, header CRC-32, magic
ALIGN = 64
_READ_CHUNK = 64 * 2**20


class SnapshotError(Exception):
    """The snapshot cannot be used; the message says why (for the log line)."""


Array = tuple[str, np.dtype, tuple[int, ...], Iterable[np.ndarray]]


def write(path: Path, meta: dict[str, Any], arrays: Iterable[Array]) -> int:
    """Write ``arrays`` (name, dtype, shape, chunks in order) and ``meta`` atomically to ``path``;
    returns the file's size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(partial, "wb") as fh:
            fh.write(MAGIC)
            entries = []
            for name, dtype, shape, chunks in arrays:
                fh.write(b"\0" * (-fh.tell() % ALIGN))
                offset, crc, nbytes = fh.tell(), 0, 0
                for chunk in chunks:
                    data = np.ascontiguousarray(chunk, dtype=dtype)
                    view = data.reshape(-1).view(np.uint8).data  # bytes of any dtype, datetime64 too
                    crc = zlib.crc32(view, crc)
                    fh.write(view)
                    nbytes += data.nbytes
                expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                if nbytes != expected:
                    raise ValueError(f"snapshot array {name}: {nbytes} bytes written for shape {shape}")
                entries.append(
                    {"name": name, "dtype": np.dtype(dtype).str, "shape": list(shape), "offset": offset, "crc": crc}
                )
            header = json.dumps({**meta, "arrays": entries}).encode()
            at = fh.tell()
            fh.write(header)
            fh.write(_FOOTER.pack(at, len(header), zlib.crc32(header), MAGIC))
            fh.flush()
            os.fsync(fh.fileno())
            size = fh.tell()
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    _fsync_folder(path.parent)
    return size


def read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and the arrays of the snapshot at ``path``, every checksum verified."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < len(MAGIC) + _FOOTER.size or fh.read(len(MAGIC)) != MAGIC:
                raise SnapshotError("not a snapshot file (no magic)")
            fh.seek(size - _FOOTER.size)
            at, length, crc, magic = _FOOTER.unpack(fh.read(_FOOTER.size))
            if magic != MAGIC or at + length + _FOOTER.size != size:
                raise SnapshotError("truncated or damaged (footer)")
            fh.seek(at)
            header = fh.read(length)
            if zlib.crc32(header) != crc:
                raise SnapshotError("damaged (header checksum)")
            meta = json.loads(header)
            arrays = {}
            for entry in meta.pop("arrays"):
                array = np.empty(entry["shape"], np.dtype(entry["dtype"]))
                if entry["offset"] + array.nbytes > at:
                    raise SnapshotError(f"damaged (array {entry['name']} runs past the header)")
                fh.seek(entry["offset"])
                if _read_into(fh, array) != entry["crc"]:
                    raise SnapshotError(f"damaged (array {entry['name']} checksum)")
                arrays[entry["name"]] = array
            return meta, arrays
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise SnapshotError(f"unreadable ({exc})") from exc


def _read_into(fh: Any, array: np.ndarray) -> int:
    """Fill ``array`` from ``fh`` in chunks, returning the CRC-32 of what was read."""
    view = array.reshape(-1).view(np.uint8).data
    crc, done = 0, 0
    while done < len(view):
        part = view[done : done + _READ_CHUNK]
        got = fh.readinto(part)
        if not got:
            raise SnapshotError("truncated (array data)")
        crc = zlib.crc32(part[:got], crc)
        done += got
    return crc


def remove_partials(path: Path) -> None:
    """Temporary files a killed writer left beside ``path`` (one process writes a snapshot)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

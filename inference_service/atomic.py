"""Writing a file so that a reader sees the old file or the whole new one, never half of it.

The one atomic writer of the project (run folders, evaluation reports, rendered videos, benchmark
results): write to a temporary name in the same folder (so the rename stays on one file
system), then ``os.replace`` it over the target; on any error the temporary file is removed.
Only the standard library and numpy (imported when an array is written).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so writers that go by it still do) that
    replaces ``path`` when the block ends without an error, and is removed when it does not."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, payload: Any, *, indent: int = 1, default: Callable[[Any], Any] | None = None) -> None:
    write_text(path, json.dumps(payload, indent=indent, default=default) + "\n")


def write_npy(path: Path, array: Any) -> None:
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)

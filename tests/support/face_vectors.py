"""Synthetic face embeddings shaped like real ones, for galleries larger than the test photos.

dlib-resnet's unit embeddings of the shared test faces (45 faces, measured in this project) sit
in a narrow cone: their mean has norm 0.92, two faces of one person have cosine 0.95 on average
and two people 0.83. ``structured`` draws a shared direction plus a per-identity offset plus a
per-face offset with those averages, so an index meets the crowding real galleries have (every
face fairly similar to every other) rather than the easy spread of random unit vectors.
"""

from __future__ import annotations

import numpy as np

# 1 + a^2 + b^2 = 1/0.83 and (1 + a^2) / (1 + a^2 + b^2) = 0.95 give a^2 = 0.145, b^2 = 0.060.
IDENTITY_SPREAD = 0.38
FACE_SPREAD = 0.245


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def structured(
    identities: int, faces_per_identity: np.ndarray | int, dim: int, seed: int, mean: np.ndarray | None = None
):
    """(vectors, identity index per vector, identity centres): faces of ``identities`` people
    around ``mean`` (the shared direction; a random one by default)."""
    rng = np.random.default_rng(seed)
    mean = _unit(rng.standard_normal((1, dim)))[0] if mean is None else _unit(mean[None])[0]
    centres = mean + IDENTITY_SPREAD * rng.standard_normal((identities, dim)).astype(np.float32) / np.sqrt(dim)
    counts = np.broadcast_to(np.asarray(faces_per_identity), (identities,))
    who = np.repeat(np.arange(identities), counts)
    return faces_of(centres, who, rng), who, centres


def faces_of(centres: np.ndarray, who: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """New faces of the people ``who`` (indexes into ``centres``)."""
    dim = centres.shape[1]
    return _unit(centres[who] + FACE_SPREAD * rng.standard_normal((len(who), dim)).astype(np.float32) / np.sqrt(dim))


def strangers(centres: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Faces of ``n`` people not among ``centres`` (drawn around the same shared direction)."""
    dim = centres.shape[1]
    mean = centres.mean(axis=0)
    mean /= np.linalg.norm(mean)
    others = mean + IDENTITY_SPREAD * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    return faces_of(others, np.arange(n), rng)

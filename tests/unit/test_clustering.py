"""The CLI's clustering: one person is never twice in one frame."""

from __future__ import annotations

import numpy as np

from pipeline.video.clustering import cluster_labels


def look_alikes(seed: int) -> np.ndarray:
    """Four faces within cosine 0.99 of one another: one person to the embedder."""
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal(128)
    faces = centre + 0.05 * np.linalg.norm(centre) / np.sqrt(128) * rng.standard_normal((4, 128))
    return (faces / np.linalg.norm(faces, axis=1, keepdims=True)).astype(np.float32)


def test_look_alikes_of_different_frames_are_one_person():
    labels = cluster_labels(look_alikes(0), threshold=0.926, frames=np.array([0, 25, 50, 75]))
    assert len(set(labels.tolist())) == 1


def test_two_faces_of_one_frame_are_never_one_person():
    frames = np.array([0, 25, 25, 50])
    labels = cluster_labels(look_alikes(1), threshold=0.926, frames=frames)
    for label in set(labels.tolist()):
        members = frames[labels == label]
        assert len(members) == len(set(members.tolist())), (labels, frames)
    # without the frames they are one group: the rule is what keeps them apart
    assert len(set(cluster_labels(look_alikes(1), threshold=0.926).tolist())) == 1

"""How good a detected face is for enrollment: sharpness, frontality, and a margin crop.

A gallery built from a video should hold the person's clearest, most frontal views; motion blur
and profiles make poor references (the dlib embedding of a profile sits closer to other people's
frontal faces than to the same person's, as the stage clip's profile shots show).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

SHARPNESS_SIZE = 112  # faces are resized to one size first, so sharpness compares across scales


def crop_with_margin(image: np.ndarray, box: Sequence[float], margin: float = 0.4) -> np.ndarray:
    """The face box grown by ``margin`` of its size on every side, clipped to the image.

    The margin keeps forehead, chin and ears, which a detector re-running on the crop (the API's
    enrollment endpoint) needs to find the face again.
    """
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    height, width = image.shape[:2]
    left = int(max(0, np.floor(x1 - margin * w)))
    top = int(max(0, np.floor(y1 - margin * h)))
    right = int(min(width, np.ceil(x2 + margin * w)))
    bottom = int(min(height, np.ceil(y2 + margin * h)))
    if right <= left or bottom <= top:
        return image[0:1, 0:1].copy()
    return image[top:bottom, left:right].copy()


def sharpness(image: np.ndarray, box: Sequence[float]) -> float:
    """Variance of the Laplacian of the face (without margin) at a fixed size: higher is sharper."""
    face = crop_with_margin(image, box, margin=0.0)
    gray = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY) if face.ndim == 3 else face
    gray = cv2.resize(gray, (SHARPNESS_SIZE, SHARPNESS_SIZE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def frontality(landmarks: np.ndarray) -> float:
    """1 for a frontal face, towards 0 for a profile, from the symmetry of the 5 landmarks.

    The nose sits halfway between the eyes (and between the mouth corners) when the head faces
    the camera; turning the head moves it towards one side. Roll does not matter (both distances
    are measured along the eye line).
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    axis = right_eye - left_eye
    length = np.linalg.norm(axis)
    if length < 1e-6:
        return 0.0
    axis /= length
    scores = []
    for a, b in ((left_eye, right_eye), (mouth_left, mouth_right)):
        da = float(np.dot(nose - a, axis))
        db = float(np.dot(b - nose, axis))
        total = abs(da) + abs(db)
        if total < 1e-6 or da <= 0 or db <= 0:  # nose outside the pair: a profile
            scores.append(0.0)
        else:
            scores.append(1.0 - abs(da - db) / total)
    return float(np.mean(scores))

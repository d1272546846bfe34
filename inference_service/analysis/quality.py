"""How good a detected face is for enrollment: size, brightness, sharpness, pose, and a margin crop.

A gallery built from a video should hold the person's clearest, most frontal views; motion blur
and profiles make poor references (the dlib embedding of a profile sits closer to other people's
frontal faces than to the same person's, as the stage clip's profile shots show).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def brightness(image: np.ndarray, box: Sequence[float]) -> float:
    """Mean grey level (0-255) of the face box: a face in the dark shows the embedder little."""
    face = crop_with_margin(image, box, margin=0.0)
    gray = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY) if face.ndim == 3 else face
    return float(gray.mean())


def yaw_side(landmarks: np.ndarray) -> int:
    """-1 or 1 for the side a head is turned to (the nose nearer one eye), 0 when about frontal."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    if frontality(points) >= FRONTAL:
        return 0
    left_eye, right_eye, nose = points[0], points[1], points[2]
    axis = right_eye - left_eye
    offset = float(np.dot(nose - (left_eye + right_eye) / 2, axis))
    return 1 if offset > 0 else -1


# frontality() from which a face counts as frontal: the shared gallery photos, all taken facing
# the camera, score 0.72 and above; the stage clip's profile shots 0.0-0.3.
FRONTAL = 0.7


@dataclass(frozen=True)
class FaceQuality:
    """What the enrollment gate looks at, for one face."""

    width: float  # pixels of the image the face was found in
    brightness: float  # mean grey level of the face box, 0-255
    sharpness: float  # sharpness() at SHARPNESS_SIZE

    @classmethod
    def of(cls, image: np.ndarray, box: Sequence[float]) -> FaceQuality:
        return cls(float(box[2] - box[0]), brightness(image, box), sharpness(image, box))

    def to_dict(self) -> dict:
        return {
            "width": round(self.width, 1),
            "brightness": round(self.brightness, 1),
            "sharpness": round(self.sharpness, 1),
        }


# The enrollment gate's limits, measured on ../shared/faces and its clips (docs/tracks.md,
# "Enrollment quality gate"). Width: every labelled photo face is >= 54 px, the stage clip's
# piano player 24 px (issue 21: enrolled, his faces made his own probe photo miss and strangers
# resemble him). Grey level: the stage clip's dark audience is 31-39, the darkest face that still scores
# well 60. Sharpness: the blurred audience 6-20, every photo >= 110.
MIN_ENROLL_WIDTH = 40.0
MIN_ENROLL_BRIGHTNESS = 45.0
MIN_ENROLL_SHARPNESS = 20.0


def enrollment_problems(quality: FaceQuality) -> list[str]:
    """Why a face would make a poor reference (empty: none), in words a user can act on."""
    problems = []
    if quality.width < MIN_ENROLL_WIDTH:
        problems.append(f"the face is {quality.width:.0f} px wide, at least {MIN_ENROLL_WIDTH:.0f} are needed")
    if quality.brightness < MIN_ENROLL_BRIGHTNESS:
        problems.append(
            f"the face is too dark (mean grey level {quality.brightness:.0f} of 255, at least "
            f"{MIN_ENROLL_BRIGHTNESS:.0f} needed)"
        )
    if quality.sharpness < MIN_ENROLL_SHARPNESS:
        problems.append(
            f"the face is too blurred (sharpness {quality.sharpness:.0f}, at least {MIN_ENROLL_SHARPNESS:.0f} needed)"
        )
    return problems

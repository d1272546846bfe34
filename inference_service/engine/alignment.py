"""Face crops for the embedders: landmark-aligned chips and plain box crops.

Embedders are trained on faces placed in a fixed way; feeding them the same placement is worth
more accuracy than any threshold tuning. dlib's ResNet expects a 150x150 chip whose eyes, nose
and mouth corners sit at fixed points; FaceNet's InceptionResnetV1 was trained on MTCNN's square
160x160 box crops, so it gets those.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

# Pixels of margin around an MTCNN box in FaceNet's 160x160 crop: what facenet-pytorch's own LFW
# evaluation (examples/lfw_evaluate.ipynb: MTCNN(image_size=160, margin=14)) crops with, i.e.
# the crops its published VGGFace2/CASIA-WebFace weights were evaluated on.
FACENET_MARGIN = 14

# How the part of a chip that lies outside the image is filled, for a face cut by the border.
# Mirroring the image at its edge continues the face with a plausible (roughly symmetric)
# face half, where repeating the edge pixels smears stripes the network has never seen: on
# ../shared/faces the face cut by the right border (probes/obama_partial_2.jpg) scores 0.895
# against obama_4.jpg mirrored and 0.868 replicated (dlib-resnet, README "Flip test-time augmentation").
BORDER_MODE = cv2.BORDER_REFLECT_101

# Where dlib's face chips put MTCNN's five landmarks (left eye, right eye, nose, left and right
# mouth corner), in a 150x150 chip; from the face engine issue, matching dlib's
# get_face_chip(size=150, padding=0.25) placement.
DLIB_TEMPLATE_150 = np.array(
    [
        [46.88, 38.51],
        [105.52, 37.56],
        [72.66, 77.33],
        [51.54, 100.16],
        [104.47, 98.94],
    ],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation mapping ``src`` points onto ``dst``.

    Umeyama's closed form; returns the 2x3 matrix for ``cv2.warpAffine``. A similarity (not a
    full affine) keeps the face's proportions, which the embedders rely on.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rotation = u @ np.diag(d) @ vt
    var_src = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / var_src if var_src > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def aligned_chips(
    image: np.ndarray,
    landmarks: np.ndarray,
    size: int = 150,
    template: np.ndarray = DLIB_TEMPLATE_150,
) -> np.ndarray:
    """Warp each face so its landmarks land on ``template``; returns N x size x size x 3 uint8.

    ``landmarks`` is N x 5 x 2 in image pixels. Pixels outside the image are the image mirrored
    at its edge (``BORDER_MODE``), so a face cut by the border is padded rather than distorted.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    scaled_template = template * (size / 150.0)
    out = np.empty((len(landmarks), size, size, 3), dtype=np.uint8)
    for i, points in enumerate(landmarks):
        matrix = similarity_transform(points, scaled_template)
        out[i] = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=BORDER_MODE)
    return out


def box_crops(image: np.ndarray, boxes: np.ndarray, size: int = 160, margin: float = FACENET_MARGIN) -> np.ndarray:
    """Square-resized box crops exactly as facenet-pytorch's documented path makes them.

    That path is ``MTCNN(image_size=160, margin=...)(PIL image)``: ``extract_face`` widens the
    box by ``margin`` pixels of the output crop, clips it to the image, truncates it to whole
    pixels and resizes with PIL's bilinear filter. PIL, not OpenCV: for a numpy array
    facenet-pytorch resizes with OpenCV's area filter instead, up to 115 grey levels apart from
    the documented path on ../shared/faces (tests/integration/test_facenet_parity.py). One deliberate
    difference: a box that reaches past the image border is padded (mirrored) rather than
    clipped, so a face cut by the border is not squeezed into the square.
    """
    height, width = image.shape[:2]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.empty((len(boxes), size, size, 3), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        mx = margin * (x2 - x1) / (size - margin)
        my = margin * (y2 - y1) / (size - margin)
        # floor == int() inside the image; outside it the crop keeps its shape (see below).
        left, top = math.floor(x1 - mx / 2), math.floor(y1 - my / 2)
        right, bottom = math.floor(x2 + mx / 2), math.floor(y2 + my / 2)
        inside = image[max(top, 0) : min(bottom, height), max(left, 0) : min(right, width)]
        if inside.size == 0 or right <= left or bottom <= top:
            out[i] = 0
            continue
        pads = (max(0, -top), max(0, bottom - height), max(0, -left), max(0, right - width))
        if any(pads) and min(inside.shape[:2]) > 1:
            # A face cut by the border: facenet-pytorch clips the box and so squeezes the face
            # into the square; mirroring the image at the edge keeps its proportions instead.
            pads = tuple(min(p, n - 1) for p, n in zip(pads, (inside.shape[0],) * 2 + (inside.shape[1],) * 2))
            inside = cv2.copyMakeBorder(np.ascontiguousarray(inside), *pads, BORDER_MODE)
        crop = Image.fromarray(np.ascontiguousarray(inside))
        out[i] = np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR))
    return out

"""Face crops for the embedders: landmark-aligned chips and plain box crops.

Embedders are trained on faces placed in a fixed way; feeding them the same placement is worth
more accuracy than any threshold tuning. dlib's ResNet expects a 150x150 chip whose eyes, nose
and mouth corners sit at fixed points; FaceNet's InceptionResnetV1 was trained on MTCNN's square
160x160 box crops, so it gets those.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

# Pixels of margin around an MTCNN box in FaceNet's 160x160 crop: what facenet-pytorch's own LFW
# evaluation (examples/lfw_evaluate.ipynb: MTCNN(image_size=160, margin=14)) crops with, i.e.
# the crops its published VGGFace2/CASIA-WebFace weights were evaluated on.
FACENET_MARGIN = 14

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

    ``landmarks`` is N x 5 x 2 in image pixels. Pixels outside the image are filled by edge
    replication rather than black, so a face cut by the border does not get a hard black edge
    that the network has never seen.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    scaled_template = template * (size / 150.0)
    out = np.empty((len(landmarks), size, size, 3), dtype=np.uint8)
    for i, points in enumerate(landmarks):
        matrix = similarity_transform(points, scaled_template)
        out[i] = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def box_crops(image: np.ndarray, boxes: np.ndarray, size: int = 160, margin: float = FACENET_MARGIN) -> np.ndarray:
    """Square-resized box crops exactly as facenet-pytorch's documented path makes them.

    That path is ``MTCNN(image_size=160, margin=...)(PIL image)``: ``extract_face`` widens the
    box by ``margin`` pixels of the output crop, clips it to the image, truncates it to whole
    pixels and resizes with PIL's bilinear filter. PIL, not OpenCV: for a numpy array
    facenet-pytorch resizes with OpenCV's area filter instead, up to 115 grey levels apart from
    the documented path on ../shared/faces (tests/integration/test_facenet_parity.py).
    """
    height, width = image.shape[:2]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.empty((len(boxes), size, size, 3), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        mx = margin * (x2 - x1) / (size - margin)
        my = margin * (y2 - y1) / (size - margin)
        left = int(max(x1 - mx / 2, 0))
        top = int(max(y1 - my / 2, 0))
        right = int(min(x2 + mx / 2, width))
        bottom = int(min(y2 + my / 2, height))
        if right <= left or bottom <= top:
            out[i] = 0
            continue
        crop = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))
        out[i] = np.asarray(crop.resize((size, size), Image.BILINEAR))
    return out

"""MTCNN face detection: facenet-pytorch's trained P/R/O-nets, driven by a faster cascade.

facenet-pytorch's own ``detect_face`` spends most of its CPU time outside the networks: it builds
the image pyramid with torch's "area" interpolation (an adaptive average pool, slow on CPU) and
crops every candidate box for the R- and O-nets in a Python loop. Here the pyramid is made with
OpenCV on uint8 pixels, the candidate crops with OpenCV too, and large photos are
detected on a downscaled copy whose boxes and landmarks are mapped back. The networks and their
weights (shipped inside the facenet-pytorch wheel, so this works offline) are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torchvision.ops import batched_nms


@dataclass(frozen=True)
class Face:
    """One detected face in original-image pixels."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray = field(repr=False)  # 5 x 2: left eye, right eye, nose, mouth l/r

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def to_dict(self) -> dict:
        """JSON-ready form: floats rounded to what pixels can mean."""
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 5),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
        }


@dataclass(frozen=True)
class DetectorConfig:
    """Knobs of the cascade; the defaults are MTCNN's published ones (Zhang et al. 2016)."""

    min_face_size: int = 20
    min_score: float = 0.94  # see Settings.min_score for where the number comes from
    max_side: int = 1280
    stage_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    pyramid_factor: float = 0.709


def _normalize(pixels: torch.Tensor) -> torch.Tensor:
    """MTCNN's input scaling, laid out channels-last for the faster CPU kernels."""
    return ((pixels - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to a square around its centre (MTCNN's ``rerec``)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x1 = boxes[:, 0] + w * 0.5 - side * 0.5
    y1 = boxes[:, 1] + h * 0.5 - side * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side], dim=1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply the nets' box regression (MTCNN's ``bbreg``)."""
    w = (boxes[:, 2] - boxes[:, 0] + 1).unsqueeze(1)
    h = (boxes[:, 3] - boxes[:, 1] + 1).unsqueeze(1)
    scale = torch.cat([w, h, w, h], dim=1)
    return boxes + offsets * scale


def _nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS with intersection over the *smaller* box, MTCNN's last-stage rule.

    It removes a small box sitting inside a bigger face, which IoU-NMS keeps.
    """
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)[::-1]
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        overlap = w * h / np.minimum(area[i], area[rest])
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


class MTCNNDetector:
    """Batched MTCNN over images of any sizes; thread-safe for concurrent ``detect`` calls."""

    name = "mtcnn"

    def __init__(self, config: DetectorConfig | None = None, device: torch.device | str = "cpu") -> None:
        from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

        self.config = config or DetectorConfig()
        self.device = torch.device(device)
        # pretrained=True reads the weights bundled in the facenet-pytorch wheel: no download.
        # channels_last roughly halves the CPU time of these small nets (max-pool above all).
        self.pnet = PNet(pretrained=True).to(self.device, memory_format=torch.channels_last).eval()
        self.rnet = RNet(pretrained=True).to(self.device, memory_format=torch.channels_last).eval()
        self.onet = ONet(pretrained=True).to(self.device, memory_format=torch.channels_last).eval()

    # ------------------------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one H x W x 3 uint8 RGB image, best score first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces in each image; images of equal size share every network pass."""
        results: list[list[Face] | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError("detect expects H x W x 3 uint8 RGB images")
            groups.setdefault(image.shape[:2], []).append(index)
        for (height, width), indices in groups.items():
            scale = min(1.0, self.config.max_side / max(height, width))
            if scale < 1.0:
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                batch = [cv2.resize(images[i], size, interpolation=cv2.INTER_AREA) for i in indices]
            else:
                batch = [images[i] for i in indices]
            for index, faces in zip(indices, self._detect_same_size(batch, scale)):
                results[index] = faces
        return [faces or [] for faces in results]

    # ------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def _detect_same_size(self, images: list[np.ndarray], scale_to_original: float) -> list[list[Face]]:
        cfg = self.config
        height, width = images[0].shape[:2]
        # min_face_size counts pixels of the image the nets see: on a downscaled copy the
        # smallest face found is min_face_size / scale original pixels. That is where the time
        # goes (the pyramid's first level), and faces that small in a 12-megapixel photo are
        # rarely what the user wants named.
        min_face = max(12.0, float(cfg.min_face_size))
        boxes, image_ids = self._propose(images, min_face, height, width)
        if len(boxes):
            boxes, image_ids = self._refine(images, boxes, image_ids)
        if len(boxes):
            boxes, scores, points, image_ids = self._output(images, boxes, image_ids)
        else:
            scores = torch.zeros(0)
            points = torch.zeros(0, 5, 2)

        boxes_np = boxes.cpu().numpy().astype(np.float64) / scale_to_original
        points_np = points.cpu().numpy().astype(np.float64) / scale_to_original
        scores_np = scores.cpu().numpy().astype(np.float64)
        ids_np = image_ids.cpu().numpy() if len(boxes) else np.zeros(0, dtype=np.int64)
        out: list[list[Face]] = [[] for _ in images]
        for b in range(len(images)):
            for i in np.flatnonzero(ids_np == b):
                if scores_np[i] < cfg.min_score:
                    continue
                x1, y1, x2, y2 = (float(v) for v in boxes_np[i, :4])
                box = (x1, y1, x2, y2)
                out[b].append(Face(box=box, score=float(scores_np[i]), landmarks=points_np[i]))
            out[b].sort(key=lambda face: -face.score)
        return out

    def _propose(
        self, images: list[np.ndarray], min_face: float, height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1: P-net over an image pyramid; candidate boxes (x1,y1,x2,y2,score) per image."""
        cfg = self.config
        scale = 12.0 / min_face
        shortest = min(height, width) * scale
        all_boxes, all_ids = [], []
        previous = list(images)
        while shortest >= 12:
            size = (int(width * scale + 1), int(height * scale + 1))
            # Each level is area-averaged from the one before, not from the full image: the same
            # anti-aliasing (plain bilinear lets hair and textures alias into face-like patterns
            # that MTCNN scores up to 0.94) at a fraction of the cost on large images.
            previous = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in previous]
            level = np.stack(previous)
            tensor = _normalize(torch.from_numpy(level).to(self.device).permute(0, 3, 1, 2).float())
            prob, features = self._pnet_scores(tensor)
            mask = prob >= cfg.stage_thresholds[0]
            idx = mask.nonzero()
            if len(idx):
                score = prob[mask]
                offsets = self._pnet_offsets(features, mask)
                cells = idx[:, 1:].flip(1).float()  # (x, y) of each cell
                q1 = ((2 * cells + 1) / scale).floor()
                q2 = ((2 * cells + 12) / scale).floor()
                boxes = torch.cat([q1, q2], dim=1)
                keep = batched_nms(boxes, score, idx[:, 0], 0.5)
                all_boxes.append(torch.cat([boxes[keep], score[keep, None], offsets[keep]], dim=1))
                all_ids.append(idx[keep, 0])
            scale *= cfg.pyramid_factor
            shortest *= cfg.pyramid_factor
        if not all_boxes:
            return torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
        cand = torch.cat(all_boxes)
        ids = torch.cat(all_ids)
        keep = batched_nms(cand[:, :4], cand[:, 4], ids, 0.7)
        cand, ids = cand[keep], ids[keep]
        w = (cand[:, 2] - cand[:, 0]).unsqueeze(1)
        h = (cand[:, 3] - cand[:, 1]).unsqueeze(1)
        boxes = cand[:, :4] + cand[:, 5:9] * torch.cat([w, h, w, h], dim=1)
        return _square(boxes), ids

    def _pnet_scores(self, tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """P-net's face probability per cell, and the features its box regression reads.

        ``PNet.forward`` runs its 2-way softmax and its regression over every cell of the level;
        here the probability is the same softmax written as a sigmoid of the logit difference
        (equal to ~1e-7) and the regression (:meth:`_pnet_offsets`) runs only on the cells that
        pass. The faces found are bit-for-bit the same on the shared photos and video frames, for
        3.5% less CPU time per frame of the test videos (one core, interleaved A/B).
        """
        net = self.pnet
        x = net.prelu1(net.conv1(tensor))
        x = net.prelu2(net.conv2(net.pool1(x)))
        features = net.prelu3(net.conv3(x))
        logits = net.conv4_1(features)
        return torch.sigmoid(logits[:, 1] - logits[:, 0]), features

    def _pnet_offsets(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """P-net's 1x1 regression conv applied to the masked cells only (K x 4)."""
        conv = self.pnet.conv4_2
        return torch.nn.functional.linear(features.permute(0, 2, 3, 1)[mask], conv.weight.flatten(1), conv.bias)

    def _crops(self, images: Sequence[np.ndarray], boxes: torch.Tensor, ids: torch.Tensor, size: int) -> torch.Tensor:
        """Every candidate box resampled to size x size for the next net.

        As in facenet-pytorch (whose boxes the nets were tuned with), the part of a box outside
        the image is cut off and the inside stretched to the square, not padded with black:
        padding makes the O-net shrink boxes of faces cut by the border. OpenCV's bilinear resize on
        uint8 crops costs microseconds per box, far less than torch's resampling on CPU.
        """
        height, width = images[0].shape[:2]
        coords = boxes.trunc().cpu().numpy().astype(np.int64)
        owners = ids.cpu().numpy()
        out = np.zeros((len(coords), size, size, 3), dtype=np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(coords):
            x1, y1 = max(x1, 1) - 1, max(y1, 1) - 1
            x2, y2 = min(x2, width), min(y2, height)
            if x2 > x1 and y2 > y1:
                out[i] = cv2.resize(images[owners[i]][y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_LINEAR)
        return _normalize(torch.from_numpy(out).to(self.device).permute(0, 3, 1, 2).float())

    def _refine(
        self, images: Sequence[np.ndarray], boxes: torch.Tensor, ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 2: R-net rejects most candidates and tightens the rest."""
        offsets, probs = self.rnet(self._crops(images, boxes, ids, 24))
        score = probs[:, 1]
        passed = score > self.config.stage_thresholds[1]
        boxes, ids, score, offsets = boxes[passed], ids[passed], score[passed], offsets[passed]
        keep = batched_nms(boxes, score, ids, 0.7)
        boxes = _regress(boxes[keep], offsets[keep])
        return _square(boxes), ids[keep]

    def _output(
        self, images: Sequence[np.ndarray], boxes: torch.Tensor, ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage 3: O-net scores, final boxes and the five landmarks."""
        offsets, landmarks, probs = self.onet(self._crops(images, boxes, ids, 48))
        score = probs[:, 1]
        passed = score > self.config.stage_thresholds[2]
        boxes, ids, score = boxes.trunc()[passed], ids[passed], score[passed]
        offsets, landmarks = offsets[passed], landmarks[passed]
        w = (boxes[:, 2] - boxes[:, 0] + 1).unsqueeze(1)
        h = (boxes[:, 3] - boxes[:, 1] + 1).unsqueeze(1)
        xs = w * landmarks[:, :5] + boxes[:, 0:1] - 1
        ys = h * landmarks[:, 5:10] + boxes[:, 1:2] - 1
        points = torch.stack([xs, ys], dim=2)
        boxes = _regress(boxes, offsets)
        if not len(boxes):
            return boxes, score, points, ids
        keep_all: list[np.ndarray] = []
        boxes_np, score_np, ids_np = boxes.cpu().numpy(), score.cpu().numpy(), ids.cpu().numpy()
        for image_id in np.unique(ids_np):
            members = np.flatnonzero(ids_np == image_id)
            keep_all.append(members[_nms_min(boxes_np[members], score_np[members], 0.7)])
        keep = torch.from_numpy(np.concatenate(keep_all)).to(boxes.device)
        return boxes[keep], score[keep], points[keep], ids[keep]


def pick_largest(faces: Sequence[Face]) -> Face | None:
    """The face with the largest box: the subject of a portrait or an enrollment photo."""
    return max(faces, key=lambda face: face.area, default=None)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two x1,y1,x2,y2 boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


__all__ = ["DetectorConfig", "Face", "MTCNNDetector", "iou", "pick_largest"]

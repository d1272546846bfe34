"""P-net's head as the detector runs it (probability as a sigmoid, regression on passing cells
only) against facenet-pytorch's own ``PNet.forward`` on a real photo's pyramid levels."""

from __future__ import annotations

import cv2
import torch

from inference_service.engine import load_image
from inference_service.engine.detection import _normalize


def test_pnet_head_matches_facenet_pytorch(engine, manifest):
    detector = engine.detector
    row = next(r for r in manifest if r.role == "multi")
    image = load_image(row.path.read_bytes())
    checked = 0
    with torch.inference_mode():
        for scale in (0.6, 0.3, 0.1):
            size = (int(image.shape[1] * scale + 1), int(image.shape[0] * scale + 1))
            level = cv2.resize(image, size, interpolation=cv2.INTER_AREA)[None]
            tensor = _normalize(torch.from_numpy(level).permute(0, 3, 1, 2).float())
            reg, probs = detector.pnet(tensor)
            prob, features = detector._pnet_scores(tensor)
            assert torch.allclose(prob, probs[:, 1], atol=1e-6)
            mask = prob >= 0.6
            offsets = detector._pnet_offsets(features, mask)
            assert torch.allclose(offsets, reg.permute(0, 2, 3, 1)[mask], atol=1e-5)
            checked += int(mask.sum())
    assert checked > 0, "no cell passed: the comparison of the regression would be empty"

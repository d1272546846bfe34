"""Our FaceNet path against facenet-pytorch's own documented one, with the same saved weights.

facenet-pytorch's path: ``MTCNN(image_size=160, margin=14)`` on a PIL image (its box widened by
the margin, cropped, PIL-bilinear resized, ``fixed_image_standardization``), then
``InceptionResnetV1``. Ours: the engine's FaceNet embedder on the same box, its weights loaded
from the saved file by our loader. The published weights cannot be downloaded here, so the file
holds random weights; a freshly initialised network maps every face to nearly the same vector
(measured: every pair of different faces at cosine 1.0000, so a comparison on it could not fail),
so its batch-norm statistics are first taken from the faces themselves, after which different
faces score a median cosine of about 0.35 and a wrong crop shows (OpenCV's area resize instead of
PIL's bilinear: median 0.97, worst 0.71).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from facenet_pytorch import MTCNN, InceptionResnetV1
from PIL import Image

from inference_service.config import Settings
from inference_service.engine import Face, FaceEngine, iou, load_image
from inference_service.engine.alignment import FACENET_MARGIN
from inference_service.engine.embedders.facenet import WEIGHT_FILES


@pytest.fixture(scope="module")
def labelled(manifest):
    """(our RGB image, facenet-pytorch's box and standardised crop) for every labelled face."""
    mtcnn = MTCNN(image_size=160, margin=FACENET_MARGIN, keep_all=True, post_process=True, device="cpu")
    out = []
    for row in manifest:
        if row.role == "video" or not row.faces:
            continue
        image = load_image(row.path.read_bytes())  # upright 8-bit RGB
        pil = Image.fromarray(image)
        boxes, _ = mtcnn.detect(pil)
        crops = mtcnn.extract(pil, boxes, None)
        for face in row.faces:
            j = max(range(len(boxes)), key=lambda k: iou(boxes[k], face.box))
            assert iou(boxes[j], face.box) > 0.3, f"facenet-pytorch's MTCNN missed {face} in {row.path}"
            out.append((f"{row.path.name}:{face.identity}", image, boxes[j], crops[j]))
    return out


@pytest.fixture(scope="module")
def saved_weights(labelled, tmp_path_factory):
    """Random InceptionResnetV1 weights, batch-norm statistics from the faces, saved as the vggface2 file."""
    torch.manual_seed(0)
    model = InceptionResnetV1(pretrained=None)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the one pass
    model.train()
    with torch.no_grad():
        model(torch.stack([crop for *_, crop in labelled]))
    folder = tmp_path_factory.mktemp("weights")
    torch.save(model.state_dict(), folder / WEIGHT_FILES["vggface2"])
    return folder


def _reaches_past_border(image: np.ndarray, box) -> bool:
    """The margin-widened box leaves the image: there we pad where facenet-pytorch clips."""
    x1, y1, x2, y2 = box
    mx = FACENET_MARGIN * (x2 - x1) / (160 - FACENET_MARGIN)
    my = FACENET_MARGIN * (y2 - y1) / (160 - FACENET_MARGIN)
    height, width = image.shape[:2]
    return x1 - mx / 2 < 0 or y1 - my / 2 < 0 or x2 + mx / 2 > width or y2 + my / 2 > height


def test_our_facenet_embedding_is_facenet_pytorchs(labelled, saved_weights, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(saved_weights / "torch-home"))  # nothing from the real cache
    # facenet-pytorch embeds one view: compare without the flip augmentation, and only faces
    # inside the image (a face cut by the border is padded by us, clipped and squeezed by it).
    labelled = [item for item in labelled if not _reaches_past_border(item[1], item[2])]
    engine = FaceEngine.from_settings(Settings(embedder="facenet-vggface2", weights_dir=saved_weights, flip_tta=False))
    reference = InceptionResnetV1(pretrained=None).eval()
    reference.load_state_dict(torch.load(saved_weights / WEIGHT_FILES["vggface2"]), strict=False)

    ours = np.stack(
        [
            engine.embed_faces(image, [Face(tuple(float(v) for v in box), 1.0, np.zeros((5, 2)))])[0]
            for _, image, box, _ in labelled
        ]
    )
    with torch.inference_mode():
        theirs = torch.nn.functional.normalize(reference(torch.stack([c for *_, c in labelled])), dim=1).numpy()

    cosines = (ours * theirs).sum(axis=1)
    print(
        f"{len(cosines)} faces: cosine ours vs facenet-pytorch min {cosines.min():.6f}, median {np.median(cosines):.6f}"
    )
    worst = int(np.argmin(cosines))
    assert len(labelled) >= 35  # 37 of the 44 labelled faces lie inside the image with their margin
    assert cosines.min() >= 0.999, f"{labelled[worst][0]}: cosine {cosines.min():.5f}"
    # the network tells faces apart, so the comparison above could fail
    different = (theirs @ theirs.T)[~np.eye(len(theirs), dtype=bool)]
    assert np.median(different) < 0.8, np.median(different)

"""The face engine on real faces: detection against the manifest, recognition with dlib-resnet."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inference_service.engine import iou, load_image, pick_largest
from inference_service.engine.detection import DetectorConfig, MTCNNDetector
from inference_service.gallery import Gallery, MemoryStore

DETECTED_ROLES = ("gallery", "probe", "multi", "resolution", "hard")


def _image(path) -> np.ndarray:
    return load_image(path.read_bytes())


@pytest.fixture(scope="module")
def detections(engine, manifest):
    """Every photo of the roles above, detected once for the whole module."""
    return {
        row.path: (row, _image(row.path), engine.detect(_image(row.path)))
        for row in manifest
        if row.role in DETECTED_ROLES
    }


def _match(faces, box):
    best = max(faces, key=lambda f: iou(f.box, box), default=None)
    return best if best is not None and iou(best.box, box) >= 0.5 else None


def test_every_labelled_face_is_found(detections):
    missed = [
        f"{row.path.name}: {lf.identity}@{lf.box}"
        for row, _, faces in detections.values()
        for lf in row.faces
        if _match(faces, lf.box) is None
    ]
    assert not missed, f"labelled faces not detected (IoU >= 0.5): {missed}"


def test_landmarks_lie_inside_their_face(detections):
    for _, _, faces in detections.values():
        for face in faces:
            x1, y1, x2, y2 = face.box
            eyes_y = face.landmarks[:2, 1].mean()
            mouth_y = face.landmarks[3:, 1].mean()
            assert face.landmarks.shape == (5, 2)
            assert x1 - 5 <= face.landmarks[:, 0].min() and face.landmarks[:, 0].max() <= x2 + 5
            assert eyes_y < mouth_y, "eyes must be above the mouth in upright photos"
            assert face.landmarks[0, 0] < face.landmarks[1, 0], "left eye is left of the right eye"


def test_no_face_in_a_plain_image(engine):
    rng = np.random.default_rng(0)
    flat = np.full((480, 640, 3), 128, np.uint8)
    noise = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert engine.detect(flat) == []
    assert engine.detect(noise) == []


def test_min_score_filters(faces_dir):
    image = _image(faces_dir / "multi/six_faces.jpg")
    strict = MTCNNDetector(DetectorConfig(min_score=0.99999999))
    default = MTCNNDetector(DetectorConfig())
    assert len(strict.detect(image)) < len(default.detect(image)) == 6


def test_downscaled_path_finds_the_same_faces(faces_dir):
    """A 1080p photo detected on a 1280-wide copy gives the boxes of full resolution."""
    image = _image(faces_dir / "resolution/obama_1080p.jpg")
    full = MTCNNDetector(DetectorConfig(max_side=4000)).detect(image)
    down = MTCNNDetector(DetectorConfig(max_side=1280)).detect(image)
    assert len(full) == len(down) == 1
    assert iou(full[0].box, down[0].box) > 0.85
    assert np.abs(full[0].landmarks - down[0].landmarks).max() < 0.05 * full[0].width
    # And a 4000x3000 upscale is detected on the downscaled copy with boxes in its own pixels.
    big = np.asarray(Image.fromarray(image).resize((4000, 3000)))
    (face,) = MTCNNDetector(DetectorConfig(max_side=1280)).detect(big)
    scaled = [v * 4000 / 1920 if i % 2 == 0 else v * 3000 / 1080 for i, v in enumerate(full[0].box)]
    assert iou(face.box, scaled) > 0.8


def test_batch_detection_equals_single(engine, faces_dir):
    paths = ["multi/obama_biden_1.jpg", "gallery/biden/1.jpg", "multi/kit_rose.jpg"]
    images = [_image(faces_dir / p) for p in paths]
    batched = engine.detect_batch(images + [images[0]])
    for image, faces in zip(images + [images[0]], batched):
        single = engine.detect(image)
        assert len(single) == len(faces)
        for a, b in zip(sorted(single, key=lambda f: f.box), sorted(faces, key=lambda f: f.box)):
            assert iou(a.box, b.box) > 0.99


@pytest.fixture(scope="module")
def enrolled(engine, detections):
    """The `gallery` rows enrolled into an in-memory gallery."""
    gallery = Gallery(MemoryStore(), engine.embedder.name, engine.embedder.dim)
    for row, image, faces in detections.values():
        if row.role != "gallery":
            continue
        (labelled,) = row.faces
        face = _match(faces, labelled.box)
        gallery.enroll(labelled.identity, engine.embed_faces(image, [face]))
    return gallery


def test_gallery_holds_all_ten_identities(enrolled):
    assert enrolled.stats()["identities"] == 10


@pytest.mark.parametrize("role", ["probe", "multi", "resolution"])
def test_probes_are_recognised(role, engine, detections, enrolled):
    wrong = []
    checked = 0
    for row, image, faces in detections.values():
        if row.role != role:
            continue
        labelled = [lf for lf in row.faces]
        matched = [_match(faces, lf.box) for lf in labelled]
        vectors = engine.embed_faces(image, matched)
        for lf, result in zip(labelled, enrolled.search(vectors, engine.threshold)):
            expected = None if lf.identity == "?" else lf.identity
            checked += 1
            if result.identity != expected:
                wrong.append(f"{row.path.name}: {lf.identity} -> {result.identity} ({result.similarity:.3f})")
    assert checked > 0
    assert not wrong, f"misrecognised at threshold {engine.threshold}: {wrong}"


def test_six_strangers_stay_unknown(engine, faces_dir, enrolled):
    image = _image(faces_dir / "multi/six_faces.jpg")
    faces = engine.detect(image)
    results = enrolled.search(engine.embed_faces(image, faces), engine.threshold)
    assert len(results) == 6
    assert all(r.identity is None for r in results), [(r.candidates[0]) for r in results]


def test_candidates_are_per_identity_and_sorted(engine, faces_dir, enrolled):
    image = _image(faces_dir / "probes/obama_3.jpg")
    face = pick_largest(engine.detect(image))
    (result,) = enrolled.search(engine.embed_faces(image, [face]), engine.threshold, top_k=5)
    names = [c.identity for c in result.candidates]
    sims = [c.similarity for c in result.candidates]
    assert len(names) == len(set(names)) == 5
    assert sims == sorted(sims, reverse=True)
    assert names[0] == "obama"


def test_embeddings_are_unit_length_with_the_declared_dim(engine, faces_dir):
    image = _image(faces_dir / "multi/six_faces.jpg")
    analysed = engine.analyze(image)
    vectors = np.stack([a.embedding for a in analysed])
    assert vectors.shape == (6, engine.embedder.dim) == (6, 128)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Batching must not change the answer.
    one_by_one = np.concatenate([engine.embed_faces(image, [a.face]) for a in analysed])
    assert np.allclose(one_by_one, vectors, atol=1e-5)


def test_similarity_transform_recovers_a_known_pose():
    from inference_service.engine.alignment import DLIB_TEMPLATE_150, similarity_transform

    angle, scale, shift = np.deg2rad(17.0), 2.3, np.array([310.0, -42.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    photo_points = (DLIB_TEMPLATE_150 @ rotation.T) * scale + shift
    matrix = similarity_transform(photo_points, DLIB_TEMPLATE_150)
    mapped = photo_points @ matrix[:, :2].T + matrix[:, 2]
    assert np.allclose(mapped, DLIB_TEMPLATE_150, atol=1e-6)


def test_aligned_chips_put_landmarks_on_the_template(engine, faces_dir):
    from inference_service.engine.alignment import DLIB_TEMPLATE_150, similarity_transform

    image = _image(faces_dir / "gallery/obama/2.jpg")
    face = pick_largest(engine.detect(image))
    matrix = similarity_transform(face.landmarks, DLIB_TEMPLATE_150)
    mapped = face.landmarks @ matrix[:, :2].T + matrix[:, 2]
    # A real face is not the template, so points miss by a few pixels of the 150-pixel chip; a
    # wrong landmark order or a mirrored fit misses by tens.
    assert np.linalg.norm(mapped - DLIB_TEMPLATE_150, axis=1).mean() < 6.0
    assert np.linalg.norm(mapped - DLIB_TEMPLATE_150, axis=1).max() < 10.0

"""FaceNet weight loading: configured files, facenet-pytorch's cache, and clear failures.

The real VGGFace2 weights cannot be downloaded here, so these tests save a state dict of the
same architecture (random weights) and check that the loader finds it, loads it exactly, and
that the embedder around it produces unit 512-d vectors on real faces.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from facenet_pytorch import InceptionResnetV1

from inference_service.config import Settings
from inference_service.engine import FaceEngine
from inference_service.engine.embedders import WeightsUnavailableError, create_embedder, facenet, resolve_auto
from inference_service.engine.embedders.facenet import WEIGHT_FILES, load_inception_resnet


@pytest.fixture(scope="module")
def saved_state(tmp_path_factory):
    """A state dict shaped like the published vggface2 file, classifier head included."""
    torch.manual_seed(0)
    model = InceptionResnetV1(pretrained=None, classify=True, num_classes=8631).eval()
    folder = tmp_path_factory.mktemp("weights")
    path = folder / WEIGHT_FILES["vggface2"]
    torch.save(model.state_dict(), path)
    return folder, path, model.state_dict()


@pytest.fixture(autouse=True)
def empty_torch_home(tmp_path, monkeypatch):
    """Never touch the real cache; a download attempt must fail like on an offline machine."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def offline(url, dst, *args, **kwargs):
        raise OSError(f"network unreachable: {url}")

    monkeypatch.setattr(facenet.torch.hub, "download_url_to_file", offline)


@pytest.mark.parametrize("as_file", [False, True], ids=["folder", "file"])
def test_loads_configured_weights_exactly(saved_state, as_file):
    folder, path, state = saved_state
    model = load_inception_resnet("vggface2", path if as_file else folder, allow_download=False)
    loaded = model.state_dict()
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key
    assert not any(k.startswith("logits.") for k in loaded)


def test_found_in_facenet_pytorch_cache(saved_state, tmp_path):
    _, path, _ = saved_state
    cache = facenet.torch_cache_dir()
    cache.mkdir(parents=True)
    (cache / path.name).write_bytes(path.read_bytes())
    assert facenet.locate_weights("vggface2", None) == cache / path.name


def test_missing_weights_name_the_setting():
    with pytest.raises(WeightsUnavailableError, match="FACE_WEIGHTS_DIR"):
        create_embedder("facenet-vggface2", torch.device("cpu"), weights_dir=None)
    with pytest.raises(WeightsUnavailableError, match="FACE_WEIGHTS_DIR"):
        create_embedder("facenet-casia-webface", torch.device("cpu"), weights_dir=None)


def test_wrong_file_is_a_clear_error(tmp_path):
    bad = tmp_path / WEIGHT_FILES["vggface2"]
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    with pytest.raises(WeightsUnavailableError, match="does not fit InceptionResnetV1"):
        load_inception_resnet("vggface2", tmp_path, allow_download=False)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="not a readable"):
        load_inception_resnet("vggface2", tmp_path, allow_download=False)


def test_facenet_embedder_on_real_faces(saved_state, faces_dir):
    folder, _, _ = saved_state
    engine = FaceEngine.from_settings(Settings(embedder="facenet-vggface2", weights_dir=folder))
    from inference_service.engine import load_image

    analysed = engine.analyze(load_image((faces_dir / "multi/obama_biden_1.jpg").read_bytes()))
    vectors = np.stack([a.embedding for a in analysed])
    assert engine.embedder.name == "facenet-vggface2" and engine.embedder.dim == 512
    assert vectors.shape == (2, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert 0 < engine.threshold < 1


def test_auto_prefers_facenet_then_falls_back(saved_state, caplog):
    folder, _, _ = saved_state
    cpu = torch.device("cpu")
    assert resolve_auto(cpu, gallery_embedder=None, weights_dir=folder).name == "facenet-vggface2"
    with caplog.at_level("INFO"):
        fallback = resolve_auto(cpu, gallery_embedder=None, weights_dir=None)
    assert fallback.name == "dlib-resnet"
    # The expected path on an offline machine: one plain line saying which embedder and why, no warning.
    chosen = [r.getMessage() for r in caplog.records if "embedder (FACE_EMBEDDER=auto): dlib-resnet" in r.getMessage()]
    assert len(chosen) == 1 and "FACE_WEIGHTS_DIR" in chosen[0], caplog.text
    assert not [r for r in caplog.records if r.levelno >= 30], caplog.text
    # An existing gallery's embedder wins over everything: vectors are never mixed.
    assert resolve_auto(cpu, gallery_embedder="dlib-resnet", weights_dir=folder).name == "dlib-resnet"

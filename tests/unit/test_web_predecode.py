"""The result page's photo, decoded while the API works: the same image as decoding it afterwards,
and never ahead of the API for a photo the API may refuse as too large."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from web_frontend import predecode
from web_frontend.drawing import open_upright


def jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_the_photo_decoded_ahead_is_the_one_decoded_after():
    data = jpeg(64, 48, orientation=6)  # rotated by EXIF: upright it is 48 x 64
    pending = predecode.PendingPhoto(data)
    assert pending._future is not None  # decoding started before anyone asked
    ahead, after = pending.result(), open_upright(data)
    assert ahead.size == after.size == (48, 64)
    assert np.array_equal(np.asarray(ahead), np.asarray(after))


def test_a_photo_larger_than_the_api_allows_is_decoded_only_when_asked(monkeypatch):
    monkeypatch.setattr(predecode, "AHEAD_MAX_PIXELS", 64 * 48 - 1)
    pending = predecode.PendingPhoto(jpeg(64, 48))
    assert pending._future is None
    assert pending.result().size == (64, 48)


def test_not_an_image_fails_when_asked_not_before():
    pending = predecode.PendingPhoto(b"not an image at all")
    pending.cancel()
    with pytest.raises(Exception):  # noqa: B017 - whatever PIL raises, as before the change
        pending.result()

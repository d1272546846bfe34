"""Image loading: every common format becomes upright RGB; broken or hostile files fail clearly."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from inference_service.api.errors import image_status
from inference_service.engine import (
    CorruptImageError,
    ImageTooLargeError,
    UnsupportedImageError,
    load_image,
)

from support.image_factories import encode, exif_rotated_jpeg, png16, png_bomb


@pytest.fixture(scope="module")
def photo(faces_dir) -> np.ndarray:
    """A real portrait, 8-bit RGB."""
    return np.asarray(Image.open(faces_dir / "gallery/biden/1.jpg").convert("RGB"))


def _close(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    return a.shape == b.shape and float(np.abs(a.astype(float) - b.astype(float)).mean()) < tol


@pytest.mark.parametrize(
    "make, tol",
    [
        (lambda im: encode(im, "JPEG", quality=95), 4.0),
        (lambda im: encode(im, "PNG"), 0.01),
        (lambda im: encode(im.convert("RGBA"), "PNG"), 0.01),
        (lambda im: encode(im.convert("P", palette=Image.Palette.ADAPTIVE, colors=256), "PNG"), 12.0),
        (lambda im: encode(im, "WEBP", quality=95), 5.0),
        (lambda im: encode(im, "BMP"), 0.01),
        (lambda im: encode(im.convert("CMYK"), "JPEG", quality=95), 12.0),
        (lambda im: encode(im, "TIFF"), 0.01),
    ],
    ids=["jpeg", "png", "png-rgba", "png-palette", "webp", "bmp", "jpeg-cmyk", "tiff"],
)
def test_formats_become_rgb(photo, make, tol):
    out = load_image(make(Image.fromarray(photo)))
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert _close(out, photo, tol), "decoded pixels differ from the source picture"


def test_greyscale_becomes_three_equal_channels(photo):
    out = load_image(encode(Image.fromarray(photo).convert("L"), "PNG"))
    assert out.shape == photo.shape
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_sixteen_bit_png_keeps_its_range(photo):
    out = load_image(png16(photo))
    expected = np.asarray(Image.fromarray(photo).convert("L"))
    # Naive conversion clips 16-bit values to white; the picture must survive instead.
    assert out.shape == photo.shape
    assert np.abs(out[..., 0].astype(int) - expected.astype(int)).max() <= 1


def test_transparent_pixels_composite_on_white():
    rgba = np.zeros((20, 20, 4), np.uint8)  # fully transparent black
    out = load_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert (out == 255).all()


def test_exif_orientation_is_applied(photo, engine):
    data = exif_rotated_jpeg(photo, orientation=6)
    out = load_image(data)
    assert out.shape == photo.shape, "the sideways-stored JPEG must come back upright"
    assert _close(out, photo, 6.0)
    assert len(engine.detect(out)) == 1


def test_truncated_jpeg_is_a_clear_error(photo):
    data = encode(Image.fromarray(photo), "JPEG")
    with pytest.raises(CorruptImageError, match="truncated|damaged"):
        load_image(data[: len(data) // 2])


@pytest.mark.parametrize("data", [b"", b"not an image at all", bytes(range(256)) * 10])
def test_garbage_is_refused(data):
    with pytest.raises((UnsupportedImageError, CorruptImageError)) as info:
        load_image(data)
    assert image_status(info.value) in (400, 415)


def test_text_file_is_unsupported_media():
    with pytest.raises(UnsupportedImageError) as info:
        load_image(b"%PDF-1.4 hello")
    assert image_status(info.value) == 415


@pytest.mark.parametrize("size", [(40000, 40000), (8000, 6000)])
def test_pixel_bomb_refused_from_header(size):
    data = png_bomb(*size)
    assert len(data) < 10_000
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as info:
        load_image(data, max_pixels=40_000_000)
    assert time.perf_counter() - start < 0.5, "must refuse without decoding"
    assert image_status(info.value) == 413


def test_pixel_limit_is_configurable(photo):
    data = encode(Image.fromarray(photo), "PNG")
    h, w = photo.shape[:2]
    assert load_image(data, max_pixels=h * w).shape == photo.shape
    with pytest.raises(ImageTooLargeError, match="limit"):
        load_image(data, max_pixels=h * w - 1)

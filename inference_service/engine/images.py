"""Turn uploaded bytes into an upright RGB array, or a clear error.

Users send whatever their phone or tool produced: CMYK JPEGs, 16-bit or palette PNGs, WebP,
rotated-by-EXIF photos. The models want one thing (H x W x 3 uint8 RGB), and a hostile or broken
file must fail fast with a message the client can act on, never allocate gigabytes first.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Pillow's own bomb check is process-global; we check each image against our own limit from its
# header instead, so leave Pillow's at its default and only translate its exception.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(ValueError):
    """Base class: the bytes are not an image we can use. The subclass says which way; the
    API turns each into its status code (``api/errors.py``), this layer knows no HTTP."""


class UnsupportedImageError(ImageError):
    """Not an image format we can decode (or not an image at all)."""


class CorruptImageError(ImageError):
    """A known format whose data is truncated or damaged."""


class ImageTooLargeError(ImageError):
    """More pixels than the configured limit, judged from the header before decoding."""


def _to_uint8_rgb(img: Image.Image) -> Image.Image:
    """Normalise every Pillow mode to 8-bit RGB, keeping the visible picture."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.uint32 if mode == "I" else np.uint16)
        peak = 65535 if mode != "I" or arr.max(initial=0) > 255 else 255
        arr8 = (arr.astype(np.float32) * (255.0 / peak)).clip(0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if mode == "F":
        floats = np.asarray(img, dtype=np.float32)
        top = 1.0 if floats.max(initial=0) <= 1.0 else 255.0
        return Image.fromarray((floats * (255.0 / top)).clip(0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa"):
        # Transparent pixels carry arbitrary colour; composite on white like a browser would.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode != "RGB":
        return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return img


def _open_header(data: bytes) -> Image.Image:
    """Parse only the header (format, size); no pixel is decoded until ``load()``."""
    if not data:
        raise CorruptImageError("the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            # Our own limit decides; Pillow's softer warning level is noise here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image has too many pixels: {exc}") from None
    except UnidentifiedImageError:
        raise UnsupportedImageError(
            "the file is not an image in a supported format (JPEG, PNG, WebP, BMP, GIF, TIFF)"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(f"the image header could not be read: {exc}") from None
    width, height = img.size
    if width <= 0 or height <= 0:
        raise CorruptImageError("the image has no pixels")
    return img


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(f"image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}")


def image_pixels(data: bytes, max_pixels: int) -> int:
    """Width x height as the header declares them, without decoding any pixel.

    Lets a caller refuse a request whose images together would decode to too much memory
    before it decodes the first one. Raises the same errors as :func:`open_image`.
    """
    width, height = _open_header(data).size
    _check_pixels(width, height, max_pixels)
    return width * height


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode ``data`` into an upright 8-bit RGB PIL image.

    The pixel count is checked from the header, before any pixel is decoded, so a small file
    that claims 40000x40000 pixels is refused without allocating it.
    """
    img = _open_header(data)
    _check_pixels(*img.size, max_pixels)
    try:
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return _to_uint8_rgb(img)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image has too many pixels: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImageError(f"the image data is truncated or damaged: {exc}") from None


def load_image(data: bytes, max_pixels: int = 40_000_000) -> np.ndarray:
    """Decode ``data`` into a contiguous H x W x 3 uint8 RGB array (see :func:`open_image`)."""
    return np.ascontiguousarray(np.asarray(open_image(data, max_pixels), dtype=np.uint8))

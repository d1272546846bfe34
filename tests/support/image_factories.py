"""Build test images in memory: formats, EXIF rotation, pixel-bomb headers."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int = 40000, height: int = 40000) -> bytes:
    """A valid PNG header claiming width x height RGB pixels, with a few bytes of data.

    Decoding it would need width*height*3 bytes; a safe loader refuses it from the header.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png16(rgb: np.ndarray) -> bytes:
    """A 16-bit greyscale PNG of an 8-bit RGB image (values spread over 0..65535)."""
    grey = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.uint16) * 257
    img = Image.frombytes("I;16", (grey.shape[1], grey.shape[0]), grey.astype("<u2").tobytes())
    return encode(img, "PNG")


def exif_rotated_jpeg(rgb: np.ndarray, orientation: int = 6) -> bytes:
    """A JPEG stored sideways with an EXIF orientation tag saying how to turn it upright.

    Orientation 6 means "rotate 90 degrees clockwise to display", so the stored pixels are the
    upright picture turned 90 degrees counter-clockwise.
    """
    stored = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=92, exif=exif.tobytes())


def png_header_only(width: int, height: int, payload: int = 4096) -> bytes:
    """A valid PNG signature and IHDR claiming width x height, then a few KB of junk IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    junk = np.random.default_rng(0).bytes(payload)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", junk)

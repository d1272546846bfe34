"""The uploaded photo decoded while the API works on it.

A result page draws on the photo and cuts faces out of it, so the site must decode it; done after
the API's answer, that decode (about 5-15 ms for a 1280x720 JPEG here) adds to every request,
while during the API call (about 100 ms) the site only waits. So the decode starts on a small pool
as the API call starts, and the page takes the image when it needs it. Work and memory are what
they were: one decode per request, held until the page is written. Photos whose header claims
more pixels than the API's default limit are not decoded ahead: the API may refuse them, and then
the site must not have spent the time and memory.
"""

from __future__ import annotations

import io
from concurrent.futures import Future, ThreadPoolExecutor

from PIL import Image

from .drawing import open_upright

# The API's default FACE_MAX_PIXELS: larger photos are decoded only after the API accepted them.
AHEAD_MAX_PIXELS = 40_000_000
# Decodes running at once for all requests; more wait their turn (a decode is short).
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="site-decode")


def _header_pixels(data: bytes) -> int | None:
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            return image.width * image.height
    except Exception:  # noqa: BLE001 - not an image PIL knows: the API will say what is wrong
        return None


class PendingPhoto:
    """A photo being decoded (:func:`drawing.open_upright`) on the pool, or later on demand."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        pixels = _header_pixels(data)
        ahead = pixels is not None and pixels <= AHEAD_MAX_PIXELS
        self._future: Future[Image.Image] | None = _POOL.submit(open_upright, data) if ahead else None

    def result(self) -> Image.Image:
        """The decoded, upright photo; raises what decoding raised."""
        if self._future is None:
            return open_upright(self._data)
        return self._future.result()

    def cancel(self) -> None:
        """Not needed after all (the API refused the photo): drop it, unless already decoding."""
        if self._future is not None:
            self._future.cancel()

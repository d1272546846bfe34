"""Captions in annotated video are sized to the frame: readable at 640x360, not oversized at 4K."""

from __future__ import annotations

import numpy as np
import pytest

from inference_service.analysis.render import draw

GREEN = (60, 200, 60)


def caption_rows(width: int, height: int) -> int:
    """Height in pixels of the filled caption drawn above a face box in the middle of a black frame."""
    frame = np.zeros((height, width, 3), np.uint8)
    box = (width * 0.4, height * 0.5, width * 0.6, height * 0.8)
    draw(frame, [(box, "lin_manuel_miranda 0.95", GREEN)])
    column = frame[: int(box[1]), int(box[0]) + 1]  # just inside the box's left edge, above it
    return int(np.all(column == GREEN, axis=1).sum())


@pytest.mark.parametrize(("width", "height"), [(640, 360), (1280, 720)])
def test_captions_are_readable_on_small_frames(width, height):
    assert caption_rows(width, height) >= 18  # 14 px letters and their padding


def test_captions_grow_with_the_frame_but_stay_a_small_share_of_it():
    small, large = caption_rows(640, 360), caption_rows(3840, 2160)
    assert large > 2.5 * small
    assert large < 0.06 * 2160

"""The timeline picture of a finished video: one row per person, a bar per track, PNG.

Drawn with Pillow on the server (the pages carry no script). Named people get a row each, in
order of screen time; every unknown track shares one last row, since nobody knows whether two
unknown tracks are one person.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

WIDTH = 960
ROW = 30
LABEL_W = 200
AXIS_H = 28
PAD = 10
NAMED = (60, 160, 60)
UNKNOWN = (150, 150, 150)
GRID = (225, 228, 232)
TEXT = (30, 34, 40)
UNKNOWN_ROW = "unknown (all tracks)"


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without a scalable default font
        return ImageFont.load_default()


def rows_of(timeline: dict, people_order: list[str]) -> list[tuple[str, list[dict]]]:
    named: dict[str, list[dict]] = {}
    unknown: list[dict] = []
    for track in timeline.get("tracks", []):
        (named.setdefault(track["identity"], []) if track.get("identity") else unknown).append(track)
    order = [p for p in people_order if p in named] + sorted(p for p in named if p not in people_order)
    rows = [(p, named[p]) for p in order]
    if unknown:
        rows.append((UNKNOWN_ROW, unknown))
    return rows


def timeline_png(timeline: dict, people_order: list[str]) -> bytes:
    fps = float(timeline.get("fps") or 1.0)
    duration = max(float(timeline.get("frames") or 0) / fps, 0.1)
    rows = rows_of(timeline, people_order) or [("nobody was seen", [])]
    height = PAD * 2 + AXIS_H + ROW * len(rows)
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    font = _font(14)
    left, right = LABEL_W, WIDTH - PAD
    span = right - left

    def x(seconds: float) -> float:
        return left + span * min(max(seconds / duration, 0.0), 1.0)

    step = next(s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1e9) if duration / s <= 12)
    top = PAD
    bottom = PAD + ROW * len(rows)
    t = 0.0
    while t <= duration + 1e-9:
        draw.line([(x(t), top), (x(t), bottom)], fill=GRID)
        draw.text((x(t), bottom + 4), f"{t:g}s", fill=TEXT, font=font, anchor="ma")
        t += step
    for k, (label, tracks) in enumerate(rows):
        y = top + k * ROW
        draw.text((PAD, y + ROW / 2), label[:26], fill=TEXT, font=font, anchor="lm")
        colour = UNKNOWN if label == UNKNOWN_ROW else NAMED
        for track in tracks:
            x1, x2 = x(track["start"]), x(track["end"] + 1 / fps)
            draw.rectangle([x1, y + 6, max(x2, x1 + 2), y + ROW - 6], fill=colour)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()

"""Contact sheets: a grid of face crops in one JPEG, to see at a glance who a cluster is."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

TILE = 112
COLUMNS = 8
MAX_TILES = 48  # evenly spread over the cluster when it is larger
TITLE_HEIGHT = 28


def _tile(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    tile = np.full((TILE, TILE, 3), 32, np.uint8)
    if image is None:
        return tile
    h, w = image.shape[:2]
    scale = TILE / max(h, w)
    resized = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    y = (TILE - resized.shape[0]) // 2
    x = (TILE - resized.shape[1]) // 2
    tile[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
    return tile


def contact_sheet(crops: Sequence[Path], title: str, out: Path) -> Path:
    """Write up to ``MAX_TILES`` crops (evenly sampled, in order) under a one-line title."""
    if len(crops) > MAX_TILES:
        picks = np.linspace(0, len(crops) - 1, MAX_TILES).round().astype(int)
        crops = [crops[i] for i in picks]
    columns = min(COLUMNS, max(1, len(crops)))
    rows = max(1, -(-len(crops) // columns))
    sheet = np.full((TITLE_HEIGHT + rows * TILE, max(columns * TILE, 360), 3), 16, np.uint8)
    cv2.putText(sheet, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (240, 240, 240), 1, cv2.LINE_AA)
    for k, path in enumerate(crops):
        r, c = divmod(k, columns)
        sheet[TITLE_HEIGHT + r * TILE : TITLE_HEIGHT + (r + 1) * TILE, c * TILE : (c + 1) * TILE] = _tile(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return out

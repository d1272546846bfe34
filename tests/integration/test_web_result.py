"""The result page's numbering: face N is "N ..." on the drawn photo, row N of the table and the form
"Face N"; labels never cover one another or a neighbour's face; similarities rounded alike.

Real group photos of FACES_DIR with their labelled boxes (MANIFEST.tsv) stand in for the API's answer.
"""

from __future__ import annotations

import html
import io
import re

import pytest
from PIL import Image

from web_frontend.drawing import KNOWN_COLOUR, UNKNOWN_COLOUR, annotate, face_label

from support.site_fakes import FakeApi, recognize, site_app

GROUPS = ["multi/six_faces.jpg", "multi/obama_biden_1.jpg", "multi/biden_obama_2.jpg", "multi/kit_rose.jpg"]


def api_faces(row) -> list[dict]:
    """The API's answer for a labelled photo: known people matched, the others unknown."""
    faces = []
    for i, labelled in enumerate(row.faces):
        known = labelled.identity != "?"
        similarity = 0.9951 - 0.01 * i if known else 0.6125
        faces.append(
            {
                "box": list(labelled.box),
                "score": 0.99,
                "identity": labelled.identity if known else None,
                "similarity": similarity,
                "candidates": [{"identity": "someone", "similarity": similarity}],
            }
        )
    return faces


def gap(a, b) -> float:
    """Distance between two rectangles (0 when they touch or overlap)."""
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return max(dx, dy)


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("photo", GROUPS)
def test_labels_are_numbered_beside_their_face_and_cover_nothing(manifest, photo):
    row = next(r for r in manifest if r.path.as_posix().endswith(photo))
    faces = api_faces(row)
    drawn = annotate(row.path.read_bytes(), faces)
    scale = drawn.width / Image.open(row.path).width
    boxes = [[v * scale for v in f["box"]] for f in faces]
    assert [label.number for label in drawn.labels] == list(range(1, len(faces) + 1))
    image = Image.open(io.BytesIO(drawn.data)).convert("RGB")
    for label, face, box in zip(drawn.labels, faces, boxes):
        assert label.text in (f"{label.number} {face_label(face)}", str(label.number))
        assert gap(label.rect, box) <= 1.0, (label, box)  # on or against its own face's box
        for other in drawn.labels:
            assert other is label or not overlap(label.rect, other.rect), (label, other)
        for j, other_box in enumerate(boxes):
            assert j == label.number - 1 or not overlap(label.rect, other_box), (label, other_box)
        # drawn where reported, in the face's colour (a JPEG: close, not exact)
        x, y = int(label.rect[0]) + 1, int(label.rect[1]) + 1
        colour = KNOWN_COLOUR if face["identity"] else UNKNOWN_COLOUR
        assert max(abs(a - b) for a, b in zip(image.getpixel((x, y)), colour)) < 40, label
    # in these photos every label has room for its whole text
    assert all(label.text != str(label.number) for label in drawn.labels)


def test_the_image_the_table_and_the_forms_number_and_round_alike(manifest):
    row = next(r for r in manifest if r.path.as_posix().endswith("multi/obama_biden_1.jpg"))
    fake = FakeApi()
    fake.faces = api_faces(row)
    page = recognize(site_app(fake).test_client(), row.path.read_bytes()).get_data(as_text=True)
    alt = html.unescape(re.search(r'<img id="annotated"[^>]*alt="([^"]*)"', page).group(1))
    assert alt.endswith(": 1 obama 0.995; 2 biden 0.985"), alt
    table = re.findall(r'<tr id="face-(\d+)">\s*<td>(\d+)</td>\s*<td[^>]*>([^<]*)</td>\s*<td>([^<]*)</td>', page)
    assert table == [("1", "1", "obama", "0.995"), ("2", "2", "biden", "0.985")]
    forms = re.findall(r'alt="Face (\d+)"> Face \d+: ([^<]*)</summary>', page)
    assert forms == [("1", "obama 0.995"), ("2", "biden 0.985")]
    assert "1.00" not in page.replace("0.995", "") and "0.99 " not in page

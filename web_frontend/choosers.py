"""Who to offer when a person is merged or a face moved: the most similar identities first.

The order comes from the API's gallery report (pairs of identities closer than the threshold). The
report is a hint, not a need: when the API has none or cannot make one, the chooser still lists
everyone, by name, and says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from face_client import ApiError, FaceClient
from face_client.results import GalleryReport, SimilarPair

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Choice:
    name: str
    faces: int
    similarity: float | None  # to the person chosen for; None: not in the report's pairs


def report_or_none(api: FaceClient) -> GalleryReport | None:
    """The gallery report, or None when the API cannot give one (an older API answers 404)."""
    try:
        return api.gallery_report()
    except ApiError as exc:
        log.info("no gallery report for the chooser: %s", exc.message)
        return None


def similar_first(name: str, api: FaceClient) -> tuple[list[Choice], bool]:
    """Every other identity, those the report pairs with ``name`` first (most similar first), the
    rest by name; and whether a report was available to order them."""
    report = report_or_none(api)
    key = name.casefold()
    similar: dict[str, float] = {}
    pairs: list[SimilarPair] = report["pairs"] if report is not None else []
    for pair in pairs:
        a, b, sim = str(pair.get("a", "")), str(pair.get("b", "")), float(pair.get("similarity", 0.0))
        other = b if a.casefold() == key else a if b.casefold() == key else None
        if other is not None:
            similar[other.casefold()] = max(sim, similar.get(other.casefold(), sim))
    choices = [
        Choice(str(item.get("name", "")), int(item.get("faces", 0)), similar.get(str(item.get("name", "")).casefold()))
        for item in api.identities()
        if str(item.get("name", "")).casefold() != key
    ]
    choices.sort(key=lambda c: (c.similarity is None, -(c.similarity or 0.0), c.name.casefold()))
    return choices, report is not None

"""The maths of accuracy evaluation and threshold calibration, as pure functions of scores.

Conventions, shared by every function here so their answers agree with the service:
a pair (or a probe) is *accepted* when its cosine similarity is ``>= threshold`` (the gallery's
rule); FAR is the fraction of impostor pairs accepted, TAR the fraction of genuine pairs accepted.
Nothing here loads a model or touches a file, so each function is unit-tested on synthetic scores.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import roc_curve

# Similarity scores as the callers hold them: a list, or a numpy array straight from the pairs.
Scores = Sequence[float] | np.ndarray

# A FAR measured on n impostor pairs can only take the values 0, 1/n, 2/n, ...: below about
# 10/n a target is met by luck of a handful of pairs. These are the two limits the notes use.
RESOLVABLE_PAIRS = 1  # at least one impostor may be accepted at the target: n * far >= 1
RELIABLE_PAIRS = 10  # ten or more: the estimate is stable to roughly +-30%


def _scores(values: Scores) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


def rates_at(genuine: Scores, impostor: Scores, threshold: float) -> tuple[float, float]:
    """(TAR, FAR) when every pair with similarity >= ``threshold`` is accepted."""
    g, i = _scores(genuine), _scores(impostor)
    tar = float(np.mean(g >= threshold)) if g.size else float("nan")
    far = float(np.mean(i >= threshold)) if i.size else float("nan")
    return tar, far


def accuracy_at(genuine: Scores, impostor: Scores, threshold: float) -> float:
    """Fraction of all pairs decided right: genuine accepted plus impostors rejected (LFW's measure)."""
    g, i = _scores(genuine), _scores(impostor)
    total = g.size + i.size
    if total == 0:
        return float("nan")
    return float((np.sum(g >= threshold) + np.sum(i < threshold)) / total)


def roc(genuine: Scores, impostor: Scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve as (thresholds, FAR, TAR), thresholds falling, FAR and TAR rising.

    One point per distinct score plus a first point at +inf (nothing accepted, FAR = TAR = 0):
    exactly the operating points a threshold can reach on these pairs. scikit-learn's
    ``roc_curve`` (every point kept); with no genuine or no impostor pairs, that rate is 0.
    """
    g, i = _scores(genuine), _scores(impostor)
    if g.size + i.size == 0:
        return np.array([np.inf]), np.zeros(1), np.zeros(1)
    labels = np.concatenate([np.ones(g.size), np.zeros(i.size)])
    with warnings.catch_warnings():  # one class absent: scikit-learn warns and answers nan
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        far, tar, thresholds = roc_curve(labels, np.concatenate([g, i]), drop_intermediate=False)
    return thresholds, np.nan_to_num(far), np.nan_to_num(tar)


def far_note(n_impostor: int, far: float) -> str | None:
    """Why a FAR target cannot be trusted on ``n_impostor`` pairs, or None when it can."""
    expected = n_impostor * far
    if expected < RESOLVABLE_PAIRS:
        need = math.ceil(RELIABLE_PAIRS / far)
        return (
            f"too few impostor pairs ({n_impostor}) for FAR {far:.2%}: it would allow {expected:.2f} accepted "
            f"impostors, so this is the TAR with no impostor accepted; about {need} impostor pairs are needed"
        )
    if expected < RELIABLE_PAIRS:
        return (
            f"only {n_impostor} impostor pairs: FAR {far:.2%} allows {math.floor(expected)} accepted impostor(s), "
            f"a rough estimate (about {math.ceil(RELIABLE_PAIRS / far)} pairs make it stable)"
        )
    return None


@dataclass(frozen=True)
class OperatingPoint:
    """TAR at the smallest threshold whose measured FAR stays within a target."""

    target_far: float
    threshold: float
    tar: float
    far: float
    n_genuine: int
    n_impostor: int
    note: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def threshold_for_far(impostor: Scores, far: float) -> float:
    """The smallest threshold at which at most ``floor(far * n)`` impostor pairs are accepted.

    That is just above the (k+1)-th highest impostor score, k = floor(far * n). Returned as the
    next float above that score, so it is exact under the ``>=`` rule even with tied scores.
    """
    if not 0.0 <= far <= 1.0:
        raise ValueError("far must lie in [0, 1]")
    i = np.sort(_scores(impostor))[::-1]
    if i.size == 0:
        raise ValueError("no impostor pairs: a false-accept rate cannot be measured")
    allowed = math.floor(far * i.size + 1e-9)
    if allowed >= i.size:
        return float(i[-1])  # every impostor may be accepted: the lowest score accepts all
    return float(np.nextafter(i[allowed], np.inf))


def tar_at_far(genuine: Scores, impostor: Scores, far: float) -> OperatingPoint:
    """The true-accept rate at a target false-accept rate, with a note when pairs are too few."""
    g, i = _scores(genuine), _scores(impostor)
    threshold = threshold_for_far(i, far)
    tar, achieved = rates_at(g, i, threshold)
    return OperatingPoint(far, threshold, tar, achieved, int(g.size), int(i.size), far_note(int(i.size), far))


def best_threshold(genuine: Scores, impostor: Scores) -> tuple[float, float]:
    """(threshold, accuracy) that decides the most pairs right.

    Candidates are the midpoints between neighbouring distinct scores (and just outside both
    ends); among equally accurate ones the widest gap wins, so separable scores give the
    midpoint between the highest impostor and the lowest genuine score.
    """
    g, i = _scores(genuine), _scores(impostor)
    scores = np.unique(np.concatenate([g, i]))
    if scores.size == 0:
        raise ValueError("no pairs to choose a threshold from")
    edges = np.concatenate([[scores[0] - 1e-6], (scores[:-1] + scores[1:]) / 2, [scores[-1] + 1e-6]])
    gaps = np.concatenate([[0.0], np.diff(scores), [0.0]])
    g_sorted, i_sorted = np.sort(g), np.sort(i)
    correct = (g.size - np.searchsorted(g_sorted, edges, side="left")) + np.searchsorted(i_sorted, edges, side="left")
    best = np.flatnonzero(correct == correct.max())
    pick = best[np.argmax(gaps[best])]
    return float(edges[pick]), float(correct[pick] / (g.size + i.size))


def far_upper_bound(accepted: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on the true FAR after ``accepted`` of ``n`` impostors.

    With none accepted it is about 3/n (the "rule of three"): the honest size of a zero.
    """
    if n <= 0:
        return 1.0
    if accepted >= n:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(confidence, accepted + 1, n - accepted))


def _most_provable(n: int, far: float, confidence: float = 0.95) -> int | None:
    """The most impostors of ``n`` that may be accepted while the FAR bound stays <= ``far``.

    None when even zero accepted cannot show it (too few pairs). The bound rises with the count,
    so a binary search finds the edge.
    """
    if n == 0 or far_upper_bound(0, n, confidence) > far:
        return None
    lo, hi = 0, n  # bound(lo) <= far holds; find the largest such count
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if far_upper_bound(mid, n, confidence) <= far:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class Calibration:
    """A proposed threshold for a target FAR, what it gives, and how far to trust it."""

    target_far: float
    threshold: float  # rounded up to 4 decimals: what a user types into FACE_THRESHOLD
    exact_threshold: float
    tar: float
    far: float
    far_upper_95: float  # the true FAR is below this with 95% confidence
    conservative_threshold: float | None  # smallest threshold whose 95% bound meets the target
    conservative_tar: float | None
    n_genuine: int
    n_impostor: int
    note: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate(impostor: Scores, far: float, genuine: Scores | None = None) -> Calibration:
    """Propose a threshold for a target FAR from impostor similarities.

    The proposal is the smallest threshold whose measured FAR is <= ``far``, rounded *up* to four
    decimals (so the rounding never raises the FAR). Because a FAR measured on few pairs is
    optimistic, the safety margin is the smallest threshold whose 95% upper confidence bound
    still meets the target; None when no threshold can prove it on this many pairs.
    """
    g = _scores(genuine if genuine is not None else [])
    i = _scores(impostor)
    exact = threshold_for_far(i, far)
    threshold = math.ceil(exact * 1e4) / 1e4
    tar, achieved = rates_at(g, i, threshold)
    accepted = int(np.sum(i >= threshold))
    upper = far_upper_bound(accepted, int(i.size))

    conservative = conservative_tar = None
    most = _most_provable(int(i.size), far)
    if most is not None:
        ranked = np.sort(i)[::-1]
        edge = float(np.nextafter(ranked[most], np.inf)) if most < i.size else float(ranked[-1])
        conservative = max(math.ceil(edge * 1e4) / 1e4, threshold)
        conservative_tar = rates_at(g, i, conservative)[0] if g.size else None

    note = far_note(int(i.size), far)
    if conservative is None:
        need = math.ceil(-math.log(0.05) / far)
        margin = (
            f"{i.size} impostor pairs cannot show FAR <= {far:.2%} with 95% confidence (that takes at least "
            f"{need} pairs with none accepted); add a margin above {threshold:.4f} or collect more impostor pairs"
        )
        note = f"{note}; {margin}" if note else margin
    return Calibration(
        target_far=far,
        threshold=threshold,
        exact_threshold=exact,
        tar=tar,
        far=achieved,
        far_upper_95=upper,
        conservative_threshold=conservative,
        conservative_tar=conservative_tar,
        n_genuine=int(g.size),
        n_impostor=int(i.size),
        note=note,
    )


# --- identification -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClosedSetResult:
    """Rank-1 identification with every probe's identity enrolled."""

    probes: int
    rank1_correct: int
    rank1: float  # best-matching identity right, threshold ignored
    named_at_threshold: int  # best match right *and* similarity >= threshold
    unknown_at_threshold: int  # best match below threshold
    wrong_at_threshold: int  # another identity named at or above threshold

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class OpenSetResult:
    """Identification with half the identities left out of the gallery."""

    known_identities: list[str]
    unknown_identities: list[str]
    known_probes: int
    known_named_correctly: int
    known_named_wrongly: int
    known_unknown: int  # false rejections
    unknown_probes: int  # photos of left-out identities and unlabelled strangers
    unknown_rejected: int  # came back "unknown", as they should
    unknown_named: int  # false accepts: named as somebody enrolled
    strangers: int  # of unknown_probes, the unlabelled people
    strangers_rejected: int

    def to_dict(self) -> dict:
        return asdict(self)


def best_matches(
    gallery: np.ndarray, gallery_ids: Sequence[str], probes: np.ndarray
) -> tuple[list[str | None], np.ndarray]:
    """Each probe's most similar enrolled identity and that similarity (per-identity best)."""
    if len(probes) == 0:
        return [], np.zeros(0)
    if len(gallery) == 0:
        return [None] * len(probes), np.full(len(probes), -np.inf)
    sims = np.asarray(probes, dtype=np.float64) @ np.asarray(gallery, dtype=np.float64).T
    best = np.argmax(sims, axis=1)
    return [gallery_ids[j] for j in best], sims[np.arange(len(probes)), best]


def closed_set(
    gallery: np.ndarray, gallery_ids: Sequence[str], probes: np.ndarray, probe_ids: Sequence[str], threshold: float
) -> ClosedSetResult:
    """Rank-1 of probes whose identities are all enrolled."""
    names, sims = best_matches(gallery, gallery_ids, probes)
    right = np.array([n == t for n, t in zip(names, probe_ids)], dtype=bool)
    above = sims >= threshold
    n = len(probe_ids)
    return ClosedSetResult(
        probes=n,
        rank1_correct=int(right.sum()),
        rank1=float(right.mean()) if n else float("nan"),
        named_at_threshold=int((right & above).sum()),
        unknown_at_threshold=int((~above).sum()),
        wrong_at_threshold=int((~right & above).sum()),
    )


def split_identities(identities: Sequence[str]) -> tuple[list[str], list[str]]:
    """Deterministic half split for open-set tests: sorted names, alternately known / left out."""
    names = sorted(set(identities))
    return names[0::2], names[1::2]


def open_set(
    gallery: np.ndarray,
    gallery_ids: Sequence[str],
    probes: np.ndarray,
    probe_ids: Sequence[str | None],
    threshold: float,
    known_identities: Sequence[str],
    unknown_identities: Sequence[str],
) -> OpenSetResult:
    """Open-set identification; a ``None`` probe identity is an unlabelled stranger."""
    names, sims = best_matches(gallery, gallery_ids, probes)
    enrolled = set(gallery_ids)
    answers = [n if s >= threshold else None for n, s in zip(names, sims)]
    known = [(a, t) for a, t in zip(answers, probe_ids) if t is not None and t in enrolled]
    unknown = [(a, t) for a, t in zip(answers, probe_ids) if t is None or t not in enrolled]
    strangers = [(a, t) for a, t in unknown if t is None]
    return OpenSetResult(
        known_identities=sorted(known_identities),
        unknown_identities=sorted(unknown_identities),
        known_probes=len(known),
        known_named_correctly=sum(a == t for a, t in known),
        known_named_wrongly=sum(a is not None and a != t for a, t in known),
        known_unknown=sum(a is None for a, _ in known),
        unknown_probes=len(unknown),
        unknown_rejected=sum(a is None for a, _ in unknown),
        unknown_named=sum(a is not None for a, _ in unknown),
        strangers=len(strangers),
        strangers_rejected=sum(a is None for a, _ in strangers),
    )


__all__ = [
    "Calibration",
    "ClosedSetResult",
    "OpenSetResult",
    "OperatingPoint",
    "accuracy_at",
    "best_matches",
    "best_threshold",
    "calibrate",
    "closed_set",
    "far_note",
    "far_upper_bound",
    "open_set",
    "rates_at",
    "roc",
    "split_identities",
    "tar_at_far",
    "threshold_for_far",
]

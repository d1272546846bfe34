"""What an evaluation found, as a metrics document and as the Markdown the commands print."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .data import (
    EmbeddedFaces,
    FaceSpec,
)
from .embedded import Dataset
from .metrics import (
    Calibration,
    accuracy_at,
    best_threshold,
    closed_set,
    open_set,
    rates_at,
    split_identities,
    tar_at_far,
)

# The false-accept rates every report gives the true-accept rate at.
REPORT_FARS = (0.01, 0.001)


def _enrolled_per_identity(specs: Sequence[FaceSpec]) -> dict[str, int]:
    """One face per identity to enroll: a ``gallery``-role photo first, then by name."""
    chosen: dict[str, int] = {}
    order = sorted(range(len(specs)), key=lambda k: (specs[k].role != "gallery", specs[k].label))
    for k in order:
        identity = specs[k].identity
        if identity is not None and identity not in chosen:
            chosen[identity] = k
    return chosen


def identification(faces: EmbeddedFaces, threshold: float) -> dict:
    """Closed-set rank-1 (one photo enrolled per identity) and the open-set half split."""
    specs, emb = faces.specs, faces.embeddings
    enrolled = _enrolled_per_identity(specs)
    if not enrolled:
        return {"closed_set": None, "open_set": None}

    def is_copy_of_enrolled(k: int) -> bool:
        spec = specs[k]
        return spec.identity in enrolled and specs[enrolled[spec.identity]].photo == spec.photo

    names = sorted(enrolled)
    gallery = emb[[enrolled[n] for n in names]]
    probes = [k for k, s in enumerate(specs) if s.identity is not None and not is_copy_of_enrolled(k)]
    closed = closed_set(gallery, names, emb[probes], [str(specs[k].identity) for k in probes], threshold)

    known, unknown = split_identities(names)
    open_gallery = emb[[enrolled[n] for n in known]]
    # Left-out people's photos are all probes; a known person's enrolled photo is not.
    open_probes = [k for k, s in enumerate(specs) if s.identity not in known or not is_copy_of_enrolled(k)]
    opened = open_set(
        open_gallery, known, emb[open_probes], [specs[k].identity for k in open_probes], threshold, known, unknown
    )
    return {
        "closed_set": {**closed.to_dict(), "gallery": {n: specs[enrolled[n]].label for n in names}},
        "open_set": opened.to_dict(),
    }


def _summary(values: np.ndarray) -> dict:
    if values.size == 0:
        return {"count": 0}
    return {
        "count": int(values.size),
        "min": float(values.min()),
        "median": float(np.median(values)),
        "max": float(values.max()),
    }


def compute_metrics(data: Dataset, threshold: float, embedder: dict) -> dict:
    """Everything ``metrics.json`` holds, from the embedded faces and their pairs."""
    genuine, impostor = data.genuine, data.impostor
    specs = data.faces.specs
    metrics: dict = {
        "dataset": data.source,
        "mode": data.mode,
        "embedder": embedder,
        "faces": len(specs),
        "identities": len({s.identity for s in specs if s.identity is not None}),
        "strangers": sum(s.identity is None for s in specs),
        "missed_faces": [s.label for s in data.faces.missed],
        "unreadable": data.faces.unreadable,
        "pairs": {
            "genuine": int(genuine.size),
            "impostor": int(impostor.size),
            "same_photo_excluded": data.same_photo_pairs,
            "skipped_face_not_found": data.skipped_pairs,
        },
        "genuine_similarity": _summary(genuine),
        "impostor_similarity": _summary(impostor),
        "seconds": round(data.seconds, 2),
    }
    if genuine.size and impostor.size:
        tar, far = rates_at(genuine, impostor, threshold)
        metrics["default_threshold"] = {
            "threshold": threshold,
            "accuracy": accuracy_at(genuine, impostor, threshold),
            "tar": tar,
            "far": far,
        }
        best, best_acc = best_threshold(genuine, impostor)
        tar_b, far_b = rates_at(genuine, impostor, best)
        metrics["best_threshold"] = {"threshold": best, "accuracy": best_acc, "tar": tar_b, "far": far_b}
        metrics["tar_at_far"] = [
            {**op.to_dict(), "accuracy": accuracy_at(genuine, impostor, op.threshold)}
            for op in (tar_at_far(genuine, impostor, far) for far in REPORT_FARS)
        ]
        metrics["separation"] = {
            "lowest_genuine": float(genuine.min()),
            "highest_impostor": float(impostor.max()),
            "gap": float(genuine.min() - impostor.max()),
        }
    metrics.update(identification(data.faces, threshold))
    return metrics


def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2%}"


def format_summary(metrics: dict) -> str:
    """The Markdown summary ``evaluate`` prints."""
    emb = metrics["embedder"]
    pairs = metrics["pairs"]
    lines = [
        f"## Evaluation: {emb['name']} on {metrics['dataset']} ({metrics['mode']})",
        "",
        f"{metrics['faces']} faces of {metrics['identities']} identities + {metrics['strangers']} strangers; "
        f"{pairs['genuine']} genuine and {pairs['impostor']} impostor pairs"
        + (f" ({pairs['same_photo_excluded']} same-photo pairs left out)" if pairs["same_photo_excluded"] else "")
        + (
            f" ({pairs['skipped_face_not_found']} listed pairs skipped: face not found)"
            if pairs["skipped_face_not_found"]
            else ""
        )
        + ".",
    ]
    if metrics["missed_faces"]:
        lines.append(f"Faces not found (left out): {', '.join(metrics['missed_faces'])}.")
    if "default_threshold" not in metrics:
        lines.append("")
        lines.append("Not enough pairs: need both genuine and impostor pairs for accuracy figures.")
        return "\n".join(lines)
    d, b, s = metrics["default_threshold"], metrics["best_threshold"], metrics["separation"]
    which = "default" if math.isclose(d["threshold"], emb["default_threshold"]) else "configured"
    lines += [
        "",
        "| measure | threshold | accuracy | TAR | FAR |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| accuracy at the {which} threshold | {d['threshold']:.4f} | {_pct(d['accuracy'])} | {_pct(d['tar'])} | {_pct(d['far'])} |",
        f"| accuracy at the best threshold | {b['threshold']:.4f} | {_pct(b['accuracy'])} | {_pct(b['tar'])} | {_pct(b['far'])} |",
    ]
    notes = []
    for op in metrics["tar_at_far"]:
        mark = " *" if op["note"] else ""
        lines.append(
            f"| TAR at FAR {op['target_far']:.1%}{mark} | {op['threshold']:.4f} | {_pct(op['accuracy'])} | "
            f"**{_pct(op['tar'])}** | {_pct(op['far'])} |"
        )
        if op["note"]:
            notes.append(f"\\* FAR {op['target_far']:.1%}: {op['note']}.")
    lines += [
        "",
        f"Same person: lowest {s['lowest_genuine']:.4f}; different people: highest {s['highest_impostor']:.4f} "
        f"(gap {s['gap']:+.4f}: {'separable' if s['gap'] > 0 else 'overlapping'}).",
        *notes,
    ]
    closed, opened = metrics.get("closed_set"), metrics.get("open_set")
    if closed:
        lines += [
            "",
            "| identification | result |",
            "| --- | --- |",
            f"| closed-set rank-1 (one photo enrolled per identity) | {closed['rank1_correct']}/{closed['probes']} = {_pct(closed['rank1'])} |",
            f"| closed-set, named at the threshold | {closed['named_at_threshold']} right, {closed['wrong_at_threshold']} wrong, "
            f"{closed['unknown_at_threshold']} unknown |",
        ]
    if opened:
        lines += [
            f"| open-set: left-out people and strangers returned unknown | {opened['unknown_rejected']}/{opened['unknown_probes']} "
            f"({opened['strangers_rejected']}/{opened['strangers']} strangers); {opened['unknown_named']} named wrongly |",
            f"| open-set: enrolled people's probes | {opened['known_named_correctly']}/{opened['known_probes']} named correctly, "
            f"{opened['known_named_wrongly']} wrongly, {opened['known_unknown']} unknown |",
            "",
            f"Open-set gallery: {', '.join(opened['known_identities'])}; left out: {', '.join(opened['unknown_identities'])}.",
        ]
    return "\n".join(lines)


def format_calibration(cal: Calibration, embedder: dict, source: str) -> str:
    """What ``calibrate`` prints: the proposal, what it gives, how far to trust it, how to use it."""
    lines = [
        f"## Calibration: {embedder['name']} for FAR <= {cal.target_far:.2%} on {source}",
        "",
        f"Proposed threshold: **{cal.threshold:.4f}** (the smallest whose measured FAR is <= the target; "
        f"default for {embedder['name']}: {embedder['default_threshold']}).",
        f"On these faces it accepts {_pct(cal.tar)} of same-person pairs (TAR) and {_pct(cal.far)} of "
        f"{cal.n_impostor} different-person pairs (FAR); the true FAR is below {_pct(cal.far_upper_95)} with 95% confidence.",
    ]
    if cal.conservative_threshold is not None and cal.conservative_threshold > cal.threshold:
        lines.append(
            f"Safety margin: {cal.conservative_threshold:.4f} keeps even the 95% bound within the target "
            f"(TAR {_pct(cal.conservative_tar)})."
        )
    elif cal.conservative_threshold is not None:
        lines.append("Safety margin: the proposal already keeps the 95% bound within the target.")
    if cal.note:
        lines.append(f"Note: {cal.note}.")
    lines += [
        "",
        f"Use it: `FACE_THRESHOLD={cal.threshold:.4f}` in the service's environment "
        f"(with FACE_EMBEDDER={embedder['name']}; a threshold belongs to one embedder).",
    ]
    return "\n".join(lines)

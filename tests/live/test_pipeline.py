"""The video pipeline end to end on the two shared videos, through the real command line.

Heavy steps run once per module (``run`` on each video, ``annotate`` on the stage clip) and the
tests check their outputs. The stage clip (275 frames, 29.97 fps) has, seen frame by frame:
a wide shot (frames 0-19: Miranda standing, Lacamoire small at the piano), a profile close-up of
Alex Lacamoire at the piano (20-81, the face often lost), a frontal close-up of Miranda (82-210)
and the audience with Obama (211-274). Shot cuts are at 20, 82 and 211.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference_service.engine import iou

from support.live_servers import clean_env, free_port, start_api

REPO = Path(__file__).resolve().parents[2]
STAGE_FPS = 29.97
CLOSE_UP = range(82, 211)  # Miranda's frontal close-up shot (frames)
ALLOWED_IN_STAGE = {"lin_manuel_miranda", "alex_lacamoire", "obama"}
MIRANDA = "lin_manuel_miranda"


def pipeline(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m pipeline ARGS`` in a clean environment with the offline embedder."""
    env = clean_env(FACE_EMBEDDER="dlib-resnet", FACE_THREADS="2")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and done.returncode != 0:
        pytest.fail(f"pipeline {' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done


def assert_clean_failure(done: subprocess.CompletedProcess, *phrases: str) -> None:
    """Exit status 1, a one-line error naming the problem, no traceback."""
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("error: "), message
    for phrase in phrases:
        assert phrase in message, message


def video_frames(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """RGB frames by index, read sequentially with OpenCV."""
    capture = cv2.VideoCapture(str(path))
    out, index = {}, 0
    while index <= max(wanted):
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted:
            out[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        index += 1
    capture.release()
    return out


# -- shared fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stage(faces_dir: Path) -> Path:
    return faces_dir / "video" / "stage_640x360.mp4"


@pytest.fixture(scope="module")
def street(faces_dir: Path) -> Path:
    return faces_dir / "video" / "street_1920x1080.mp4"


@pytest.fixture(scope="module")
def gallery_photos(faces_dir: Path, engine) -> dict[str, np.ndarray]:
    """Embeddings of the largest face of every gallery photo, per identity."""
    from inference_service.engine import load_image, pick_largest

    out: dict[str, list[np.ndarray]] = {}
    for photo in sorted((faces_dir / "gallery").glob("*/*")):
        image = load_image(photo.read_bytes(), 40_000_000)
        face = pick_largest(engine.detect(image))
        assert face is not None, photo
        out.setdefault(photo.parent.name, []).append(engine.embed_faces(image, [face])[0])
    return {name: np.stack(vectors) for name, vectors in out.items()}


@pytest.fixture(scope="module")
def gallery_file(tmp_path_factory, gallery_photos, engine) -> Path:
    """A gallery file with the 10 identities of ../shared/faces/gallery."""
    from inference_service.gallery import Gallery

    path = tmp_path_factory.mktemp("gallery") / "gallery.sqlite3"
    gallery = Gallery.open(path, engine.embedder.name, engine.embedder.dim)
    for name, vectors in gallery_photos.items():
        gallery.enroll(name, vectors)
    gallery.close()
    return path


def best_identity(vector: np.ndarray, gallery_photos: dict[str, np.ndarray]) -> tuple[str, float]:
    scores = {name: float(np.max(vectors @ vector)) for name, vectors in gallery_photos.items()}
    name = max(scores, key=scores.get)
    return name, scores[name]


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory, stage: Path) -> Path:
    out = tmp_path_factory.mktemp("stage_run")
    pipeline("run", stage, "--out", out, "--every", "0.5")
    return out


@pytest.fixture(scope="module")
def street_run(tmp_path_factory, street: Path) -> Path:
    out = tmp_path_factory.mktemp("street_run")
    pipeline("run", street, "--out", out, "--every", "1", "--no-plots")
    return out


@pytest.fixture(scope="module")
def stage_annotation(tmp_path_factory, stage: Path, gallery_file: Path) -> Path:
    out = tmp_path_factory.mktemp("stage_annotate")
    pipeline("annotate", stage, "--gallery", gallery_file, "--out", out)
    return out


# -- extract ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "video, fps, expected_times",
    [
        ("stage", STAGE_FPS, [2.0, 2.5, 3.0, 3.5, 4.0, 4.5]),
        # the street clip is 4.2 s long: the window 2-5 s is cut at the end of the video
        ("street", 25.0, [2.0, 2.5, 3.0, 3.5, 4.0]),
    ],
)
def test_extract_window_counts_and_times(request, tmp_path, video, fps, expected_times):
    path = request.getfixturevalue(video)
    pipeline("extract", path, "--out", tmp_path, "--start", "2", "--duration", "3", "--every", "0.5")
    meta = json.loads((tmp_path / "frames.json").read_text())
    assert meta["fps"] == pytest.approx(fps, abs=0.01)
    frames = meta["frames"]
    assert [f["index"] for f in frames] == [round(t * meta["fps"]) for t in expected_times]
    for frame, t in zip(frames, expected_times):
        assert frame["time"] == pytest.approx(frame["index"] / meta["fps"], abs=1e-3)
        assert abs(frame["time"] - t) <= 0.5 / fps + 1e-6
        image = cv2.imread(str(tmp_path / frame["file"]))
        assert image is not None and image.shape[:2] == (meta["height"], meta["width"])
    assert len(list((tmp_path / "frames").glob("*.jpg"))) == len(expected_times)


def test_extract_whole_video_once_per_second_and_every_frame(tmp_path, stage):
    pipeline("extract", stage, "--out", tmp_path / "a")
    frames = json.loads((tmp_path / "a" / "frames.json").read_text())["frames"]
    assert [f["index"] for f in frames] == [round(s * STAGE_FPS) for s in range(10)]  # 9.18 s long
    # a step below one frame period gives each frame of the window once, none past its end
    pipeline("extract", stage, "--out", tmp_path / "b", "--start", "1", "--duration", "0.2", "--every", "0.001")
    frames = json.loads((tmp_path / "b" / "frames.json").read_text())["frames"]
    assert [f["index"] for f in frames] == list(range(30, 36))


def test_extract_from_http_url_matches_local_file(tmp_path, stage):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(stage.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{stage.name}"
        pipeline("extract", url, "--out", tmp_path / "url", "--duration", "1", "--every", "0.5")
        missing = pipeline("extract", url + ".nothere", "--out", tmp_path / "x", check=False)
    finally:
        server.shutdown()
    pipeline("extract", stage, "--out", tmp_path / "file", "--duration", "1", "--every", "0.5")
    from_url = json.loads((tmp_path / "url" / "frames.json").read_text())["frames"]
    from_file = json.loads((tmp_path / "file" / "frames.json").read_text())["frames"]
    assert [f["index"] for f in from_url] == [f["index"] for f in from_file] == [0, 15]
    a = cv2.imread(str(tmp_path / "url" / from_url[1]["file"]))
    b = cv2.imread(str(tmp_path / "file" / from_file[1]["file"]))
    assert np.array_equal(a, b)
    assert_clean_failure(missing, "404")


def test_youtube_url_without_yt_dlp_says_how_to_get_it(tmp_path, monkeypatch):
    from pipeline.errors import PipelineError
    from pipeline.video import fetch as video

    monkeypatch.setattr(video.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(video.shutil, "which", lambda name: None)
    with pytest.raises(PipelineError, match="install yt-dlp"):
        with video.open_source("https://www.youtube.com/watch?v=dQw4w9WgXcQ"):
            pass


# -- faces and clusters ----------------------------------------------------------------------------
def check_faces_output(run: Path) -> tuple[dict, np.ndarray]:
    frames = json.loads((run / "frames.json").read_text())
    faces = json.loads((run / "faces.json").read_text())
    vectors = np.load(run / "embeddings.npy")
    assert faces["embedder"]["name"] == "dlib-resnet" and faces["embedder"]["dim"] == 128
    assert vectors.shape == (len(faces["faces"]), 128)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    indices = {f["index"]: f for f in frames["frames"]}
    for k, face in enumerate(faces["faces"]):
        assert face["id"] == k
        assert face["frame"] in indices and face["time"] == indices[face["frame"]]["time"]
        x1, y1, x2, y2 = face["box"]
        assert 0 < x2 - x1 and 0 < y2 - y1
        assert -0.3 * (x2 - x1) < x1 and x2 < frames["width"] + 0.3 * (x2 - x1)  # faces may touch the border
        assert len(face["landmarks"]) == 5 and face["score"] >= 0.9
        assert 0.0 <= face["frontality"] <= 1.0 and face["sharpness"] > 0
        assert cv2.imread(str(run / face["crop"])) is not None
    return faces, vectors


def check_clusters_output(run: Path, faces: dict) -> dict:
    clusters = json.loads((run / "clusters.json").read_text())
    seen = list(clusters["noise"])
    for c in clusters["clusters"]:
        assert len(c["faces"]) >= 2
        assert c["frames"] == sorted({faces["faces"][i]["frame"] for i in c["faces"]})
        assert (run / c["sheet"]).is_file() and cv2.imread(str(run / c["sheet"])) is not None
        seen += c["faces"]
    assert sorted(seen) == list(range(len(faces["faces"])))  # every face exactly once
    sizes = [len(c["faces"]) for c in clusters["clusters"]]
    assert sizes == sorted(sizes, reverse=True) and [c["id"] for c in clusters["clusters"]] == list(
        range(1, len(sizes) + 1)
    )
    return clusters


def test_stage_faces_and_largest_cluster_is_miranda(stage_run, gallery_photos):
    faces, vectors = check_faces_output(stage_run)
    clusters = check_clusters_output(stage_run, faces)
    largest = clusters["clusters"][0]
    # every sampled frame of the frontal close-up shows Miranda, and he is in the largest cluster
    close_up_frames = {f["frame"] for f in faces["faces"] if f["frame"] in CLOSE_UP}
    assert len(close_up_frames) >= 8
    assert close_up_frames <= set(largest["frames"])
    centroid = vectors[largest["faces"]].mean(axis=0)
    name, similarity = best_identity(centroid / np.linalg.norm(centroid), gallery_photos)
    assert name == MIRANDA and similarity >= 0.926
    for other in clusters["clusters"][1:]:  # nobody else is taken for Miranda
        centroid = vectors[other["faces"]].mean(axis=0)
        name, similarity = best_identity(centroid / np.linalg.norm(centroid), gallery_photos)
        assert name != MIRANDA or similarity < 0.926


def test_stage_plots_are_written(stage_run):
    for name in ("frames.png", "embeddings.png", "similarity.png"):
        image = cv2.imread(str(stage_run / "plots" / name))
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 200, name
        assert image.std() > 10, f"{name} is blank"


def test_street_faces_and_clusters(street_run):
    faces, _ = check_faces_output(street_run)
    per_frame = {}
    for face in faces["faces"]:
        per_frame[face["frame"]] = per_frame.get(face["frame"], 0) + 1
    assert sorted(per_frame) == [0, 25, 50, 75, 100] and min(per_frame.values()) >= 3  # a crowd in every frame
    clusters = check_clusters_output(street_run, faces)
    for c in clusters["clusters"]:  # one person is never twice in one frame
        assert len(c["frames"]) == len(c["faces"]), c
    # the people walking towards the camera stay in view: someone is found in at least 4 of 5 frames
    assert len(clusters["clusters"][0]["frames"]) >= 4


# -- annotate --------------------------------------------------------------------------------------
def test_annotate_outputs(stage_annotation, stage):
    timeline = json.loads((stage_annotation / "timeline.json").read_text())
    assert timeline["video"] == str(stage) and timeline["fps"] == pytest.approx(STAGE_FPS, abs=0.01)
    assert timeline["frames"] == 275
    for track in timeline["tracks"]:
        assert set(track) >= {"track_id", "identity", "similarity", "start", "end", "frames"}
        assert track["frames"] == sorted(track["frames"]) and len(track["boxes"]) == len(track["frames"])
        assert 0 <= track["frames"][0] and track["frames"][-1] < 275
        assert track["start"] == pytest.approx(track["frames"][0] / STAGE_FPS, abs=1e-3)
        assert track["end"] == pytest.approx(track["frames"][-1] / STAGE_FPS, abs=1e-3)
    capture = cv2.VideoCapture(str(stage_annotation / "annotated.mp4"))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 150)
    ok, frame = capture.read()
    capture.release()
    assert abs(count - 275) <= 1 and size == (640, 360) and ok
    original = video_frames(stage, {150})[150]
    # Miranda's box and label are drawn on frame 150: the pixels differ from the source there
    assert np.abs(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(int) - original).mean() > 1.0


def test_annotate_labels_miranda_in_the_close_up(stage_annotation, stage, engine):
    """>= 90 % of the close-up frames where a large face is visible carry a Miranda track on it."""
    timeline = json.loads((stage_annotation / "timeline.json").read_text())
    miranda_boxes: dict[int, list] = {}
    for track in timeline["tracks"]:
        if track["identity"] == MIRANDA:
            for frame, box in zip(track["frames"], track["boxes"]):
                miranda_boxes.setdefault(frame, []).append(box)
    wanted = set(range(CLOSE_UP.start + 1, CLOSE_UP.stop, 5))
    frames = video_frames(stage, wanted)
    detections = engine.detect_batch([frames[i] for i in sorted(frames)])
    large, covered = 0, 0
    for index, faces in zip(sorted(frames), detections):
        for face in faces:
            if face.height < 80:  # the close-up face is 100-130 px tall; background heads ~40
                continue
            large += 1
            if any(iou(face.box, box) >= 0.5 for box in miranda_boxes.get(index, [])):
                covered += 1
    assert large >= 20
    assert covered / large >= 0.9, f"Miranda labelled on {covered} of {large} large close-up faces"


def test_annotate_names_nobody_wrongly(stage_annotation, stage, engine, gallery_photos):
    """Every named track is one of the people in the clip, and its faces look like that person."""
    timeline = json.loads((stage_annotation / "timeline.json").read_text())
    named = [t for t in timeline["tracks"] if t["identity"]]
    assert any(t["identity"] == MIRANDA for t in named)
    for track in named:
        assert track["identity"] in ALLOWED_IN_STAGE, track["identity"]
        picks = np.linspace(0, len(track["frames"]) - 1, min(5, len(track["frames"]))).round().astype(int)
        frames = video_frames(stage, {track["frames"][k] for k in picks})
        votes = []
        for k in picks:
            image = frames[track["frames"][k]]
            faces = engine.detect(image)
            face = max(faces, key=lambda f: iou(f.box, track["boxes"][k]), default=None)
            if face is None or iou(face.box, track["boxes"][k]) < 0.3:
                continue
            votes.append(best_identity(engine.embed_faces(image, [face])[0], gallery_photos)[0])
        assert votes and votes.count(track["identity"]) > len(votes) / 2, (track["identity"], votes)
    # no name at all in the audience shot, whose look-alikes reach 0.93 for single frames
    for track in named:
        assert track["frames"][0] < 211, track


# -- enrollment through the real API ---------------------------------------------------------------
@pytest.fixture(scope="module")
def api_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    server = start_api(folder, folder / "gallery.sqlite3")
    yield server
    server.stop()


def test_enroll_largest_cluster_through_api_makes_the_person_recognisable(stage_run, api_server, faces_dir):
    import requests

    clusters = json.loads((stage_run / "clusters.json").read_text())["clusters"]
    largest = max(clusters, key=lambda c: len(c["faces"]))
    done = pipeline(
        "enroll", stage_run, "--cluster", largest["id"], "--name", "Lin-Manuel Miranda", "--api", api_server.url
    )
    assert "enrolled 5 face(s)" in done.stdout
    listed = requests.get(f"{api_server.url}/identities", timeout=30).json()["identities"]
    assert listed == [{"name": "Lin-Manuel Miranda", "faces": 5}]

    def recognize(photo: Path) -> dict:
        with open(photo, "rb") as fh:
            answer = requests.post(f"{api_server.url}/recognize", files={"image": fh}, timeout=120)
        assert answer.status_code == 200, answer.text
        return max(answer.json()["faces"], key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))

    # a photo that is not from the video: his gallery portrait
    assert recognize(faces_dir / "gallery" / MIRANDA / "1.png")["identity"] == "Lin-Manuel Miranda"
    for other in ("obama/1.jpg", "alex_lacamoire/1.png"):
        assert recognize(faces_dir / "gallery" / other)["identity"] is None, other


def test_annotate_through_api(stage, api_server, tmp_path, faces_dir):
    """With --api the frames go to POST /recognize; every named track is Miranda."""
    import requests

    with open(faces_dir / "gallery" / "obama" / "1.jpg", "rb") as fh:  # someone to be confused with
        assert requests.post(f"{api_server.url}/identities/obama/faces", files={"image": fh}, timeout=120).ok
    if not requests.get(f"{api_server.url}/identities/Lin-Manuel%20Miranda", timeout=30).ok:
        with open(faces_dir / "gallery" / MIRANDA / "1.png", "rb") as fh:
            requests.post(f"{api_server.url}/identities/Lin-Manuel Miranda/faces", files={"image": fh}, timeout=120)
    pipeline("annotate", stage, "--api", api_server.url, "--out", tmp_path, "--stride", "6")
    timeline = json.loads((tmp_path / "timeline.json").read_text())
    assert timeline["stride"] == 6 and timeline["matcher"] == f"api {api_server.url}"
    named = [t for t in timeline["tracks"] if t["identity"]]
    assert named and all(t["identity"] == "Lin-Manuel Miranda" for t in named)
    covered = {f for t in named for f in t["frames"]}
    assert len(covered & set(CLOSE_UP)) >= 0.9 * len(CLOSE_UP)
    for track in named:  # Miranda in the wide shot (on the right) or the close-up, never anyone else
        assert track["frames"][-1] < 211, track  # not in the audience
        assert track["frames"][0] >= 20 or track["boxes"][0][0] > 320, track  # not Lacamoire at the piano


# -- clear failures --------------------------------------------------------------------------------
def test_unreadable_and_missing_videos_fail_clearly(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(50_000))
    assert_clean_failure(pipeline("extract", garbage, "--out", tmp_path / "a", check=False), "cannot read video")
    assert_clean_failure(
        pipeline("annotate", garbage, "--gallery", tmp_path / "g.sqlite3", "--out", tmp_path / "b", check=False),
        "cannot read video",
    )
    assert_clean_failure(pipeline("run", tmp_path / "nothere.mp4", "--out", tmp_path / "c", check=False), "not found")


def test_empty_window_fails_clearly(tmp_path, stage):
    done = pipeline("extract", stage, "--out", tmp_path, "--start", "20", check=False)
    assert_clean_failure(done, "no frames in the window", "9.18 s long")


def test_video_without_faces_fails_clearly(tmp_path):
    path = tmp_path / "no_faces.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 120))
    rng = np.random.default_rng(0)
    for k in range(20):
        frame = np.full((120, 160, 3), 40 + 5 * k, np.uint8)
        cv2.rectangle(frame, (20 + k, 30), (70 + k, 90), tuple(int(v) for v in rng.integers(0, 255, 3)), -1)
        writer.write(frame)
    writer.release()
    done = pipeline("run", path, "--out", tmp_path / "run", check=False)
    assert_clean_failure(done, "no faces found")
    assert_clean_failure(pipeline("cluster", tmp_path / "run", check=False), "no faces to cluster")


def _faceless_clip(path: Path, frames: int = 12) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 120))
    for k in range(frames):
        writer.write(np.full((120, 160, 3), 40 + 5 * k, np.uint8))
    writer.release()
    return path


def test_annotate_and_enroll_take_a_sqlite_url(tmp_path):
    """``--gallery sqlite:////abs/path`` names the same file as the bare path, for every command."""
    from inference_service.gallery import open_store

    from support.records import make_records

    path = tmp_path / "g.sqlite3"
    store = open_store(path, "dlib-resnet", 128)
    store.add_faces(make_records("Somebody", 2, seed=1))
    store.close()
    url = f"sqlite:///{path}"
    assert url.startswith("sqlite:////")
    done = pipeline("annotate", _faceless_clip(tmp_path / "clip.mp4"), "--gallery", url, "--out", tmp_path / "run")
    assert "0 tracks" in done.stdout, done.stdout
    assert json.loads((tmp_path / "run" / "timeline.json").read_text())["tracks"] == []
    missing = f"sqlite:///{tmp_path}/absent.sqlite3"
    assert_clean_failure(
        pipeline("annotate", tmp_path / "clip.mp4", "--gallery", missing, "--out", tmp_path / "r2", check=False),
        "gallery file not found",
        str(tmp_path / "absent.sqlite3"),
    )
    assert not (tmp_path / "absent.sqlite3").exists()


def test_enroll_into_a_gallery_file_keeps_a_thumbnail_per_face(stage_run, tmp_path):
    clusters = json.loads((stage_run / "clusters.json").read_text())["clusters"]
    largest = max(clusters, key=lambda c: len(c["faces"]))
    gallery = tmp_path / "g.sqlite3"
    pipeline("enroll", stage_run, "--cluster", largest["id"], "--name", "Lin-Manuel Miranda", "--gallery", gallery)
    db = sqlite3.connect(gallery)
    try:
        faces = db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
        thumbs = [bytes(r[0]) for r in db.execute("SELECT jpeg FROM face_thumbnails")]
    finally:
        db.close()
    assert faces > 0 and len(thumbs) == faces
    for jpeg in thumbs:
        assert max(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[:2]) <= 96


def test_unknown_cluster_bad_name_and_unreachable_api_fail_clearly(stage_run, tmp_path):
    assert_clean_failure(
        pipeline(
            "enroll", stage_run, "--cluster", "999", "--name", "x", "--gallery", tmp_path / "g.sqlite3", check=False
        ),
        "no cluster 999",
    )
    assert_clean_failure(
        pipeline(
            "enroll", stage_run, "--cluster", "1", "--name", "../etc", "--gallery", tmp_path / "g.sqlite3", check=False
        ),
        "invalid name",
    )
    unreachable = f"http://127.0.0.1:{free_port()}"
    assert_clean_failure(
        pipeline("enroll", stage_run, "--cluster", "1", "--name", "x", "--api", unreachable, check=False),
        "cannot reach the API",
    )
    assert_clean_failure(pipeline("cluster", tmp_path / "empty", check=False), "run `python -m pipeline")


def test_every_command_has_help():
    for command in ("extract", "faces", "cluster", "plots", "run", "enroll", "annotate"):
        done = pipeline(command, "--help")
        assert "usage: python -m pipeline " + command in done.stdout

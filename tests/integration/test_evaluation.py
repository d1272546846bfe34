"""Accuracy evaluation and calibration: the maths on scores with known answers, then real runs.

The real runs go through the command line entry point (``main``) with the session's engine, so
the figures asserted are the ones the CLI writes to metrics.json, and each photo is embedded once.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from pipeline.evaluation import cli as evaluation
from pipeline.evaluation.data import manifest_specs, parse_pairs
from pipeline.evaluation.metrics import (
    accuracy_at,
    best_threshold,
    calibrate,
    closed_set,
    far_note,
    far_upper_bound,
    open_set,
    roc,
    split_identities,
    tar_at_far,
    threshold_for_far,
)

# --- the maths on synthetic scores ------------------------------------------------------------


def _roc_by_counting(genuine, impostor):
    """The ROC as the definition says: at each distinct score (and +inf), the share of pairs at or above it."""
    g, i = np.asarray(genuine, float), np.asarray(impostor, float)
    thresholds = np.concatenate([[np.inf], np.unique(np.concatenate([g, i]))[::-1]])
    rate = lambda scores: np.array([(scores >= t).sum() / max(scores.size, 1) for t in thresholds])  # noqa: E731
    return thresholds, rate(i), rate(g)


@pytest.mark.unit
def test_roc_from_scikit_learn_gives_the_same_figures_as_counting():
    rng = np.random.default_rng(0)
    for _ in range(200):  # ties (rounded scores) and empty sides included
        genuine = np.round(rng.random(rng.integers(0, 40)), rng.integers(1, 4))
        impostor = np.round(rng.random(rng.integers(0, 40)), rng.integers(1, 4))
        for ours, counted in zip(roc(genuine, impostor), _roc_by_counting(genuine, impostor)):
            assert ours.shape == counted.shape and np.allclose(ours, counted)


@pytest.mark.unit
def test_roc_counts_pairs_at_or_above_each_threshold():
    genuine = [0.9, 0.8, 0.7]
    impostor = [0.75, 0.5]
    thresholds, far, tar = roc(genuine, impostor)
    assert thresholds[0] == math.inf and far[0] == 0 and tar[0] == 0
    assert list(thresholds[1:]) == [0.9, 0.8, 0.75, 0.7, 0.5]
    assert list(tar[1:]) == pytest.approx([1 / 3, 2 / 3, 2 / 3, 1, 1])
    assert list(far[1:]) == pytest.approx([0, 0, 0.5, 0.5, 1])


def test_accuracy_counts_genuine_accepted_and_impostors_rejected():
    # At 0.75: genuine 0.9 and 0.8 accepted, 0.7 rejected; impostor 0.75 accepted (>=), 0.5 rejected.
    assert accuracy_at([0.9, 0.8, 0.7], [0.75, 0.5], 0.75) == pytest.approx(3 / 5)
    assert accuracy_at([0.9, 0.8, 0.7], [0.75, 0.5], 0.76) == pytest.approx(4 / 5)  # 0.75 now rejected
    assert accuracy_at([0.9, 0.8, 0.7], [0.75, 0.5], 0.6) == pytest.approx(4 / 5)


def test_best_threshold_of_separable_scores_is_the_midpoint_of_the_gap():
    threshold, accuracy = best_threshold([0.95, 0.97, 0.93], [0.5, 0.91, 0.7])
    assert threshold == pytest.approx(0.92)
    assert accuracy == 1.0


def test_best_threshold_of_overlapping_scores_maximises_accuracy():
    # One impostor (0.85) above one genuine (0.8): the best threshold gives up exactly one pair.
    genuine = [0.8, 0.9, 0.95, 0.97]
    impostor = [0.3, 0.4, 0.5, 0.85, 0.6, 0.55]
    threshold, accuracy = best_threshold(genuine, impostor)
    assert accuracy == pytest.approx(9 / 10)
    assert accuracy_at(genuine, impostor, threshold) == pytest.approx(accuracy)
    # The widest of the equally good gaps: between 0.6 and 0.8, not the narrow 0.85..0.9.
    assert threshold == pytest.approx(0.7)


def test_threshold_for_far_accepts_exactly_the_allowed_impostors():
    impostor = np.arange(1000) / 1000.0  # 0.000 .. 0.999
    t = threshold_for_far(impostor, 0.01)
    assert np.sum(impostor >= t) == 10  # 0.990 .. 0.999
    assert t > 0.989 and t < 0.990
    assert threshold_for_far(impostor, 0.0) > 0.999  # nothing accepted
    assert threshold_for_far(impostor, 1.0) == 0.0  # everything accepted


def test_threshold_for_far_with_tied_scores_stays_within_the_target():
    impostor = [0.9, 0.9, 0.9, 0.1] + [0.0] * 96  # 3 tied at the top, target allows 2
    t = threshold_for_far(impostor, 0.02)
    assert np.mean(np.asarray(impostor) >= t) <= 0.02
    assert t > 0.9


def test_tar_at_far_known_answer_and_notes():
    impostor = np.arange(1000) / 1000.0
    genuine = [0.9995, 0.995, 0.985, 0.5]
    op = tar_at_far(genuine, impostor, 0.01)
    assert op.tar == pytest.approx(0.5) and op.far == pytest.approx(0.01)
    assert op.note is None  # 10 accepted impostors: reliable
    op = tar_at_far(genuine, impostor, 0.001)
    assert op.tar == pytest.approx(0.25) and op.far == pytest.approx(0.001)
    assert "rough" in op.note  # one allowed impostor
    assert "too few impostor pairs" in far_note(600, 0.001)


def test_far_upper_bound_is_the_rule_of_three_for_zero_accepts():
    assert far_upper_bound(0, 1000) == pytest.approx(3 / 1000, rel=0.01)
    assert far_upper_bound(10, 1000) > 0.01 > far_upper_bound(3, 1000)


def test_calibrate_proposes_a_rounded_up_threshold_and_a_margin():
    rng = np.random.default_rng(0)
    impostor = rng.uniform(0.0, 0.9, 5000)
    genuine = rng.uniform(0.85, 1.0, 500)
    cal = calibrate(impostor, 0.01, genuine)
    assert cal.far <= 0.01 and cal.far >= 0.009  # as close to the target as the pairs allow
    assert cal.threshold >= cal.exact_threshold and cal.threshold == round(cal.threshold, 4)
    assert cal.tar == pytest.approx(np.mean(genuine >= cal.threshold))
    # 5000 pairs can prove 1% with margin: the conservative threshold is higher and its bound fits.
    assert cal.conservative_threshold is not None and cal.conservative_threshold > cal.threshold
    accepted = int(np.sum(impostor >= cal.conservative_threshold))
    assert far_upper_bound(accepted, impostor.size) <= 0.01
    assert cal.note is None


def test_calibrate_on_too_few_pairs_says_so():
    cal = calibrate(np.linspace(0.1, 0.8, 500), 0.001)
    assert cal.threshold > 0.8 and cal.far == 0.0
    assert cal.conservative_threshold is None
    assert "too few impostor pairs" in cal.note and "95% confidence" in cal.note


def test_closed_and_open_set_identification_on_synthetic_embeddings():
    eye = np.eye(4)
    gallery, names = eye[:3], ["a", "b", "c"]
    probes = np.array([[0.9, 0.1, 0, 0], [0.2, 0.98, 0, 0], [0, 0.3, 0.5, 0], [0, 0, 0, 1]])
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    result = closed_set(gallery, names, probes[:3], ["a", "b", "b"], threshold=0.9)
    assert result.rank1_correct == 2 and result.rank1 == pytest.approx(2 / 3)
    assert result.named_at_threshold == 2 and result.wrong_at_threshold == 0
    assert result.unknown_at_threshold == 1  # the third probe's best (c, 0.86) is below 0.9

    known, unknown = split_identities(["c", "a", "b", "d", "a"])
    assert (known, unknown) == (["a", "c"], ["b", "d"])
    sub = eye[[0, 2]]
    result = open_set(sub, known, probes, ["a", "b", "c", None], 0.9, known, unknown)
    assert result.known_probes == 2 and result.known_named_correctly == 1 and result.known_unknown == 1
    assert result.unknown_probes == 2 and result.unknown_rejected == 2 and result.unknown_named == 0
    assert result.strangers == 1 and result.strangers_rejected == 1


def test_parse_lfw_pairs():
    text = "2 2\nAaron 1 2\nAaron 3 4\nAaron 1 Bob 2\nCarl 1 Dan 1\n"
    assert parse_pairs(text) == [
        ("Aaron", 1, "Aaron", 2),
        ("Aaron", 3, "Aaron", 4),
        ("Aaron", 1, "Bob", 2),
        ("Carl", 1, "Dan", 1),
    ]
    with pytest.raises(ValueError):
        parse_pairs("10\n")


def test_manifest_reading_marks_duplicates_strangers_and_skipped_roles(tmp_path):
    (tmp_path / "MANIFEST.tsv").write_text(
        "path\trole\tfaces\tnote\n"
        "g/a/1.jpg\tgallery\ta@1,2,3,4\t\n"
        "p/a_copy.png\tprobe\ta@1,2,3,4\tPNG of the same photo as g/a/1.jpg: a format test\n"
        "m/x.jpg\tmulti\t?@0,0,5,5;a@5,5,9,9\t\n"
        "al/a.png\taligned\ta@0,0,160,160\t\n"
        "v/c.mp4\tvideo\ta;b\t\n"
    )
    specs = manifest_specs(tmp_path / "MANIFEST.tsv")
    assert [s.label for s in specs] == ["g/a/1.jpg", "p/a_copy.png", "m/x.jpg#0", "m/x.jpg#1"]
    assert specs[1].photo == specs[0].photo == "g/a/1.jpg"
    assert specs[2].identity is None and specs[3].identity == "a" and specs[3].box == (5, 5, 9, 9)
    assert len(manifest_specs(tmp_path / "MANIFEST.tsv", skip_roles={"aligned", "multi"})) == 2


# --- real runs on ../shared/faces with dlib-resnet -----------------------------------------------


@pytest.fixture(scope="module")
def use_session_engine(engine):
    """The CLI builds its engine from settings; in these tests it reuses the session's engine."""

    def load_engine(embedder):
        assert embedder in (None, "dlib-resnet"), "the session engine is dlib-resnet"
        return engine, _settings()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluation, "load_engine", load_engine)
        yield engine


def _settings():
    from inference_service.config import Settings

    return Settings(embedder="dlib-resnet")


@pytest.fixture(scope="module")
def manifest_run(faces_dir, use_session_engine, tmp_path_factory):
    """``evaluate FACES --manifest`` once: its output folder, metrics and printed summary."""
    out = tmp_path_factory.mktemp("eval")
    code = evaluation.main(["evaluate", str(faces_dir), "--manifest", "--embedder", "dlib-resnet", "--out", str(out)])
    assert code == 0
    return out, json.loads((out / "metrics.json").read_text())


def test_evaluate_writes_its_files(manifest_run, capsys):
    out, metrics = manifest_run
    for name in ("pairs.csv", "roc.png", "histogram.png", "metrics.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "pairs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == metrics["pairs"]["genuine"] + metrics["pairs"]["impostor"]
    assert sum(r["genuine"] == "1" for r in rows) == metrics["pairs"]["genuine"]


def test_every_labelled_face_is_found_and_duplicates_are_left_out(manifest_run, manifest):
    out, metrics = manifest_run
    expected = sum(len(row.faces) for row in manifest if row.role not in ("aligned", "video"))
    assert metrics["missed_faces"] == [] and metrics["faces"] == expected
    assert metrics["identities"] == 10 and metrics["strangers"] == 6
    n = metrics["faces"]
    assert (
        metrics["pairs"]["genuine"] + metrics["pairs"]["impostor"] + metrics["pairs"]["same_photo_excluded"]
        == n * (n - 1) // 2
    )
    with open(out / "pairs.csv", newline="") as fh:
        compared = {frozenset((r["face_a"], r["face_b"])) for r in csv.DictReader(fh)}
    # The RGBA PNG is the same photo as gallery/obama/2.jpg: comparing them proves nothing.
    assert frozenset(("gallery/obama/2.jpg", "probes/obama_rgba.png")) not in compared
    assert frozenset(("gallery/obama/1.jpg", "probes/obama_3.jpg")) in compared


def test_dlib_resnet_accuracy_on_the_labelled_faces(manifest_run, manifest):
    out, metrics = manifest_run
    default = metrics["default_threshold"]
    assert default["threshold"] == pytest.approx(0.926)
    assert default["far"] == 0.0  # no two different people are matched at the default threshold
    assert default["accuracy"] >= 0.96
    assert metrics["best_threshold"]["accuracy"] >= 0.98
    assert metrics["tar_at_far"][0]["target_far"] == 0.01 and metrics["tar_at_far"][0]["tar"] >= 0.9
    assert "too few impostor pairs" in metrics["tar_at_far"][1]["note"]
    # The only same-person pairs the default threshold misses involve the two partial faces
    # (manifest role "hard"); every other face is separated from every stranger.
    hard = {row.path.relative_to(row.path.parents[1]).as_posix() for row in manifest if row.role == "hard"}
    with open(out / "pairs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    missed = [r for r in rows if r["genuine"] == "1" and float(r["similarity"]) < default["threshold"]]
    assert missed and all(r["face_a"] in hard or r["face_b"] in hard for r in missed)
    plain = [r for r in rows if r["face_a"] not in hard and r["face_b"] not in hard]
    genuine = [float(r["similarity"]) for r in plain if r["genuine"] == "1"]
    impostor = [float(r["similarity"]) for r in plain if r["genuine"] == "0"]
    assert accuracy_at(genuine, impostor, default["threshold"]) == 1.0


def test_dlib_resnet_identification_closed_and_open_set(manifest_run):
    _, metrics = manifest_run
    closed, opened = metrics["closed_set"], metrics["open_set"]
    assert closed["probes"] >= 20 and closed["rank1"] == 1.0
    assert closed["wrong_at_threshold"] == 0
    assert opened["strangers"] == 6 and opened["strangers_rejected"] == 6
    assert opened["unknown_probes"] == 11 and opened["unknown_named"] == 0
    assert opened["known_named_wrongly"] == 0
    assert opened["known_named_correctly"] >= opened["known_probes"] - 2  # the two partial faces may be unknown


def test_folder_layout_and_lfw_pairs_calibration(faces_dir, use_session_engine, tmp_path, capsys):
    # An LFW-style tree (NAME/NAME_0001.jpg) of links to a few gallery photos, and its pairs.txt.
    photos = {
        "obama": ["gallery/obama/1.jpg", "gallery/obama/2.jpg"],
        "biden": ["gallery/biden/1.jpg", "gallery/biden/2.jpg"],
        "rose_leslie": ["gallery/rose_leslie/1.jpg"],
    }
    for name, paths in photos.items():
        (tmp_path / "lfw" / name).mkdir(parents=True)
        for k, rel in enumerate(paths, start=1):
            (tmp_path / "lfw" / name / f"{name}_{k:04d}.jpg").symlink_to(faces_dir / rel)
    (tmp_path / "pairs.txt").write_text("1 2\nobama 1 2\nbiden 1 2\nobama 1 biden 1\nrose_leslie 1 obama 2\n")
    out = tmp_path / "out"
    args = [
        "calibrate",
        str(tmp_path / "lfw"),
        "--pairs",
        str(tmp_path / "pairs.txt"),
        "--far",
        "0.01",
        "--out",
        str(out),
    ]
    assert evaluation.main(args) == 0
    printed = capsys.readouterr().out
    cal = json.loads((out / "calibration.json").read_text())
    assert cal["n_genuine"] == 2 and cal["n_impostor"] == 2
    assert cal["far"] == 0.0 and cal["tar"] == 1.0  # these gallery photos are cleanly separated
    assert f"FACE_THRESHOLD={cal['threshold']:.4f}" in printed and "too few impostor pairs" in printed

    # The same tree as a folder of identity sub-folders: every pair of its 5 photos.
    out = tmp_path / "folders"
    assert evaluation.main(["evaluate", str(tmp_path / "lfw"), "--no-plots", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "folders" and metrics["faces"] == 5
    assert metrics["pairs"] == {"genuine": 2, "impostor": 8, "same_photo_excluded": 0, "skipped_face_not_found": 0}
    assert metrics["default_threshold"]["accuracy"] == 1.0
    assert not (out / "roc.png").exists()


def test_bad_dataset_is_a_clear_error(tmp_path, use_session_engine, capsys):
    assert evaluation.main(["evaluate", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "not a folder" in capsys.readouterr().err

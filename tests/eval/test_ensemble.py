"""Multi-stream ensembles: fusion arithmetic, the accuracy report, and the refusals of streams
that did not score the same clips."""

import json

import numpy as np
import pytest

from skelmae.errors import SkelmaeError
from skelmae.eval.ensemble import (
    StreamScores, check_same_clips, default_output, ensemble, fuse, load_stream, parse_weights, write_ensemble,
)

LABELS = np.array([0, 1, 2, 1])


def write_stream(folder, logits, data="/data/set", split="test", manifest="ab" * 32):
    """A folder as ``skelmae evaluate`` writes it."""
    folder.mkdir(parents=True)
    np.save(folder / "logits.npy", np.asarray(logits, dtype=np.float32))
    (folder / "metrics.json").write_text(json.dumps({"checkpoint": f"{folder}/last.pt", "data": data, "split": split}))
    if manifest is not None:
        (folder / "data.json").write_text(json.dumps({"root": data, "manifest_sha256": manifest}))
    return folder


def stream(logits, **kw):
    defaults = {"folder": "run/eval-test", "data": "/data/set", "split": "test", "manifest": "ab" * 32, "checkpoint": None}
    values = {**defaults, **kw}
    return StreamScores(values["folder"], np.asarray(logits, dtype=np.float32), values["data"], values["split"],
                        values["manifest"], values["checkpoint"])


def test_raw_scores_add_with_their_weights_and_softmax_adds_probabilities():
    confident = np.array([[10.0, 0.0, 0.0]])  # an over-confident stream for class 0
    mild = np.array([[0.0, 3.0, 0.0]])  # two milder ones for class 1
    np.testing.assert_allclose(fuse([confident, mild, mild], [1, 0.5, 0.5]), [[10.0, 3.0, 0.0]])
    assert fuse([confident, mild, mild], [1, 1, 1]).argmax() == 0  # raw scores: the confident stream wins
    probabilities = fuse([confident, mild, mild], [1, 1, 1], softmax=True)
    np.testing.assert_allclose(probabilities.sum(), 3.0)
    assert probabilities.argmax() == 1  # probabilities: two streams outvote one


def test_report_has_each_stream_and_the_fusion():
    joint = [[3, 1, 0], [0, 2, 1], [1, 0, 0], [2, 1, 0]]  # right, right, wrong, wrong
    bone = [[1, 0, 0], [0, 1, 0], [0, 0, 4], [0, 1, 0]]  # right, right, right, right
    report, fused = ensemble([stream(joint, folder="j"), stream(bone, folder="b")], LABELS, [0.6, 0.4])
    np.testing.assert_allclose(fused, 0.6 * np.array(joint) + 0.4 * np.array(bone), rtol=1e-6)
    assert [s["top1"] for s in report["streams"]] == [50.0, 100.0]
    assert [s["weight"] for s in report["streams"]] == [0.6, 0.4] and report["streams"][0]["folder"] == "j"
    assert report["fusion"]["top1"] == 75.0  # sample 4: 0.6 * 2 > 0.6 * 1 + 0.4 * 1, the joint stream's mistake wins
    assert report["fusion"]["top5"] == 100.0 and report["fusion"]["samples"] == 4  # top-5 of 3 classes: all
    assert (report["split"], report["classes"], report["scores"]) == ("test", 3, "logits")


def test_labels_must_fit_the_scores():
    with pytest.raises(SkelmaeError, match="4 scored samples, but split 'test' of /data/set has 3 labels"):
        ensemble([stream(np.zeros((4, 3)))], LABELS[:3])
    with pytest.raises(SkelmaeError, match="labels outside the 2 scored classes"):
        ensemble([stream(np.zeros((4, 2)))], LABELS)


def test_streams_must_score_the_same_clips():
    base = stream(np.zeros((4, 3)), folder="a")
    cases = [
        (stream(np.zeros((4, 3)), folder="b", split="train"), "b and a evaluated different splits: 'train' vs 'test'"),
        (stream(np.zeros((5, 3)), folder="b"), "5 samples x 3 classes vs 4 samples x 3 classes"),
        (stream(np.zeros((4, 2)), folder="b"), "4 samples x 2 classes vs 4 samples x 3 classes"),
        (stream(np.zeros((4, 3)), folder="b", manifest="cd" * 32), "b and a evaluated different data: manifest"),
    ]
    for other, message in cases:
        with pytest.raises(SkelmaeError, match=message):
            check_same_clips([base, other])
    moved = stream(np.zeros((4, 3)), folder="b", data="/elsewhere/set")
    check_same_clips([base, moved])  # the same manifest: the same data, wherever it lies
    unhashed = [stream(np.zeros((4, 3)), folder=f, manifest=None, data=d) for f, d in (("a", "/x"), ("b", "/y"))]
    with pytest.raises(SkelmaeError, match="different data folders: /y vs /x"):
        check_same_clips(unhashed)


def test_weights_are_one_per_stream_and_non_negative():
    assert parse_weights(None, 3) == [1.0, 1.0, 1.0]
    assert parse_weights("0.6,0.6,0.4,0.4", 4) == [0.6, 0.6, 0.4, 0.4]
    for text, message in [("1,2", "2 weight\\(s\\) for 3 evaluation folder\\(s\\)"), ("1,a,2", "comma-separated numbers"),
                          ("1,-1,2", "non-negative"), ("0,0,0", "not all zero"), ("1,nan,1", "finite")]:
        with pytest.raises(SkelmaeError, match=message):
            parse_weights(text, 3)


def test_evaluation_folders_are_read_and_checked(tmp_path):
    folder = write_stream(tmp_path / "joint" / "eval-test", [[1, 0], [0, 1]])
    loaded = load_stream(folder)
    assert loaded.logits.shape == (2, 2) and loaded.split == "test" and loaded.manifest == "ab" * 32
    assert load_stream(write_stream(tmp_path / "old", [[1, 0]], manifest=None)).manifest is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(SkelmaeError, match="empty/logits.npy not found: pass folders written by `skelmae evaluate`"):
        load_stream(tmp_path / "empty")
    bad = write_stream(tmp_path / "bad", [1.0, 2.0])
    with pytest.raises(SkelmaeError, match="expected a float \\(samples, classes\\) array"):
        load_stream(bad)
    (folder / "metrics.json").write_text(json.dumps({"top1": 50.0}))
    with pytest.raises(SkelmaeError, match="has no \\['data', 'split'\\]"):
        load_stream(folder)


def test_outputs_are_written_beside_the_runs(tmp_path):
    streams = [load_stream(write_stream(tmp_path / "runs" / name / "eval-test", np.eye(4, 3))) for name in ("j", "b")]
    assert default_output(streams) == (tmp_path / "runs" / "ensemble-test").resolve()
    report, fused = ensemble(streams, LABELS)
    written = write_ensemble(tmp_path / "out", report, fused)
    assert json.loads(written.read_text())["fusion"] == report["fusion"]
    np.testing.assert_allclose(np.load(tmp_path / "out" / "logits.npy"), 2 * np.eye(4, 3))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ensemble.json", "logits.npy"]  # no temporaries left

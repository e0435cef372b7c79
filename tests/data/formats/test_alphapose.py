"""AlphaPose alphapose-results.json: frames by image id, layouts by count, tracks, errors, prepare."""

import json

import numpy as np
import pytest

from skelmae.data.formats import read_pose_file
from skelmae.data.prepare import prepare
from skelmae.data.storage import SkeletonStore
from skelmae.errors import DataFormatError


def _detection(image: str, joints: int, x: float, score: float = 2.5, idx=None, keypoint_score: float = 0.9) -> dict:
    """A detection whose keypoint j is at (x + j, 40)."""
    found = {"image_id": image, "category_id": 1, "keypoints": [v for j in range(joints) for v in (x + j, 40.0, keypoint_score)],
             "score": score, "box": [0, 0, 10, 10]}
    if idx is not None:
        found["idx"] = idx
    return found


def _write(path, detections):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(detections))
    return path


def test_coco17_frames_ordered_by_image_number(tmp_path):
    path = _write(tmp_path / "alphapose-results.json", [
        _detection("10.jpg", 17, 100), _detection("2.jpg", 17, 20), _detection("9.jpg", 17, 90),
    ])
    [sample] = read_pose_file(path, image_size="200x80", max_persons=1)  # --format auto recognises the default name
    assert sample.name == tmp_path.name and sample.layout == "coco17" and sample.sequence.shape == (3, 1, 17, 3)
    np.testing.assert_allclose(sample.sequence[:, 0, 0, 0], [(20 - 100) / 100, (90 - 100) / 100, 0.0])
    np.testing.assert_allclose(sample.sequence[:, 0, :, 1], 0.0)
    np.testing.assert_allclose(sample.sequence[..., 2], 0.9)


def test_halpe_layouts(tmp_path):
    halpe = _write(tmp_path / "halpe.json", [_detection("0.jpg", 26, 0)])
    [sample] = read_pose_file(halpe, fmt="alphapose")
    assert sample.name == "halpe" and sample.layout == "halpe26" and sample.sequence.shape == (1, 2, 26, 3)
    [sample] = read_pose_file(halpe, fmt="alphapose", layout="coco17")
    assert sample.layout == "coco17" and sample.sequence.shape[2] == 17
    full = _write(tmp_path / "full.json", [_detection("0.jpg", 136, 0)])
    [sample] = read_pose_file(full, fmt="alphapose")
    assert sample.layout == "halpe26"


def test_tracked_people_keep_their_slots(tmp_path):
    path = _write(tmp_path / "tracked.json", [
        _detection("0.jpg", 17, 0, score=1.0, idx=[3.0, 7.0]), _detection("0.jpg", 17, 100, score=3.0, idx=5),
        _detection("1.jpg", 17, 0, score=1.0, idx=3),
        _detection("2.jpg", 17, 100, score=3.0, idx=5), _detection("2.jpg", 17, 0, score=1.0, idx=[3]),
    ])
    [sample] = read_pose_file(path, fmt="alphapose", image_size="200x80")
    seq = sample.sequence
    # track 5 totals 6.0, track 3 3.0 (a list's first entry is the person's id)
    np.testing.assert_allclose(seq[[0, 2], 0, 0, 0], 0.0)
    assert not seq[1, 0].any()
    np.testing.assert_allclose(seq[:, 1, 0, 0], -1.0)


def test_without_tracking_each_frame_orders_people_by_score(tmp_path):
    path = _write(tmp_path / "plain.json", [  # AlphaPose without tracking writes idx 0 for everyone
        _detection("0.jpg", 17, 0, score=1.0, idx=0), _detection("0.jpg", 17, 100, score=3.0, idx=0),
        _detection("1.jpg", 17, 0, score=1.0, idx=0),
    ])
    [sample] = read_pose_file(path, fmt="alphapose", image_size="200x80")
    np.testing.assert_allclose(sample.sequence[:, 0, 0, 0], [0.0, -1.0])
    np.testing.assert_allclose(sample.sequence[0, 1, 0, 0], -1.0)
    assert not sample.sequence[1, 1].any()


def test_min_score_and_undetected_keypoints(tmp_path):
    low = _detection("0.jpg", 17, 0, keypoint_score=0.05)
    low["keypoints"][3 * 16: 3 * 16 + 3] = [0, 0, 0]
    path = _write(tmp_path / "low.json", [low, _detection("1.jpg", 17, 10)])
    [sample] = read_pose_file(path, fmt="alphapose")
    assert (sample.sequence[0, 0, 16] == 0).all() and (sample.sequence[0, 0, :16, 2] > 0).all()
    [cut] = read_pose_file(path, fmt="alphapose", min_score=0.1)
    assert not cut.sequence[0].any() and cut.sequence[1].any()


@pytest.mark.parametrize(
    "entry, field, message",
    [
        ({"image_id": "0.jpg", "score": 1.0}, "[1].keypoints", "is missing"),
        ({"keypoints": [0] * 51}, "[1].image_id", "is missing"),
        (_detection("1.jpg", 18, 0), "[1].keypoints", "has 18 keypoints"),
        ({**_detection("1.jpg", 17, 0), "keypoints": [0] * 50}, "[1].keypoints", "has 50 values"),
        ({**_detection("1.jpg", 17, 0), "keypoints": [0] * 50 + [None]}, "[1].keypoints", "value 51 is null"),
        ({**_detection("1.jpg", 17, 0), "score": "0.5"}, "[1].score", 'is "0.5"'),
        ({**_detection("1.jpg", 17, 0), "idx": "a"}, "[1].idx", 'is "a"'),
    ],
)
def test_bad_detections_name_the_file_and_field(tmp_path, entry, field, message):
    path = _write(tmp_path / "bad.json", [_detection("0.jpg", 17, 0), entry])
    with pytest.raises(DataFormatError) as info:
        read_pose_file(path, fmt="alphapose")
    assert info.value.path == str(path) and info.value.where == f"field '{field}'" and message in info.value.problem


def test_bad_files_are_clear_errors(tmp_path):
    for doc, message in [([], "is an empty list"), ({"image_id": 1}, "is a dict"), (["x"], "field '[0]': is a str"),
                         ([_detection("0.jpg", 20, 0)], "has 20 keypoints (expected AlphaPose keypoints: 17 (coco17)")]:
        path = _write(tmp_path / "bad.json", doc)
        with pytest.raises(DataFormatError) as info:
            read_pose_file(path, fmt="alphapose")
        assert message in str(info.value) and str(path) in str(info.value)


def test_prepare_round_trip(tmp_path):
    raw = tmp_path / "raw"
    for name, x in (("A001_P1", 0), ("A002_P2", 20)):
        _write(raw / name / "alphapose-results.json", [_detection(f"{t}.jpg", 26, x + t) for t in range(3)])
    _write(raw / "A001_P3.json", [_detection("0.jpg", 26, 5)])
    classes = tmp_path / "classes.txt"
    classes.write_text("wave\nclap\n")
    report = prepare(
        "alphapose", raw, tmp_path / "ds", workers=1, progress=False, name_pattern="A{label:d}_P{person:d}",
        class_names=classes, max_persons=1,
    )
    store = SkeletonStore(report.out)
    assert store.names == ["A001_P1", "A001_P3", "A002_P2"] and list(store.labels) == [0, 0, 1]
    assert store.classes == ["wave", "clap"] and store.layout.name == "halpe26" and store.num_persons == 1
    [read] = read_pose_file(raw / "A002_P2" / "alphapose-results.json", fmt="alphapose", max_persons=1)
    assert read.name == "A002_P2"
    np.testing.assert_array_equal(store.sequence(2), read.sequence)

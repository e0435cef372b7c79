"""OpenPose --write_json folders: frame order, layouts, persons, normalisation, errors, prepare."""

import json

import numpy as np
import pytest

from skelmae.data.formats import read_pose_file
from skelmae.data.formats.base import FormatOptionError
from skelmae.data.prepare import prepare
from skelmae.data.storage import SkeletonStore
from skelmae.errors import DataFormatError


def _keypoints(joints: int, x: float, y: float = 50.0, score: float = 0.9) -> list[float]:
    """A person whose joint j is at (x + j, y) with ``score``."""
    return [v for j in range(joints) for v in (x + j, y, score)]


def _write_frames(folder, frames, video=None, person_ids=None):
    """One frame file per entry of ``frames`` (a list of people's flat keypoints), numbered from 0
    and named after ``video`` (default: the folder), as OpenPose names them."""
    folder.mkdir(parents=True, exist_ok=True)
    video = video or folder.name
    for t, people in enumerate(frames):
        ids = person_ids[t] if person_ids else [-1] * len(people)
        doc = {"version": 1.3, "people": [
            {"person_id": [pid], "pose_keypoints_2d": kp, "face_keypoints_2d": [], "hand_left_keypoints_2d": []}
            for pid, kp in zip(ids, people)
        ]}
        (folder / f"{video}_{t:012d}_keypoints.json").write_text(json.dumps(doc))
    return folder


def test_body25_folder_is_one_clip_in_frame_order(tmp_path):
    folder = tmp_path / "walk"
    folder.mkdir()
    for frame in (10, 9, 0):  # numbers, not names, give the order
        doc = {"people": [{"person_id": [-1], "pose_keypoints_2d": _keypoints(25, x=frame)}]}
        (folder / f"walk_{frame}_keypoints.json").write_text(json.dumps(doc))
    (folder / "notes.txt").write_text("ignored")
    [sample] = read_pose_file(folder, fmt="openpose", image_size="100x100", max_persons=1)
    assert sample.name == "walk" and sample.layout == "openpose_body25"
    assert sample.sequence.shape == (3, 1, 25, 3) and sample.sequence.dtype == np.float32
    x = sample.sequence[:, 0, 0, 0]
    np.testing.assert_allclose(x, [(0 - 50) / 50, (9 - 50) / 50, (10 - 50) / 50])  # PYSKL: (x - w/2) / (w/2)
    np.testing.assert_allclose(sample.sequence[0, 0, :, 1], 0.0)  # y = 50 = h/2
    np.testing.assert_allclose(sample.sequence[..., 2], 0.9)


def test_coco18_by_keypoint_count_and_the_layout_option(tmp_path):
    folder = _write_frames(tmp_path / "c", [[_keypoints(18, 0)]])
    [sample] = read_pose_file(folder, fmt="openpose")
    assert sample.layout == "openpose_coco18" and sample.sequence.shape == (1, 2, 18, 3)  # max_persons defaults to 2
    with pytest.raises(DataFormatError, match=r"c_000000000000_keypoints.json, field 'people\[0\].pose_keypoints_2d': has 18 keypoints, which do not start with layout openpose_body25"):
        read_pose_file(folder, fmt="openpose", layout="openpose_body25")
    with pytest.raises(FormatOptionError, match="layout 'coco17' is not one this format gives"):
        read_pose_file(folder, fmt="openpose", layout="coco17")


def test_clip_box_normalisation_and_undetected_keypoints(tmp_path):
    person = _keypoints(25, x=100, y=200)
    person[3 * 4: 3 * 4 + 3] = [0, 0, 0]  # joint 4 undetected, as OpenPose writes it
    folder = _write_frames(tmp_path / "n", [[person]])
    [sample] = read_pose_file(folder, fmt="openpose")
    seq = sample.sequence[0, 0]
    assert (seq[4] == 0).all()
    xs = np.delete(seq[:, 0], 4)
    assert xs.min() == pytest.approx(-1) and xs.max() == pytest.approx(1)  # x spans the box's larger side
    np.testing.assert_allclose(np.delete(seq[:, 1], 4), 0.0)
    assert not sample.sequence[:, 1].any()  # the second person slot is empty


def test_two_tracked_people_keep_their_slots_and_missing_people_are_zero(tmp_path):
    a, b = _keypoints(25, 10, score=0.9), _keypoints(25, 500, score=0.4)
    frames = [[a, b], [b, a], [b], []]
    ids = [[1, 2], [2, 1], [2], []]
    folder = _write_frames(tmp_path / "two", frames, person_ids=ids)
    [sample] = read_pose_file(folder, fmt="openpose", image_size="1000x1000")
    seq = sample.sequence
    # track 1 totals 1.8 over two frames, track 2 1.2 over three: track 1 is person 0
    np.testing.assert_allclose(seq[:2, 0, 0, 0], (10 - 500) / 500)
    np.testing.assert_allclose(seq[:3, 1, 0, 0], 0.0)  # x = 500 = w/2 -> 0, with score 0.4
    np.testing.assert_allclose(seq[:3, 1, 0, 2], 0.4)
    assert not seq[2, 0].any() and not seq[3].any()


def test_untracked_people_fill_the_slots_by_mean_confidence(tmp_path):
    weak, strong = _keypoints(25, 10, score=0.3), _keypoints(25, 500, score=0.8)
    folder = _write_frames(tmp_path / "u", [[weak, strong]])
    [sample] = read_pose_file(folder, fmt="openpose", max_persons=1, image_size="1000x1000")
    np.testing.assert_allclose(sample.sequence[0, 0, :, 2], 0.8)


def test_auto_format_recognises_frame_folders_and_files(tmp_path):
    folder = _write_frames(tmp_path / "auto", [[_keypoints(25, 0)], [_keypoints(25, 1)]])
    [sample] = read_pose_file(folder)
    assert sample.layout == "openpose_body25" and len(sample.sequence) == 2
    [single] = read_pose_file(folder / "auto_000000000001_keypoints.json")
    assert single.sequence.shape == (1, 2, 25, 3)
    with pytest.raises(DataFormatError, match="is a folder"):
        read_pose_file(folder, fmt="mmpose")


@pytest.mark.parametrize(
    "doc, field, message",
    [
        ({"people": [{"pose_keypoints_2d": _keypoints(20, 0)}]}, "people[0].pose_keypoints_2d", "has 20 keypoints"),
        ({"people": [{"person_id": [-1]}]}, "people[0].pose_keypoints_2d", "is missing"),
        ({"people": [{"pose_keypoints_2d": _keypoints(25, 0)[:-1] + ["0.5"]}]}, "people[0].pose_keypoints_2d", 'value 75 is "0.5"'),
        ({"people": [{"pose_keypoints_2d": _keypoints(25, 0)[:-1]}]}, "people[0].pose_keypoints_2d", "has 74 values"),
        ({"version": 1.3}, "people", "is missing"),
        ({"people": [{"person_id": ["x"], "pose_keypoints_2d": _keypoints(25, 0)}]}, "people[0].person_id", "is \"x\""),
    ],
)
def test_bad_frames_name_the_file_and_field(tmp_path, doc, field, message):
    folder = _write_frames(tmp_path / "bad", [[_keypoints(25, 0)]])
    bad = folder / "bad_000000000001_keypoints.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError) as info:
        read_pose_file(folder, fmt="openpose")
    assert info.value.path == str(bad) and info.value.where == f"field '{field}'" and message in info.value.problem


def test_bad_folders_are_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataFormatError, match=r"empty: holds no \*_keypoints.json frame file"):
        read_pose_file(empty, fmt="openpose")
    mixed = _write_frames(tmp_path / "mixed", [[_keypoints(25, 0)]], video="a")
    _write_frames(mixed, [[_keypoints(25, 0)]], video="b")
    with pytest.raises(DataFormatError, match="holds the frames of 2 videos"):
        read_pose_file(mixed, fmt="openpose")
    twice = _write_frames(tmp_path / "twice", [[_keypoints(25, 0)]])
    (twice / "twice_0_keypoints.json").write_text((twice / "twice_000000000000_keypoints.json").read_text())
    with pytest.raises(DataFormatError, match="frame 0 is also"):
        read_pose_file(twice, fmt="openpose")
    nobody = _write_frames(tmp_path / "nobody", [[], []])
    with pytest.raises(DataFormatError, match="no person is detected in any frame"):
        read_pose_file(nobody, fmt="openpose")


def test_prepare_round_trip(tmp_path):
    raw = tmp_path / "raw"
    for name, label in (("a1_s1", 1), ("a2_s2", 2), ("a1_s3", 1)):
        _write_frames(raw / "videos" / name, [[_keypoints(25, 10 * label)], [_keypoints(25, 20), _keypoints(25, 40, score=0.5)]], video=name)
    report = prepare(
        "openpose", raw, tmp_path / "ds", workers=1, progress=False,
        name_pattern="a{label:d}_s{subject:d}", split=["train:subject != 3"], image_size="200x100",
    )
    store = SkeletonStore(report.out)
    assert store.names == ["a1_s1", "a1_s3", "a2_s2"] and list(store.labels) == [0, 0, 1]
    assert store.layout.name == "openpose_body25" and store.channels == ["x", "y", "score"] and store.num_persons == 2
    assert list(store.meta("subject")) == [1, 3, 2] and sorted(store.names[i] for i in store.split("train")) == ["a1_s1", "a2_s2"]
    [read] = read_pose_file(raw / "videos" / "a2_s2", fmt="openpose", image_size="200x100")
    np.testing.assert_array_equal(store.sequence(store.names.index("a2_s2")), read.sequence)
    assert "(x - w/2) / (w/2)" in store.manifest["source"]["normalisation"]
    recorded = store.preprocessing  # what prediction redoes on a bare array of pixels
    assert (recorded.normalise_2d, recorded.image_size, recorded.persons) == ("image_size", (100.0, 200.0), 2)

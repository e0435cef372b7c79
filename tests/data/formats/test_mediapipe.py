"""MediaPipe Pose landmarks: JSON and both CSV shapes, image and world coordinates, errors, prepare."""

import json

import numpy as np
import pytest

from skelmae.data.formats import read_pose_file
from skelmae.data.formats.base import FormatOptionError
from skelmae.data.layouts import get_layout
from skelmae.data.prepare import prepare
from skelmae.data.storage import SkeletonStore
from skelmae.errors import DataFormatError

NAMES = get_layout("mediapipe33").joint_names


def _landmarks(t: int, visibility: float = 0.9) -> list[dict]:
    """Landmark j of frame t at x = 0.01 j + 0.1 t, y = 0.5, z = -0.1 j."""
    return [{"x": 0.01 * j + 0.1 * t, "y": 0.5, "z": -0.1 * j, "visibility": visibility} for j in range(33)]


def _write(path, text):
    path.write_text(text)
    return path


def _wide_csv(frames, column=lambda name, value: f"{name}_{value}", extra_column=False) -> str:
    """One row per frame (None: a frame without a pose), in reverse frame order with a frame column."""
    header = ["frame", *(column(NAMES[j] if column("n", "x") == "n_x" else j, v) for j in range(33) for v in ("x", "y", "z", "visibility"))]
    rows = [",".join(header + (["timestamp"] if extra_column else []))]
    for t in reversed(range(len(frames))):
        cells = [""] * 132 if frames[t] is None else [f"{lm[v]}" for lm in frames[t] for v in ("x", "y", "z", "visibility")]
        rows.append(",".join([str(t), *cells, *(["123"] if extra_column else [])]))
    return "\n".join(rows) + "\n"


def test_json_image_landmarks_are_normalised_like_pyskl(tmp_path):
    path = _write(tmp_path / "wave.json", json.dumps([_landmarks(0), None, _landmarks(2, visibility=0.4)]))
    [sample] = read_pose_file(path, fmt="mediapipe")
    assert sample.name == "wave" and sample.layout == "mediapipe33" and sample.sequence.shape == (3, 1, 33, 3)
    np.testing.assert_allclose(sample.sequence[0, 0, :, 0], 2 * (0.01 * np.arange(33)) - 1, atol=1e-6)
    np.testing.assert_allclose(sample.sequence[0, 0, :, 1], 0.0, atol=1e-6)
    np.testing.assert_allclose(sample.sequence[2, 0, :, 2], 0.4)
    assert not sample.sequence[1].any()


def test_json_world_landmarks_are_3d_and_centred_on_the_left_hip(tmp_path):
    frames = [{"pose_landmarks": _landmarks(9), "pose_world_landmarks": _landmarks(t)} for t in range(2)]
    path = _write(tmp_path / "world.json", json.dumps(frames))
    [sample] = read_pose_file(path, fmt="mediapipe", coordinates="world")
    raw = np.array([[[lm["x"], lm["y"], lm["z"]] for lm in _landmarks(t)] for t in range(2)])
    np.testing.assert_allclose(sample.sequence[:, 0], raw - raw[0, NAMES.index("left_hip")], atol=1e-6)
    [image] = read_pose_file(path, fmt="mediapipe")  # the same file's image landmarks
    np.testing.assert_allclose(image.sequence[:, 0, 0, 0], 2 * 0.9 - 1, atol=1e-6)


def test_several_poses_fill_the_slots_by_visibility(tmp_path):
    path = _write(tmp_path / "two.json", json.dumps([[_landmarks(0, 0.3), _landmarks(5, 0.8)], [_landmarks(1, 0.3)]]))
    [sample] = read_pose_file(path, fmt="mediapipe", max_persons=2)
    np.testing.assert_allclose(sample.sequence[0, :, 0, 2], [0.8, 0.3])
    np.testing.assert_allclose(sample.sequence[1, 0, 0, 2], 0.3)
    assert not sample.sequence[1, 1].any()


@pytest.mark.parametrize("column", [lambda name, value: f"{name}_{value}", lambda index, value: f"{value}{index}"])
def test_csv_one_row_per_frame(tmp_path, column):
    frames = [_landmarks(0), None, _landmarks(2)]
    path = _write(tmp_path / "rows.csv", _wide_csv(frames, column, extra_column=True))
    [sample] = read_pose_file(path)  # --format auto recognises the landmark columns
    assert sample.layout == "mediapipe33" and sample.sequence.shape == (3, 1, 33, 3)
    np.testing.assert_allclose(sample.sequence[:, 0, 1, 0], [2 * 0.01 - 1, 0, 2 * 0.21 - 1], atol=1e-6)  # frame order
    assert not sample.sequence[1].any()


def test_csv_one_row_per_landmark(tmp_path):
    lines = ["frame,landmark,x,y,z,visibility"]
    for t in (1, 0):
        lines += [f"{t},{NAMES[j] if j % 2 else j},{lm['x']},{lm['y']},{lm['z']},{lm['visibility']}"
                  for j, lm in reversed(list(enumerate(_landmarks(t))))]
    path = _write(tmp_path / "long.csv", "\n".join(lines) + "\n")
    [sample] = read_pose_file(path, fmt="mediapipe", coordinates="world", center=False)
    assert sample.sequence.shape == (2, 1, 33, 3)
    np.testing.assert_allclose(sample.sequence[1, 0, :, 0], 0.01 * np.arange(33) + 0.1, atol=1e-6)
    np.testing.assert_allclose(sample.sequence[0, 0, :, 2], -0.1 * np.arange(33), atol=1e-6)


@pytest.mark.parametrize(
    "edit, where, message",
    [
        (lambda rows: [rows[0].replace("left_wrist_y", "wrist_y"), *rows[1:]], 1, "the header has no column 'left_wrist_y'"),
        (lambda rows: [rows[0], rows[1].replace(",0.5,", ",half,", 1), *rows[2:]], 2, "is 'half'"),
        (lambda rows: [rows[0], rows[1].replace(",0.5,", ",,", 1), *rows[2:]], 2, "is empty"),
        (lambda rows: [rows[0], "x" + rows[1], *rows[2:]], 2, "column 'frame' is 'x1'"),
        (lambda rows: [rows[0], rows[1], rows[1]], 3, "frame 1 is also on line 2"),
    ],
)
def test_bad_csv_names_the_line(tmp_path, edit, where, message):
    rows = _wide_csv([_landmarks(0), _landmarks(1)]).splitlines()
    path = _write(tmp_path / "bad.csv", "\n".join(edit(rows)) + "\n")
    with pytest.raises(DataFormatError) as info:
        read_pose_file(path, fmt="mediapipe")
    assert info.value.path == str(path) and info.value.where == where and message in info.value.problem


def test_bad_long_csv_and_json_name_the_place(tmp_path):
    long = _write(tmp_path / "long.csv", "frame,landmark,x,y,visibility\n0,nose,0.1,0.2,1\n0,elbow,0.1,0.2,1\n")
    with pytest.raises(DataFormatError, match=r"long.csv, line 3: column 'landmark' is 'elbow'"):
        read_pose_file(long, fmt="mediapipe")
    short = _write(tmp_path / "short.csv", "frame,landmark,x,y,visibility\n0,nose,0.1,0.2,1\n")
    with pytest.raises(DataFormatError, match="frame 0 lists 1 of the 33 landmarks"):
        read_pose_file(short, fmt="mediapipe")
    cases = [
        ([_landmarks(0)[:32]], "field '[0]': has 32 landmarks"),
        ([[*_landmarks(0)[:5], {"x": 0.1, "y": 0.2}, *_landmarks(0)[6:]]], "field '[0][5].visibility': is missing"),
        ([[*_landmarks(0)[:5], {**_landmarks(0)[5], "x": "0.1"}, *_landmarks(0)[6:]]], "field '[0][5].x': is \"0.1\""),
        ([{"pose_world_landmarks": _landmarks(0)}], "field '[0].pose_landmarks': is missing"),
        ({"frames": []}, "top level is a dict"),
        ([None, []], "no person is detected in any frame"),
        ([], "holds no frame"),
    ]
    for doc, message in cases:
        path = _write(tmp_path / "bad.json", json.dumps(doc))
        with pytest.raises(DataFormatError) as info:
            read_pose_file(path, fmt="mediapipe")
        assert str(path) in str(info.value) and message in str(info.value)


def test_world_needs_no_visibility_and_options_are_checked(tmp_path):
    frames = [[{"x": 0.1 * j, "y": 0.0, "z": 1.0} for j in range(33)]]
    path = _write(tmp_path / "xyz.json", json.dumps(frames))
    [sample] = read_pose_file(path, fmt="mediapipe", coordinates="world", center=False)
    np.testing.assert_allclose(sample.sequence[0, 0, :, 2], 1.0)
    with pytest.raises(FormatOptionError, match=r"coordinates must be one of \['image', 'world'\]"):
        read_pose_file(path, fmt="mediapipe", coordinates="camera")


def test_prepare_round_trip_world(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _write(raw / "s1_squat.json", json.dumps([{"pose_world_landmarks": _landmarks(t)} for t in range(3)]))
    _write(raw / "s2_lunge.csv", _wide_csv([_landmarks(1), _landmarks(2)]))
    report = prepare("mediapipe", raw, tmp_path / "ds", workers=1, progress=False, coordinates="world", name_pattern="s{subject:d}_{label}")
    store = SkeletonStore(report.out)
    assert store.channels == ["x", "y", "z"] and store.num_persons == 1 and store.layout.name == "mediapipe33"
    assert store.names == ["s1_squat", "s2_lunge"] and store.classes == ["lunge", "squat"] and list(store.labels) == [1, 0]
    [read] = read_pose_file(raw / "s2_lunge.csv", fmt="mediapipe", coordinates="world")
    np.testing.assert_array_equal(store.sequence(1), read.sequence)
    assert (store.sequence(1)[0, 0, NAMES.index("left_hip")] == 0).all()  # centred by the planner
    assert (store.preprocessing.centre, store.preprocessing.centre_joint) == ("first_frame", "left_hip")


def test_prepare_records_the_image_normalisation(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _write(raw / "clip.json", json.dumps([_landmarks(0)]))
    store = SkeletonStore(prepare("mediapipe", raw, tmp_path / "ds", workers=1, progress=False).out)
    assert store.channels == ["x", "y", "score"]
    assert (store.preprocessing.normalise_2d, store.preprocessing.image_size) == ("image_size", (1.0, 1.0))

"""Person slots, 2D normalisation and JSON decoding shared by the pose-estimator readers."""

import json

import numpy as np
import pytest

from skelmae.data.formats import FORMATS, read_pose_file
from skelmae.data.formats.base import FormatOptionError
from skelmae.data.formats.tracks import (
    Detection, PixelOptions, assign_persons, clip_2d, detection, frame_number, load_json, normalise_2d, number_rows, numbers,
    track_id,
)
from skelmae.errors import DataFormatError


def _person(value: float, score: float, track: int | None = None, joints: int = 2) -> Detection:
    return Detection(np.full((joints, 3), value), score, track)


def test_tracks_keep_their_slot_ranked_by_total_confidence():
    frames = [
        [_person(1, 0.9, track=7), _person(2, 0.5, track=3)],
        [_person(2, 0.6, track=3)],  # track 7 missing here
        [_person(2, 0.6, track=3), _person(1, 0.2, track=7)],
    ]
    clip = assign_persons(frames, 2, 2, 3)
    # track 3 totals 1.7, track 7 1.1: track 3 takes slot 0 in every frame it appears
    assert clip.shape == (3, 2, 2, 3)
    assert (clip[:, 0] == 2).all()
    assert (clip[0, 1] == 1).all() and (clip[1, 1] == 0).all() and (clip[2, 1] == 1).all()
    kept = assign_persons(frames, 1, 2, 3)
    assert kept.shape == (3, 1, 2, 3) and (kept == 2).all()


def test_tracks_of_equal_confidence_rank_by_length_then_start():
    frames = [[_person(1, 1.0, track=1)], [_person(2, 0.5, track=2)], [_person(2, 0.5, track=2), _person(3, 0.5, track=3)],
              [_person(3, 0.5, track=3)]]
    clip = assign_persons(frames, 3, 2, 3)
    # every track totals 1.0; tracks 2 and 3 are longer than 1, and track 2 starts first
    assert clip[1, 0, 0, 0] == 2 and clip[2, 1, 0, 0] == 3 and clip[0, 2, 0, 0] == 1


def test_without_track_ids_each_frame_fills_the_slots_by_score():
    frames = [[_person(1, 0.2), _person(2, 0.9)], [], [_person(3, 0.5)]]
    clip = assign_persons(frames, 2, 2, 3)
    assert clip[0, 0, 0, 0] == 2 and clip[0, 1, 0, 0] == 1
    assert not clip[1].any()
    assert clip[2, 0, 0, 0] == 3 and not clip[2, 1].any()


def test_repeated_or_partial_track_ids_are_not_tracks():
    same_id = [[_person(1, 0.2, track=0), _person(2, 0.9, track=0)]]  # AlphaPose without tracking
    assert assign_persons(same_id, 2, 2, 3)[0, 0, 0, 0] == 2
    partial = [[_person(1, 0.2, track=5), _person(2, 0.9)]]
    assert assign_persons(partial, 2, 2, 3)[0, 0, 0, 0] == 2


def test_detection_zeroes_keypoints_at_or_below_min_score():
    points = np.array([[10.0, 20.0, 0.0], [30.0, 40.0, 0.3], [50.0, 60.0, 0.9]])
    found = detection(points, points[:, 2], 0.3)
    np.testing.assert_array_equal(found.points, [[0, 0, 0], [0, 0, 0], [50, 60, 0.9]])
    assert found.score == pytest.approx(0.3) and found.track is None  # mean over all keypoints, undetected as 0
    assert detection(points, points[:, 2], 0.9) is None
    given = detection(points, points[:, 2], 0.0, score=5.0, track=2)
    assert (given.score, given.track) == (5.0, 2)


def test_image_size_normalisation_is_pyskls():
    clip = np.array([[[[0.0, 0.0, 0.9], [640.0, 240.0, 0.5], [0.0, 0.0, 0.0]]]])  # (1, 1, 3, 3)
    out = normalise_2d(clip, (640, 480))
    np.testing.assert_allclose(out[0, 0], [[-1, -1, 0.9], [1, 0, 0.5], [0, 0, 0]])


def test_clip_box_normalisation_spans_the_larger_side():
    clip = np.zeros((2, 2, 2, 3))
    clip[0, 0] = [[100, 100, 1], [300, 150, 1]]
    clip[1, 1] = [[200, 200, 0.5], [0, 0, 0]]  # an undetected keypoint stays 0
    out = normalise_2d(clip, None)
    # box x 100..300, y 100..200: centre (200, 150), half the larger side 100
    np.testing.assert_allclose(out[0, 0], [[-1, -0.5, 1], [1, 0, 1]])
    np.testing.assert_allclose(out[1, 1], [[0, 0.5, 0.5], [0, 0, 0]])
    assert not out[0, 1].any() and not out[1, 0].any()
    single = normalise_2d(np.array([[[[5.0, 7.0, 1.0]]]]), None)
    np.testing.assert_array_equal(single, [[[[0, 0, 1]]]])  # one point: centred, not scaled


def test_clip_2d_refuses_a_clip_without_detections_and_values_beyond_float32(tmp_path):
    with pytest.raises(DataFormatError, match="no person is detected in any frame"):
        clip_2d([[], []], 2, 1, None, tmp_path / "x.json")
    with pytest.raises(DataFormatError, match=r"x.json, frame 1: a keypoint holds a value beyond"):
        clip_2d([[_person(3e38, 1.0)]], 2, 1, None, tmp_path / "x.json")
    with pytest.raises(DataFormatError, match=r"x.json, frame 1: a normalised keypoint \(check the image size\) holds a value beyond"):
        clip_2d([[_person(1e38, 1.0)]], 2, 1, (1, 1), tmp_path / "x.json")
    clip = clip_2d([[_person(3, 1.0)], []], 2, 2, None, tmp_path / "x.json")
    assert clip.dtype == np.float32 and clip.shape == (2, 2, 2, 3)


def test_track_ids_and_frame_numbers():
    assert track_id(None, "f", "w") is None and track_id([-1], "f", "w") is None and track_id([], "f", "w") is None
    assert track_id(3, "f", "w") == 3 and track_id([2.0, 5], "f", "w") == 2
    with pytest.raises(DataFormatError, match=r"f, w: is 1.5 \(expected a whole-number track id"):
        track_id(1.5, "f", "w")
    with pytest.raises(DataFormatError, match="is \"a\""):
        track_id(["a"], "f", "w")
    assert frame_number("video_000000000012_keypoints") == 12 and frame_number("cam2_frame7.jpg") == 7
    assert frame_number("still") is None


def test_numbers_name_the_field_and_the_value():
    np.testing.assert_array_equal(numbers([1, 2.5], "f", "field 'k'"), [1, 2.5])
    with pytest.raises(DataFormatError, match=r"f, field 'k': value 2 is \"x\" \(expected a list of numbers\)"):
        numbers([1, "x"], "f", "field 'k'")
    with pytest.raises(DataFormatError, match="value 1 is true"):
        numbers([True], "f", "field 'k'")
    with pytest.raises(DataFormatError, match="integer too large"):
        numbers([10**400], "f", "field 'k'")
    with pytest.raises(DataFormatError, match="not finite"):
        numbers([float("nan")], "f", "field 'k'")
    with pytest.raises(DataFormatError, match=r"field 'k': \[1\] is \[1\]"):
        number_rows([[1, 2], [1]], "f", "field 'k'", 2, "[x, y] pairs")


def test_load_json_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"people":\n [1, }')
    with pytest.raises(DataFormatError, match=r"bad.json, line 2: invalid JSON"):
        load_json(path)
    path.write_text("[" * 100_000)
    with pytest.raises(DataFormatError, match="invalid JSON"):
        load_json(path)


def test_pixel_options_are_checked():
    assert PixelOptions(image_size="1920x1080").pixels() == (1920, 1080)
    assert PixelOptions().pixels() is None
    for bad in ("1920", "0x10", "axb", "1920x1080x3"):
        with pytest.raises(FormatOptionError, match="image_size must be WIDTHxHEIGHT"):
            PixelOptions(image_size=bad)
    with pytest.raises(FormatOptionError, match="min_score must be a number of at least 0"):
        PixelOptions(min_score=-0.1)
    with pytest.raises(FormatOptionError, match=r"layout 'ntu25' is not one this format gives; expected one of \['coco17', 'halpe26'\]"):
        PixelOptions(layout="ntu25")


def test_auto_format_leaves_other_json_and_csv_to_their_readers(tmp_path):
    ucla = tmp_path / "a02_s03_e01_v02.json"
    ucla.write_text(json.dumps({"file_name": "a02_s03_e01_v02", "label": 2, "skeletons": [[[0.1 * j, 0.2, 3.0] for j in range(20)]] * 2}))
    [sample] = read_pose_file(ucla)
    assert sample.layout == "kinect20"
    table = tmp_path / "table.csv"
    table.write_text("x,y,z,visibility\n1,2,3,1\n")
    assert not any(FORMATS.get(name).cls.recognises(table) for name in ("openpose", "mmpose", "mediapipe", "alphapose"))
    assert not any(FORMATS.get(name).cls.recognises(ucla) for name in ("openpose", "mmpose", "mediapipe", "alphapose"))

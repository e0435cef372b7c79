"""MMPose / RTMPose prediction JSON: the three shapes, body layouts, persons, errors, prepare."""

import json

import numpy as np
import pytest

from skelmae.data.formats import read_pose_file
from skelmae.data.prepare import prepare
from skelmae.data.storage import SkeletonStore
from skelmae.errors import DataFormatError


def _instance(joints: int, x: float, score: float = 0.8, bbox_score: float | None = 0.9, **extra) -> dict:
    """An instance whose keypoint j is at (x + j, 100)."""
    found = {"keypoints": [[x + j, 100.0] for j in range(joints)], "keypoint_scores": [score] * joints, "bbox": [[0, 0, 10, 10]]}
    if bbox_score is not None:
        found["bbox_score"] = bbox_score
    return {**found, **extra}


def _frames(*frames, start: int = 1) -> list[dict]:
    return [{"frame_id": start + t, "instances": list(instances)} for t, instances in enumerate(frames)]


def _write(path, doc):
    path.write_text(json.dumps(doc, indent="\t"))
    return path


def test_demo_predictions_in_frame_order(tmp_path):
    frames = _frames([_instance(17, 10)], [], [_instance(17, 30)])
    frames.reverse()  # frame_id, not file order, gives the order
    path = _write(tmp_path / "results_walk.json", {"meta_info": {"dataset_name": "coco"}, "instance_info": frames})
    [sample] = read_pose_file(path, fmt="mmpose", image_size="200x200", max_persons=1)
    assert sample.name == "results_walk" and sample.layout == "coco17" and sample.sequence.shape == (3, 1, 17, 3)
    np.testing.assert_allclose(sample.sequence[[0, 2], 0, 0, 0], [(10 - 100) / 100, (30 - 100) / 100])
    assert not sample.sequence[1].any()
    np.testing.assert_allclose(sample.sequence[0, 0, :, 2], 0.8)


def test_inferencer_list_and_single_image(tmp_path):
    video = _write(tmp_path / "video.json", _frames([_instance(17, 0)], [_instance(17, 5)]))
    [sample] = read_pose_file(video)  # --format auto recognises MMPose JSON by its content
    assert sample.layout == "coco17" and len(sample.sequence) == 2
    image = _write(tmp_path / "image.json", [_instance(17, 0, bbox_score=0.2), _instance(17, 50, bbox_score=0.7)])
    [still] = read_pose_file(image, fmt="mmpose", image_size="100x100")
    assert still.sequence.shape == (1, 2, 17, 3)
    np.testing.assert_allclose(still.sequence[0, :, 0, 0], [0.0, -1.0])  # ordered by bbox_score


def test_wholebody_and_halpe_keep_their_body(tmp_path):
    wholebody = _write(tmp_path / "wb.json", _frames([_instance(133, 0)]))
    [sample] = read_pose_file(wholebody, fmt="mmpose", image_size="100x100")
    assert sample.layout == "coco17" and sample.sequence.shape[2] == 17
    np.testing.assert_allclose(sample.sequence[0, 0, :, 0], (np.arange(17) - 50) / 50)  # the first 17 keypoints
    halpe = _write(tmp_path / "halpe.json", _frames([_instance(26, 0)]))
    [sample] = read_pose_file(halpe, fmt="mmpose")
    assert sample.layout == "halpe26"
    [sample] = read_pose_file(halpe, fmt="mmpose", layout="coco17")
    assert sample.layout == "coco17" and sample.sequence.shape[2] == 17


def test_track_ids_keep_slots_and_missing_scores_use_the_keypoints(tmp_path):
    a = dict(x=10, bbox_score=None, score=0.9)
    b = dict(x=60, bbox_score=None, score=0.2)
    path = _write(tmp_path / "tracked.json", _frames(
        [_instance(17, **b, track_id=4), _instance(17, **a, track_id=9)],
        [_instance(17, **b, track_id=4)],
        [_instance(17, **a, track_id=9), _instance(17, **b, track_id=4)],
    ))
    [sample] = read_pose_file(path, fmt="mmpose", image_size="100x100", min_score=0.1)
    seq = sample.sequence
    # track 9: 1.8 over two frames; track 4: 0.6 over three
    np.testing.assert_allclose(seq[[0, 2], 0, 0, 0], -0.8)
    np.testing.assert_allclose(seq[:, 1, 0, 0], 0.2)
    assert not seq[1, 0].any()
    [cut] = read_pose_file(path, fmt="mmpose", image_size="100x100", min_score=0.5)
    assert not cut.sequence[:, 1].any() and not cut.sequence[1].any()  # all of track 4 is below 0.5


@pytest.mark.parametrize(
    "instance, field, message",
    [
        ({"keypoints": [[0, 0]] * 17}, "instance_info[0].instances[0].keypoint_scores", "is missing"),
        ({"keypoint_scores": [1] * 17}, "instance_info[0].instances[0].keypoints", "is missing"),
        ({"keypoints": [[0, 0]] * 16 + [[0, "x"]], "keypoint_scores": [1] * 17}, "instance_info[0].instances[0].keypoints", '[16] is [0, "x"]'),
        ({"keypoints": [[0, 0]] * 20, "keypoint_scores": [1] * 20}, "instance_info[0].instances[0].keypoints", "has 20 keypoints"),
        ({"keypoints": [[0, 0]] * 17, "keypoint_scores": [1] * 16}, "instance_info[0].instances[0].keypoint_scores", "has 16 scores"),
        ({**_instance(17, 0), "bbox_score": "high"}, "instance_info[0].instances[0].bbox_score", 'is "high"'),
    ],
)
def test_bad_instances_name_the_file_and_field(tmp_path, instance, field, message):
    path = _write(tmp_path / "bad.json", {"instance_info": _frames([instance])})
    with pytest.raises(DataFormatError) as info:
        read_pose_file(path, fmt="mmpose")
    assert info.value.path == str(path) and info.value.where == f"field '{field}'" and message in info.value.problem


def test_bad_files_are_clear_errors(tmp_path):
    for doc, message in [
        ({"meta_info": {}}, "field 'instance_info': is missing"),
        ([], "holds no frame or instance"),
        ([{"frame_id": 1, "instances": []}, {"frame_id": 1, "instances": []}], "frame 1 is listed twice"),
        ([{"frame_id": "one", "instances": []}], "field '[0].frame_id': is 'one'"),
        (_frames([_instance(17, 0)], [_instance(26, 0)]), "field '[1].instances[0].keypoints': has 26 keypoints (expected 17 like the first"),
        (_frames([], []), "no person is detected in any frame"),
    ]:
        path = _write(tmp_path / "bad.json", doc)
        with pytest.raises(DataFormatError) as info:
            read_pose_file(path, fmt="mmpose")
        assert message in str(info.value) and str(path) in str(info.value)


def test_prepare_round_trip(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, x in (("jump", 10), ("run", 20), ("sit", 30)):
        _write(raw / f"{name}.json", {"meta_info": {}, "instance_info": _frames([_instance(133, x)], [_instance(133, x + 5)])})
    index = tmp_path / "index.csv"
    index.write_text("name,label,subject\njump,jump,1\nrun,run,2\nsit,sit,1\n")
    report = prepare("mmpose", raw, tmp_path / "ds", workers=1, progress=False, index=index, split=["test:subject == 2"])
    store = SkeletonStore(report.out)
    assert store.layout.name == "coco17" and store.classes == ["jump", "run", "sit"] and list(store.labels) == [0, 1, 2]
    assert [store.names[i] for i in store.split("test")] == ["run"]
    [read] = read_pose_file(raw / "sit.json", fmt="mmpose")
    np.testing.assert_array_equal(store.sequence(store.names.index("sit")), read.sequence)
    assert "keypoint box" in store.manifest["source"]["normalisation"]
    assert not store.preprocessing.known  # the clip box cannot be redone on a bare array

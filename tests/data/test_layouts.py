import json
import re

import numpy as np
import pytest

from skelmae.data.layouts import LayoutError, SkeletonLayout, available_layouts, get_layout, load_layout_file

BUILT_IN = ["ntu25", "kinect20", "coco17", "openpose_body25", "openpose_coco18", "mediapipe33", "halpe26"]


def test_builtin_layouts_registered():
    assert set(BUILT_IN) <= set(available_layouts())
    assert [get_layout(n).num_joints for n in BUILT_IN] == [25, 20, 17, 25, 18, 33, 26]


@pytest.mark.parametrize("name", BUILT_IN)
def test_bones_join_valid_joints_and_form_one_tree(name):
    layout = get_layout(name)
    v = layout.num_joints
    bones = layout.bones
    assert all(0 <= c < v and 0 <= p < v and c != p for c, p in bones)
    assert len(bones) == v - 1  # a tree on v nodes has v - 1 edges ...
    reached, frontier = {layout.root}, [layout.root]  # ... and is connected
    children = {j: [c for c, p in bones if p == j] for j in range(v)}
    while frontier:
        j = frontier.pop()
        for c in children[j]:
            assert c not in reached
            reached.add(c)
            frontier.append(c)
    assert reached == set(range(v))


@pytest.mark.parametrize("name", BUILT_IN)
def test_groups_cover_every_joint_exactly_once(name):
    layout = get_layout(name)
    members = sorted(j for js in layout.groups.values() for j in js)
    assert members == list(range(layout.num_joints))
    assert len(layout.groups) == 6  # head, torso, two arms, two legs (graph MAE regions)


@pytest.mark.parametrize("name", BUILT_IN)
def test_adjacency_and_flip(name):
    layout = get_layout(name)
    a = layout.adjacency()
    assert (a == a.T).all() and (np.diag(a) == 1).all()
    assert a.sum() == layout.num_joints + 2 * len(layout.bones)
    perm = layout.flip_permutation()
    assert sorted(perm) == list(range(layout.num_joints))
    assert (perm[perm] == np.arange(layout.num_joints)).all()
    for left, right in layout.left_right:
        assert "left" in layout.joint_names[left] and "right" in layout.joint_names[right]


def test_ntu25_matches_reference_bone_list():
    spec = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10),
            (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
            (22, 23), (23, 8), (24, 25), (25, 12)]
    layout = get_layout("ntu25")
    assert sorted((c + 1, p + 1) for c, p in layout.bones) == sorted(spec)
    assert layout.root == 20 and layout.center == 1


def test_kinect20_and_coco17_anatomy():
    k = get_layout("kinect20")
    assert k.joint_names[0] == "hip_center" and k.joint_names[3] == "head"
    assert k.parents[k.joint_names.index("left_elbow")] == k.joint_names.index("left_shoulder")
    c = get_layout("coco17")
    assert c.parents[c.joint_names.index("left_ankle")] == c.joint_names.index("left_knee")
    assert sorted(len(g) for g in c.groups.values()) == [2, 2, 2, 2, 4, 5]


def test_round_trip_through_dict_and_file(tmp_path):
    layout = get_layout("ntu25")
    assert SkeletonLayout.from_dict(layout.to_dict()) == layout
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(layout.to_dict()))
    assert get_layout(str(path)) == layout


USER_YAML = """
name: upper_body
joints: [neck, head, l_shoulder, l_elbow, r_shoulder, r_elbow]
parents: [null, neck, neck, l_shoulder, neck, r_shoulder]
groups:
  head: [neck, head]
  left_arm: [l_shoulder, l_elbow]
  right_arm: [r_shoulder, r_elbow]
left_right: [[l_shoulder, r_shoulder], [l_elbow, r_elbow]]
center: neck
"""


def test_user_layout_from_yaml(tmp_path):
    path = tmp_path / "upper.yaml"
    path.write_text(USER_YAML)
    layout = load_layout_file(path)
    assert layout.num_joints == 6 and layout.root == 0
    assert layout.bones == [(1, 0), (2, 0), (3, 2), (4, 0), (5, 4)]
    assert list(layout.group_index()) == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.replace("name: upper_body\n", ""), "missing required field 'name'"),
        (lambda s: s.replace("parents: [null,", "parents: [head,"), "exactly one root"),
        (lambda s: s.replace("r_elbow]\nleft_right", "wrist]\nleft_right"), "unknown joint 'wrist'"),
        (lambda s: s.replace("  right_arm: [r_shoulder, r_elbow]\n", ""), "missing ['r_shoulder', 'r_elbow']"),
        (lambda s: s.replace("head: [neck, head]", "head: [neck, head, l_elbow]"), "in several groups ['l_elbow']"),
        (lambda s: s.replace("r_shoulder, r_elbow]\nparents", "r_shoulder, head]\nparents"), "duplicate names"),
        (lambda s: s.replace("null, neck, neck", "null, neck"), "one parent per joint"),
        (lambda s: s + "\n  bad: [", "not valid YAML"),
        (lambda s: s + "shoulders: [l_shoulder, l_shoulder]\n", "'shoulders' must name two different joints"),
        (lambda s: s + "spine: [neck]\n", "field 'spine' must be a pair"),
    ],
)
def test_malformed_user_layout_has_clear_error(tmp_path, edit, message):
    path = tmp_path / "bad.yaml"
    path.write_text(edit(USER_YAML))
    with pytest.raises(LayoutError) as info:
        load_layout_file(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_cycle_is_rejected_naming_its_joints():
    spec = {"name": "c", "joints": ["a", "b", "c"], "parents": [None, "c", "b"], "groups": {"all": ["a", "b", "c"]}}
    with pytest.raises(LayoutError, match="'parents' has a cycle: b -> c -> b"):
        SkeletonLayout.from_dict(spec)
    spec = {"name": "c", "joints": ["r", "a", "b", "c", "d"], "parents": [None, "d", "c", "a", "b"], "groups": {"all": ["r", "a", "b", "c", "d"]}}
    with pytest.raises(LayoutError, match=r"cycle: a -> d -> b -> c -> a$"):  # the cycle alone, not the path into it
        SkeletonLayout.from_dict(spec)


def test_unknown_layout_name():
    with pytest.raises(LayoutError, match="unknown layout 'ntu26'"):
        get_layout("ntu26")


# keypoint orders as the estimators document them (OpenPose doc/02_output.md, MediaPipe's
# PoseLandmark enum, the Halpe-FullBody README), in their own spelling
OFFICIAL_ORDERS = {
    "openpose_body25": "Nose Neck RShoulder RElbow RWrist LShoulder LElbow LWrist MidHip RHip RKnee RAnkle LHip LKnee LAnkle "
                       "REye LEye REar LEar LBigToe LSmallToe LHeel RBigToe RSmallToe RHeel",
    "openpose_coco18": "Nose Neck RShoulder RElbow RWrist LShoulder LElbow LWrist RHip RKnee RAnkle LHip LKnee LAnkle REye LEye REar LEar",
    "halpe26": "Nose LEye REye LEar REar LShoulder RShoulder LElbow RElbow LWrist RWrist LHip RHip LKnee RKnee LAnkle RAnkle "
               "Head Neck Hip LBigToe RBigToe LSmallToe RSmallToe LHeel RHeel",
    "mediapipe33": "NOSE LEFT_EYE_INNER LEFT_EYE LEFT_EYE_OUTER RIGHT_EYE_INNER RIGHT_EYE RIGHT_EYE_OUTER LEFT_EAR RIGHT_EAR "
                   "MOUTH_LEFT MOUTH_RIGHT LEFT_SHOULDER RIGHT_SHOULDER LEFT_ELBOW RIGHT_ELBOW LEFT_WRIST RIGHT_WRIST "
                   "LEFT_PINKY RIGHT_PINKY LEFT_INDEX RIGHT_INDEX LEFT_THUMB RIGHT_THUMB LEFT_HIP RIGHT_HIP LEFT_KNEE "
                   "RIGHT_KNEE LEFT_ANKLE RIGHT_ANKLE LEFT_HEEL RIGHT_HEEL LEFT_FOOT_INDEX RIGHT_FOOT_INDEX",
}


def _spelled(name: str) -> str:
    """An estimator's joint name in this project's spelling: LBigToe -> left_big_toe, Hip -> hip."""
    name = re.sub(r"^L(?=[A-Z])", "Left", re.sub(r"^R(?=[A-Z])", "Right", name)) if not name.isupper() else name
    name = name.replace("MidHip", "Mid_Hip")
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()


@pytest.mark.parametrize("name", sorted(OFFICIAL_ORDERS))
def test_estimator_layouts_follow_the_official_keypoint_order(name):
    assert get_layout(name).joint_names == tuple(_spelled(joint) for joint in OFFICIAL_ORDERS[name].split())


def test_estimator_layouts_anatomy():
    body25, coco18, halpe = get_layout("openpose_body25"), get_layout("openpose_coco18"), get_layout("halpe26")
    for layout in (body25, coco18, halpe):
        names = layout.joint_names
        assert layout.joint_names[layout.root] == "neck"
        assert names[layout.parents[names.index("left_knee")]] == "left_hip"
        assert names[layout.parents[names.index("right_wrist")]] == "right_elbow"
        assert [names[j] for j in layout.shoulders] == ["left_shoulder", "right_shoulder"]
    assert [body25.joint_names[j] for j in body25.spine] == ["mid_hip", "neck"] and body25.joint_names[body25.center] == "mid_hip"
    assert [halpe.joint_names[j] for j in halpe.spine] == ["hip", "neck"] and halpe.joint_names[halpe.center] == "hip"
    assert halpe.joint_names[:17] == get_layout("coco17").joint_names  # Halpe-26 starts with COCO-17
    assert coco18.spine == () and coco18.joint_names[coco18.center] == "neck"
    mediapipe = get_layout("mediapipe33")
    assert mediapipe.joint_names[mediapipe.center] == "left_hip" and len(mediapipe.left_right) == 16
    names = mediapipe.joint_names
    assert names[mediapipe.parents[names.index("left_foot_index")]] == "left_heel"
    assert names[mediapipe.parents[names.index("right_thumb")]] == "right_wrist"

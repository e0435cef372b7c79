"""Skeleton layouts: the single source of truth for joints, bones, body parts and adjacency.

Every other module (transforms, graph models, visualisation, dataset manifests) asks this
module for joint order and topology, so a layout defined once here or in a user file is
used consistently everywhere.

A layout is a rooted tree: each joint has one parent, the root is its own parent (the
NTU convention ``21 -> 21``). Bones are the (child, parent) pairs without the root's
self pair. Body-part groups partition the joints (every joint in exactly one group).
The optional ``spine`` (bottom, top) and ``shoulders`` (left, right) joints define the
body's own axes, which the view-alignment transform turns to face the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skelmae.errors import SkelmaeError

__all__ = [
    "LayoutError",
    "SkeletonLayout",
    "get_layout",
    "load_layout_file",
    "register_layout",
    "available_layouts",
]


class LayoutError(SkelmaeError, ValueError):
    """A layout definition is malformed; the message names the source and the field."""


@dataclass(frozen=True)
class SkeletonLayout:
    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    groups: Mapping[str, tuple[int, ...]]
    left_right: tuple[tuple[int, int], ...] = ()
    center: int = 0
    description: str = ""
    spine: tuple[int, ...] = ()  # (bottom, top) joints of the trunk, for view alignment
    shoulders: tuple[int, ...] = ()  # (left, right) joints, for view alignment
    _source: str = field(default="<built-in>", compare=False, repr=False)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def root(self) -> int:
        return next(j for j, p in enumerate(self.parents) if p == j)

    @property
    def bones(self) -> list[tuple[int, int]]:
        """(child, parent) pairs, 0-based, without the root's self pair."""
        return [(j, p) for j, p in enumerate(self.parents) if p != j]

    def adjacency(self, self_loops: bool = True) -> np.ndarray:
        """Symmetric 0/1 adjacency of the bone graph, shape (V, V)."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for child, parent in self.bones:
            a[child, parent] = a[parent, child] = 1.0
        if self_loops:
            a += np.eye(self.num_joints, dtype=np.float32)
        return a

    def group_index(self) -> np.ndarray:
        """Group id of each joint (order of ``groups``), shape (V,)."""
        index = np.empty(self.num_joints, dtype=np.int64)
        for g, joints in enumerate(self.groups.values()):
            index[list(joints)] = g
        return index

    def flip_permutation(self) -> np.ndarray:
        """Joint permutation that swaps left and right."""
        perm = np.arange(self.num_joints)
        for left, right in self.left_right:
            perm[left], perm[right] = right, left
        return perm

    def to_dict(self) -> dict[str, Any]:
        """Name-based form, the same schema that :func:`load_layout_file` reads."""
        names = self.joint_names
        return {
            "name": self.name,
            "description": self.description,
            "joints": list(names),
            "parents": [None if p == j else names[p] for j, p in enumerate(self.parents)],
            "groups": {g: [names[j] for j in js] for g, js in self.groups.items()},
            "left_right": [[names[a], names[b]] for a, b in self.left_right],
            "center": names[self.center],
            **({"spine": [names[j] for j in self.spine]} if self.spine else {}),
            **({"shoulders": [names[j] for j in self.shoulders]} if self.shoulders else {}),
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], source: str = "<dict>") -> SkeletonLayout:
        """Build a layout from the name-based schema; joints may be named or 0-based indices."""
        if not isinstance(spec, Mapping):
            raise LayoutError(f"{source}: expected a mapping with keys name, joints, parents, groups")
        for key in ("name", "joints", "parents", "groups"):
            if key not in spec:
                raise LayoutError(f"{source}: missing required field '{key}'")
        joints = spec["joints"]
        if not isinstance(joints, Sequence) or isinstance(joints, str) or not joints:
            raise LayoutError(f"{source}: field 'joints' must be a non-empty list of joint names")
        names = tuple(str(j) for j in joints)
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise LayoutError(f"{source}: field 'joints' has duplicate names {dup}")

        def resolve(ref: Any, where: str) -> int:
            if isinstance(ref, bool):
                raise LayoutError(f"{source}: {where}: expected a joint name or index, got {ref!r}")
            if isinstance(ref, int):
                if not 0 <= ref < len(names):
                    raise LayoutError(f"{source}: {where}: index {ref} outside 0..{len(names) - 1}")
                return ref
            if isinstance(ref, str) and ref in names:
                return names.index(ref)
            raise LayoutError(f"{source}: {where}: unknown joint {ref!r}")

        parents_spec = spec["parents"]
        if not isinstance(parents_spec, Sequence) or len(parents_spec) != len(names):
            raise LayoutError(
                f"{source}: field 'parents' must list one parent per joint "
                f"({len(names)} expected, got {len(parents_spec) if isinstance(parents_spec, Sequence) else type(parents_spec).__name__})"
            )
        parents = tuple(
            j if p is None else resolve(p, f"parents[{j}] ({names[j]})")
            for j, p in enumerate(parents_spec)
        )
        groups_spec = spec["groups"]
        if not isinstance(groups_spec, Mapping) or not groups_spec:
            raise LayoutError(f"{source}: field 'groups' must map group names to joint lists")
        groups = {
            str(g): tuple(resolve(j, f"groups.{g}") for j in js) for g, js in groups_spec.items()
        }
        pairs = []
        for k, pair in enumerate(spec.get("left_right", []) or []):
            if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
                raise LayoutError(f"{source}: left_right[{k}] must be a pair of joints")
            pairs.append((resolve(pair[0], f"left_right[{k}]"), resolve(pair[1], f"left_right[{k}]")))
        center = resolve(spec.get("center", 0), "center")
        axes = {}
        for key in ("spine", "shoulders"):
            pair = spec.get(key) or ()
            if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) not in (0, 2):
                raise LayoutError(f"{source}: field '{key}' must be a pair of joints, got {pair!r}")
            axes[key] = tuple(resolve(j, f"{key}[{k}]") for k, j in enumerate(pair))
        return cls(
            name=str(spec["name"]),
            joint_names=names,
            parents=parents,
            groups=groups,
            left_right=tuple(pairs),
            center=center,
            description=str(spec.get("description", "")),
            **axes,
            _source=source,
        )


def _validate(layout: SkeletonLayout) -> None:
    src = layout._source
    v = len(layout.joint_names)
    if len(layout.parents) != v:
        raise LayoutError(f"{src}: 'parents' has {len(layout.parents)} entries for {v} joints")
    for j, p in enumerate(layout.parents):
        if not 0 <= p < v:
            raise LayoutError(f"{src}: parents[{j}] = {p} is not a joint index (0..{v - 1})")
    roots = [j for j, p in enumerate(layout.parents) if p == j]
    if len(roots) != 1:
        raise LayoutError(
            f"{src}: 'parents' must have exactly one root (a joint that is its own parent, or null); "
            f"found {len(roots)}: {[layout.joint_names[r] for r in roots]}"
        )
    for j in range(v):  # every joint must reach the root without a cycle
        path, k = [], j
        while layout.parents[k] != k:
            if k in path:
                cycle = path[path.index(k):] + [k]
                raise LayoutError(f"{src}: 'parents' has a cycle: {' -> '.join(layout.joint_names[c] for c in cycle)}")
            path.append(k)
            k = layout.parents[k]
    covered = [j for js in layout.groups.values() for j in js]
    missing = sorted(set(range(v)) - set(covered))
    doubled = sorted({j for j in covered if covered.count(j) > 1})
    if missing or doubled:
        raise LayoutError(
            f"{src}: 'groups' must cover every joint exactly once; "
            f"missing {[layout.joint_names[j] for j in missing]}, "
            f"in several groups {[layout.joint_names[j] for j in doubled]}"
        )
    if any(len(js) == 0 for js in layout.groups.values()):
        raise LayoutError(f"{src}: 'groups' has an empty group")
    for a, b in layout.left_right:
        if a == b:
            raise LayoutError(f"{src}: left_right pairs a joint with itself: {layout.joint_names[a]!r}")
    if not 0 <= layout.center < v:
        raise LayoutError(f"{src}: 'center' {layout.center} is not a joint index")
    for key in ("spine", "shoulders"):
        pair = getattr(layout, key)
        if pair and (len(pair) != 2 or pair[0] == pair[1] or not all(0 <= j < v for j in pair)):
            raise LayoutError(f"{src}: '{key}' must name two different joints, got {list(pair)}")


def _from_one_based_bones(
    name: str,
    joint_names: Sequence[str],
    bones_1based: Sequence[tuple[int, int]],
    groups_1based: Mapping[str, Sequence[int]],
    left_right_1based: Sequence[tuple[int, int]],
    center_1based: int,
    description: str,
    spine_1based: tuple[int, int] | tuple[()] = (),
    shoulders_1based: tuple[int, int] | tuple[()] = (),
) -> SkeletonLayout:
    parents = list(range(len(joint_names)))
    for child, parent in bones_1based:
        parents[child - 1] = parent - 1
    return SkeletonLayout(
        name=name,
        joint_names=tuple(joint_names),
        parents=tuple(parents),
        groups={g: tuple(j - 1 for j in js) for g, js in groups_1based.items()},
        left_right=tuple((a - 1, b - 1) for a, b in left_right_1based),
        center=center_1based - 1,
        description=description,
        spine=tuple(j - 1 for j in spine_1based),
        shoulders=tuple(j - 1 for j in shoulders_1based),
    )


NTU25 = _from_one_based_bones(
    "ntu25",
    [
        "spine_base", "spine_mid", "neck", "head",
        "left_shoulder", "left_elbow", "left_wrist", "left_hand",
        "right_shoulder", "right_elbow", "right_wrist", "right_hand",
        "left_hip", "left_knee", "left_ankle", "left_foot",
        "right_hip", "right_knee", "right_ankle", "right_foot",
        "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",
    ],
    [
        (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
        (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
        (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
    ],
    {
        "head": (3, 4),
        "torso": (1, 2, 21),
        "left_arm": (5, 6, 7, 8, 22, 23),
        "right_arm": (9, 10, 11, 12, 24, 25),
        "left_leg": (13, 14, 15, 16),
        "right_leg": (17, 18, 19, 20),
    },
    [(5, 9), (6, 10), (7, 11), (8, 12), (13, 17), (14, 18), (15, 19), (16, 20), (22, 24), (23, 25)],
    2,
    "Kinect v2, 25 joints (NTU RGB+D, PKU-MMD); root spine_shoulder, centre spine_mid.",
    spine_1based=(1, 21),
    shoulders_1based=(5, 9),
)

KINECT20 = _from_one_based_bones(
    "kinect20",
    [
        "hip_center", "spine", "shoulder_center", "head",
        "left_shoulder", "left_elbow", "left_wrist", "left_hand",
        "right_shoulder", "right_elbow", "right_wrist", "right_hand",
        "left_hip", "left_knee", "left_ankle", "left_foot",
        "right_hip", "right_knee", "right_ankle", "right_foot",
    ],
    [
        (1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10),
        (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
    ],
    {
        "head": (3, 4),
        "torso": (1, 2),
        "left_arm": (5, 6, 7, 8),
        "right_arm": (9, 10, 11, 12),
        "left_leg": (13, 14, 15, 16),
        "right_leg": (17, 18, 19, 20),
    },
    [(5, 9), (6, 10), (7, 11), (8, 12), (13, 17), (14, 18), (15, 19), (16, 20)],
    2,
    "Kinect v1 SDK, 20 joints (NW-UCLA, UTKinect); root shoulder_center.",
    spine_1based=(1, 3),
    shoulders_1based=(5, 9),
)

COCO17 = _from_one_based_bones(
    "coco17",
    [
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ],
    [
        (2, 1), (3, 1), (4, 2), (5, 3), (6, 1), (7, 1), (8, 6), (9, 7), (10, 8), (11, 9),
        (12, 6), (13, 7), (14, 12), (15, 13), (16, 14), (17, 15),
    ],
    {
        "head": (1, 2, 3, 4, 5),
        "torso": (6, 7, 12, 13),
        "left_arm": (8, 10),
        "right_arm": (9, 11),
        "left_leg": (14, 16),
        "right_leg": (15, 17),
    },
    [(2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13), (14, 15), (16, 17)],
    1,
    "COCO-17 keypoints of 2D pose estimators (PYSKL pickles: FineGym, Diving48, NTU-2D); root nose.",
)



def _from_named_joints(
    name: str,
    joints: Sequence[tuple[str, str | None]],
    groups: Mapping[str, Sequence[str]],
    left_right: Sequence[tuple[str, str]],
    center: str,
    description: str,
    spine: tuple[str, str] | tuple[()] = (),
    shoulders: tuple[str, str] | tuple[()] = (),
) -> SkeletonLayout:
    """A built-in layout from (joint, parent) pairs in the estimator's keypoint order (the root's
    parent is None): naming every joint keeps a long list checkable against its official order."""
    spec = {
        "name": name, "description": description,
        "joints": [joint for joint, _ in joints], "parents": [parent for _, parent in joints],
        "groups": groups, "left_right": left_right, "center": center, "spine": spine, "shoulders": shoulders,
    }
    return SkeletonLayout.from_dict(spec, source="<built-in>")


def _left_right_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """(left_X, right_X) for every X the joint names hold on both sides."""
    return [(joint, joint.replace("left", "right")) for joint in names if "left" in joint and joint.replace("left", "right") in names]


# OpenPose BODY_25 (doc/02_output.md, "Pose Output Format (BODY_25)"); bones are its limb pairs
_BODY25_JOINTS = [
    ("nose", "neck"), ("neck", None),
    ("right_shoulder", "neck"), ("right_elbow", "right_shoulder"), ("right_wrist", "right_elbow"),
    ("left_shoulder", "neck"), ("left_elbow", "left_shoulder"), ("left_wrist", "left_elbow"),
    ("mid_hip", "neck"),
    ("right_hip", "mid_hip"), ("right_knee", "right_hip"), ("right_ankle", "right_knee"),
    ("left_hip", "mid_hip"), ("left_knee", "left_hip"), ("left_ankle", "left_knee"),
    ("right_eye", "nose"), ("left_eye", "nose"), ("right_ear", "right_eye"), ("left_ear", "left_eye"),
    ("left_big_toe", "left_ankle"), ("left_small_toe", "left_big_toe"), ("left_heel", "left_ankle"),
    ("right_big_toe", "right_ankle"), ("right_small_toe", "right_big_toe"), ("right_heel", "right_ankle"),
]
OPENPOSE_BODY25 = _from_named_joints(
    "openpose_body25",
    _BODY25_JOINTS,
    {
        "head": ("nose", "right_eye", "left_eye", "right_ear", "left_ear"),
        "torso": ("neck", "mid_hip", "right_shoulder", "left_shoulder", "right_hip", "left_hip"),
        "left_arm": ("left_elbow", "left_wrist"),
        "right_arm": ("right_elbow", "right_wrist"),
        "left_leg": ("left_knee", "left_ankle", "left_big_toe", "left_small_toe", "left_heel"),
        "right_leg": ("right_knee", "right_ankle", "right_big_toe", "right_small_toe", "right_heel"),
    },
    _left_right_pairs([joint for joint, _ in _BODY25_JOINTS]),
    "mid_hip",
    "OpenPose BODY_25: COCO-18 with mid-hip and six foot keypoints; root neck, centre mid_hip.",
    spine=("mid_hip", "neck"),
    shoulders=("left_shoulder", "right_shoulder"),
)

# OpenPose COCO (doc/02_output.md, "Pose Output Format (COCO)"): COCO-17 reordered, plus the neck
_COCO18_JOINTS = [
    ("nose", "neck"), ("neck", None),
    ("right_shoulder", "neck"), ("right_elbow", "right_shoulder"), ("right_wrist", "right_elbow"),
    ("left_shoulder", "neck"), ("left_elbow", "left_shoulder"), ("left_wrist", "left_elbow"),
    ("right_hip", "neck"), ("right_knee", "right_hip"), ("right_ankle", "right_knee"),
    ("left_hip", "neck"), ("left_knee", "left_hip"), ("left_ankle", "left_knee"),
    ("right_eye", "nose"), ("left_eye", "nose"), ("right_ear", "right_eye"), ("left_ear", "left_eye"),
]
OPENPOSE_COCO18 = _from_named_joints(
    "openpose_coco18",
    _COCO18_JOINTS,
    {
        "head": ("nose", "right_eye", "left_eye", "right_ear", "left_ear"),
        "torso": ("neck", "right_shoulder", "left_shoulder", "right_hip", "left_hip"),
        "left_arm": ("left_elbow", "left_wrist"),
        "right_arm": ("right_elbow", "right_wrist"),
        "left_leg": ("left_knee", "left_ankle"),
        "right_leg": ("right_knee", "right_ankle"),
    },
    _left_right_pairs([joint for joint, _ in _COCO18_JOINTS]),
    "neck",
    "OpenPose COCO-18 (COCO-17 with a neck, OpenPose order); root and centre neck.",
    shoulders=("left_shoulder", "right_shoulder"),
)

# MediaPipe Pose landmarks (Pose Landmarker model card, PoseLandmark enum); the face and the
# foot triangles of its drawing connections are broken into a tree rooted at the nose
_MEDIAPIPE33_JOINTS = [
    ("nose", None),
    ("left_eye_inner", "nose"), ("left_eye", "left_eye_inner"), ("left_eye_outer", "left_eye"),
    ("right_eye_inner", "nose"), ("right_eye", "right_eye_inner"), ("right_eye_outer", "right_eye"),
    ("left_ear", "left_eye_outer"), ("right_ear", "right_eye_outer"),
    ("mouth_left", "nose"), ("mouth_right", "nose"),
    ("left_shoulder", "nose"), ("right_shoulder", "nose"),
    ("left_elbow", "left_shoulder"), ("right_elbow", "right_shoulder"),
    ("left_wrist", "left_elbow"), ("right_wrist", "right_elbow"),
    ("left_pinky", "left_wrist"), ("right_pinky", "right_wrist"),
    ("left_index", "left_wrist"), ("right_index", "right_wrist"),
    ("left_thumb", "left_wrist"), ("right_thumb", "right_wrist"),
    ("left_hip", "left_shoulder"), ("right_hip", "right_shoulder"),
    ("left_knee", "left_hip"), ("right_knee", "right_hip"),
    ("left_ankle", "left_knee"), ("right_ankle", "right_knee"),
    ("left_heel", "left_ankle"), ("right_heel", "right_ankle"),
    ("left_foot_index", "left_heel"), ("right_foot_index", "right_heel"),
]
MEDIAPIPE33 = _from_named_joints(
    "mediapipe33",
    _MEDIAPIPE33_JOINTS,
    {
        "head": tuple(joint for joint, _ in _MEDIAPIPE33_JOINTS[:11]),
        "torso": ("left_shoulder", "right_shoulder", "left_hip", "right_hip"),
        "left_arm": ("left_elbow", "left_wrist", "left_pinky", "left_index", "left_thumb"),
        "right_arm": ("right_elbow", "right_wrist", "right_pinky", "right_index", "right_thumb"),
        "left_leg": ("left_knee", "left_ankle", "left_heel", "left_foot_index"),
        "right_leg": ("right_knee", "right_ankle", "right_heel", "right_foot_index"),
    },
    _left_right_pairs([joint for joint, _ in _MEDIAPIPE33_JOINTS]),
    "left_hip",
    "MediaPipe Pose, 33 landmarks; root nose, centre left_hip (no mid-hip landmark: MediaPipe's own "
    "world origin is the hips' midpoint). The spine axis runs up the left side (hip -> shoulder).",
    spine=("left_hip", "left_shoulder"),
    shoulders=("left_shoulder", "right_shoulder"),
)

# Halpe-26 body keypoints (Halpe-FullBody README, AlphaPose's halpe_26 models); bones are
# AlphaPose's drawing pairs, with the nose, which they leave unconnected, under the neck
_HALPE26_JOINTS = [
    ("nose", "neck"), ("left_eye", "nose"), ("right_eye", "nose"), ("left_ear", "left_eye"), ("right_ear", "right_eye"),
    ("left_shoulder", "neck"), ("right_shoulder", "neck"),
    ("left_elbow", "left_shoulder"), ("right_elbow", "right_shoulder"),
    ("left_wrist", "left_elbow"), ("right_wrist", "right_elbow"),
    ("left_hip", "hip"), ("right_hip", "hip"),
    ("left_knee", "left_hip"), ("right_knee", "right_hip"),
    ("left_ankle", "left_knee"), ("right_ankle", "right_knee"),
    ("head", "neck"), ("neck", None), ("hip", "neck"),
    ("left_big_toe", "left_heel"), ("right_big_toe", "right_heel"),
    ("left_small_toe", "left_heel"), ("right_small_toe", "right_heel"),
    ("left_heel", "left_ankle"), ("right_heel", "right_ankle"),
]
HALPE26 = _from_named_joints(
    "halpe26",
    _HALPE26_JOINTS,
    {
        "head": ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "head"),
        "torso": ("neck", "hip", "left_shoulder", "right_shoulder", "left_hip", "right_hip"),
        "left_arm": ("left_elbow", "left_wrist"),
        "right_arm": ("right_elbow", "right_wrist"),
        "left_leg": ("left_knee", "left_ankle", "left_big_toe", "left_small_toe", "left_heel"),
        "right_leg": ("right_knee", "right_ankle", "right_big_toe", "right_small_toe", "right_heel"),
    },
    _left_right_pairs([joint for joint, _ in _HALPE26_JOINTS]),
    "hip",
    "Halpe-26 (AlphaPose): COCO-17 plus head, neck, hip and six foot keypoints; root neck, centre hip.",
    spine=("hip", "neck"),
    shoulders=("left_shoulder", "right_shoulder"),
)

_REGISTRY: dict[str, SkeletonLayout] = {}


def register_layout(layout: SkeletonLayout) -> SkeletonLayout:
    """Make a layout available by name to :func:`get_layout` (and so to configs and manifests)."""
    _REGISTRY[layout.name] = layout
    return layout


for _layout in (NTU25, KINECT20, COCO17, OPENPOSE_BODY25, OPENPOSE_COCO18, MEDIAPIPE33, HALPE26):
    register_layout(_layout)


def available_layouts() -> list[str]:
    return sorted(_REGISTRY)


def load_layout_file(path: str | Path) -> SkeletonLayout:
    """Read a user layout from YAML or JSON (schema: see :meth:`SkeletonLayout.to_dict`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LayoutError(f"{path}: cannot read layout file ({exc.strerror})") from exc
    try:
        if path.suffix.lower() == ".json":
            spec = json.loads(text)
        else:
            import yaml

            spec = yaml.safe_load(text)
    except (json.JSONDecodeError, ValueError) as exc:
        raise LayoutError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'YAML'}: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError has no stable base outside the yaml package
        raise LayoutError(f"{path}: not valid YAML: {exc}") from exc
    return SkeletonLayout.from_dict(spec, source=str(path))


def get_layout(name_or_spec: str | Path | Mapping[str, Any] | SkeletonLayout) -> SkeletonLayout:
    """A layout by registered name, by YAML/JSON file path, or from a dict (as in manifests)."""
    if isinstance(name_or_spec, SkeletonLayout):
        return name_or_spec
    if isinstance(name_or_spec, Mapping):
        return SkeletonLayout.from_dict(name_or_spec)
    key = str(name_or_spec)
    if key in _REGISTRY:
        return _REGISTRY[key]
    if Path(key).suffix.lower() in {".yaml", ".yml", ".json"}:
        return load_layout_file(key)
    raise LayoutError(
        f"unknown layout {key!r}: expected one of {available_layouts()} or a .yaml/.json layout file"
    )

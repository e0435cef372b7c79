"""Procedural skeleton actions: the embedded default dataset (no download needed).

Sequences come from forward kinematics on the ``ntu25`` layout with joint-angle curves.
Actions are built from primitive movements (raise a hand, wave, clap, bow, kick, sit,
walk) and come in pairs that do the same movements in a different order ("raise right
then left hand" / "raise left then right hand", "meet then part" / "part then meet", ...).
A pair has the same single-frame poses *and* the same local motions; only the order
tells them apart, so neither a static frame nor a bag of short snippets is enough and a
model has to relate what happens early to what happens late.

Variation: per-subject bone lengths, class-independent posture and fidgeting
(``nuisance``), idle time before and after the action, speed warping, amplitude,
sequence length, per-sample view rotation and sensor noise. Subjects are split
disjointly into train and test; everything is a pure function of the seed.

Coordinates follow the Kinect camera convention (metres, y up, persons facing the
camera along -z) and are centred like the NTU pipeline: joint ``spine_mid`` of person 1
in the first frame is the origin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skelmae.data.layouts import get_layout
from skelmae.data.preprocessing import Preprocessing
from skelmae.data.storage import DatasetWriter

__all__ = ["SynthConfig", "CLASSES", "generate", "write_synthetic", "source_config"]

GENERATOR_VERSION = 2  # bump when the generated data changes, so caches are rebuilt

LAYOUT = get_layout("ntu25")
_J = {name: i for i, name in enumerate(LAYOUT.joint_names)}
_DEG = np.pi / 180


@dataclass
class SynthConfig:
    seed: int = 0
    subjects: int = 40
    test_subjects: int = 12
    repetitions: int = 4
    min_frames: int = 40
    max_frames: int = 100
    max_view_yaw: float = 45.0
    max_view_pitch: float = 10.0
    noise: tuple[float, float] = (0.004, 0.012)
    nuisance: float = 1.0  # scale of class-independent posture and fidgeting (0 = none)


# FK tree: the layout's bone tree re-rooted at the pelvis, with rest offsets (metres, body
# frame: x = the person's left, y = up, -z = front).
_REST = {
    "spine_mid": (0, 0.26, 0), "spine_shoulder": (0, 0.22, 0), "neck": (0, 0.07, 0),
    "head": (0, 0.11, -0.03),
    "left_shoulder": (0.17, -0.02, 0), "left_elbow": (0, -0.28, 0), "left_wrist": (0, -0.25, 0),
    "left_hand": (0, -0.07, 0), "left_thumb": (0.02, -0.03, -0.03), "left_hand_tip": (-0.02, -0.05, 0.03),
    "left_hip": (0.09, -0.05, 0), "left_knee": (0, -0.42, 0), "left_ankle": (0, -0.40, 0),
    "left_foot": (0, -0.05, -0.11),
}
for _name, (_x, _y, _z) in list(_REST.items()):
    if _name.startswith("left_"):
        _REST["right_" + _name[5:]] = (-_x, _y, _z)


def _fk_tree() -> tuple[list[int], np.ndarray, np.ndarray]:
    root = _J["spine_base"]
    neighbours: dict[int, list[int]] = {j: [] for j in range(LAYOUT.num_joints)}
    for child, parent in LAYOUT.bones:
        neighbours[child].append(parent)
        neighbours[parent].append(child)
    order, parent = [root], np.full(LAYOUT.num_joints, -1)
    for j in order:  # breadth-first; ``order`` grows while iterating
        for k in neighbours[j]:
            if k != root and parent[k] < 0:
                parent[k] = j
                order.append(k)
    offsets = np.zeros((LAYOUT.num_joints, 3))
    for name, off in _REST.items():
        offsets[_J[name]] = off
    return order, parent, offsets


_ORDER, _PARENT, _OFFSETS = _fk_tree()
_LIMB = {  # bone-length groups that a subject's proportions scale together
    "arm": ["elbow", "wrist", "hand", "thumb", "hand_tip"],
    "leg": ["knee", "ankle", "foot"],
    "trunk": ["spine_mid", "spine_shoulder", "neck", "head", "shoulder", "hip"],
}


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    r = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r[..., axis, axis] = 1
    r[..., i, i], r[..., i, j], r[..., j, i], r[..., j, j] = c, -s, s, c
    return r


def _ease(s: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(s, 0, 1))


def _window(s: np.ndarray, a: float, b: float) -> np.ndarray:
    """0 before a, rises to 1 over [a, b]."""
    return _ease((s - a) / (b - a))


class _Body:
    """One person's joint-angle curves over T frames, then forward kinematics."""

    def __init__(self, frames: int):
        self.local = np.broadcast_to(np.eye(3), (LAYOUT.num_joints, frames, 3, 3)).copy()
        self.root_pos = np.zeros((frames, 3))
        self.yaw = np.zeros(frames)
        self.grounded = True

    def turn(self, joint: str, axis: int, angle: np.ndarray) -> None:
        j = _J[joint]
        self.local[j] = self.local[j] @ _rot(axis, np.broadcast_to(angle, self.yaw.shape))

    def flex(self, joint: str, angle: np.ndarray) -> None:  # sagittal plane, + = forward
        self.turn(joint, 0, angle)

    def abduct(self, side: str, joint: str, angle: np.ndarray) -> None:  # + = away from body
        self.turn(f"{side}_{joint}", 2, angle if side == "left" else -angle)

    def joints(self, scale: np.ndarray) -> np.ndarray:
        frames = self.yaw.shape[0]
        glob = np.zeros((LAYOUT.num_joints, frames, 3, 3))
        pos = np.zeros((LAYOUT.num_joints, frames, 3))
        root = _ORDER[0]
        glob[root] = _rot(1, self.yaw) @ self.local[root]
        pos[root] = self.root_pos + np.array([0, 0.95 * scale[root], 0])
        for j in _ORDER[1:]:
            p = _PARENT[j]
            pos[j] = pos[p] + glob[p] @ (_OFFSETS[j] * scale[j])
            glob[j] = glob[p] @ self.local[j]
        out = pos.transpose(1, 0, 2)
        if self.grounded:  # feet stay on the floor (y = 0)
            out[..., 1] -= out[:, [_J["left_foot"], _J["right_foot"], _J["left_ankle"], _J["right_ankle"]], 1].min(1, keepdims=True)
        return out


def _hump(s: np.ndarray) -> np.ndarray:
    """0 -> 1 -> 0 with eased ends; symmetric, so going and coming back take equal time."""
    return np.where(s < 0.5, _ease(2 * s), _ease(2 - 2 * s))


def _plateau(s: np.ndarray) -> np.ndarray:
    """Rise over the first fifth, hold, fall over the last fifth."""
    return _window(s, 0.0, 0.2) * (1 - _window(s, 0.8, 1.0))


# Primitives move bodies away from and back to their neutral pose over s in [0, 1], so any
# two can follow each other. Rotations compose, so a primitive at s = 0 or 1 is a no-op.
Primitive = Callable[[list[_Body], np.ndarray, float], None]


def _raise_hand(side: str) -> Primitive:
    def prim(bodies: list[_Body], s: np.ndarray, a: float) -> None:
        bodies[0].flex(f"{side}_shoulder", 150 * _DEG * a * _hump(s))
        bodies[0].flex(f"{side}_elbow", 25 * _DEG * np.sin(np.pi * s))

    return prim


def _raise_both(bodies: list[_Body], s: np.ndarray, a: float) -> None:
    for side in ("left", "right"):
        bodies[0].abduct(side, "shoulder", 160 * _DEG * a * _hump(s))


def _wave(bodies: list[_Body], s: np.ndarray, a: float) -> None:
    hold = _plateau(s)
    bodies[0].abduct("right", "shoulder", 150 * _DEG * hold)
    bodies[0].abduct("right", "elbow", (30 + 35 * a * np.sin(2 * np.pi * 3 * s)) * _DEG * hold)


def _clap(bodies: list[_Body], s: np.ndarray, a: float) -> None:
    hold = _plateau(s)
    apart = (8 + 35 * a * (0.5 + 0.5 * np.cos(2 * np.pi * 3 * s))) * _DEG * hold
    for side in ("left", "right"):
        bodies[0].flex(f"{side}_shoulder", 80 * _DEG * hold)
        bodies[0].abduct(side, "shoulder", apart)
        bodies[0].abduct(side, "elbow", -20 * _DEG * hold)


def _bow(bodies: list[_Body], s: np.ndarray, a: float) -> None:
    bodies[0].flex("spine_mid", -70 * _DEG * a * _hump(s))
    bodies[0].flex("neck", -15 * _DEG * _hump(s))


def _kick(side: str) -> Primitive:
    def prim(bodies: list[_Body], s: np.ndarray, a: float) -> None:
        bodies[0].flex(f"{side}_hip", 75 * _DEG * a * _hump(s))
        bodies[0].flex(f"{side}_knee", -50 * _DEG * np.sin(np.pi * s) ** 2 * (1 - _hump(s)))

    return prim


def _sit(level: Callable[[np.ndarray], np.ndarray]) -> Primitive:
    """Posture between standing (level 0) and sitting (level 1)."""

    def prim(bodies: list[_Body], s: np.ndarray, a: float) -> None:
        lv = level(s)
        for side in ("left", "right"):
            bodies[0].flex(f"{side}_hip", 85 * _DEG * a * lv)
            bodies[0].flex(f"{side}_knee", -95 * _DEG * a * lv)
            bodies[0].flex(f"{side}_shoulder", 20 * _DEG * lv)
        bodies[0].flex("spine_mid", -20 * _DEG * np.sin(np.pi * _hump(s)) - 10 * _DEG * lv)

    return prim


def _gait(body: _Body, s: np.ndarray, steps: float) -> None:
    phase = 2 * np.pi * steps * s
    for side, shift in (("left", 0), ("right", np.pi)):
        swing = np.sin(phase + shift)
        body.flex(f"{side}_hip", 25 * _DEG * swing)
        body.flex(f"{side}_knee", -35 * _DEG * np.clip(np.sin(phase + shift + np.pi / 2), 0, None))
        body.flex(f"{side}_shoulder", -20 * _DEG * swing)


def _handshake(bodies: list[_Body], s: np.ndarray, a: float) -> None:
    reach = _plateau(s)
    shake = 10 * _DEG * a * np.sin(2 * np.pi * 3 * s)
    for body in bodies:
        body.flex("right_shoulder", (50 * _DEG + shake) * reach)
        body.flex("right_elbow", 40 * _DEG * reach)


def _push(bodies: list[_Body], s: np.ndarray, a: float) -> None:
    thrust = _window(s, 0.25, 0.45) * (1 - _window(s, 0.7, 0.9))
    for side in ("left", "right"):
        bodies[0].flex(f"{side}_shoulder", 85 * _DEG * thrust)
        bodies[0].flex(f"{side}_elbow", 60 * _DEG * (1 - thrust) * thrust * 4)
    bodies[1].flex("spine_mid", 15 * _DEG * _window(s, 0.4, 0.6) * (1 - _window(s, 0.75, 1.0)))


def _then(first: Primitive, second: Primitive) -> Primitive:
    """``first`` over the first half of the action, ``second`` over the second half."""

    def prim(bodies: list[_Body], s: np.ndarray, a: float) -> None:
        first(bodies, np.clip(2 * s, 0, 1), a)
        second(bodies, np.clip(2 * s - 1, 0, 1), a)

    return prim


# Two-person actions: (distance profile, gait steps, primitive on the pair).
_DISTANCE = {
    "meet then part": (lambda s, a: 2.4 - 1.5 * a * _hump(s), 4.0, None),
    "part then meet": (lambda s, a: 0.9 + 1.5 * a * _hump(s), 4.0, None),
    "shake hands": (lambda s, a: np.full_like(s, 0.75), 0.0, _handshake),
    "push": (lambda s, a: 0.7 + 0.5 * a * _window(s, 0.4, 0.6), 0.0, _push),
}
_ONE_PERSON: dict[str, Primitive] = {
    "raise right then left hand": _then(_raise_hand("right"), _raise_hand("left")),
    "raise left then right hand": _then(_raise_hand("left"), _raise_hand("right")),
    "sit down then stand up": _sit(_hump),
    "stand up then sit down": _sit(lambda s: 1 - _hump(s)),
    "wave then clap": _then(_wave, _clap),
    "clap then wave": _then(_clap, _wave),
    "bow then cheer": _then(_bow, _raise_both),
    "cheer then bow": _then(_raise_both, _bow),
    "kick right then left": _then(_kick("right"), _kick("left")),
    "kick left then right": _then(_kick("left"), _kick("right")),
}
CLASSES = list(_ONE_PERSON) + list(_DISTANCE)
TWO_PERSON = {CLASSES.index(c) for c in _DISTANCE}


def _pair(distance: np.ndarray) -> list[_Body]:
    """Two persons facing each other along z, ``distance`` apart (metres)."""
    a, b = _Body(len(distance)), _Body(len(distance))
    a.root_pos[:, 2] = -(distance[0] - distance) / 2
    b.root_pos[:, 2] = a.root_pos[:, 2] - distance
    b.yaw[:] = np.pi
    return [a, b]


def _act(label: int, s: np.ndarray, a: float) -> list[_Body]:
    name = CLASSES[label]
    if name in _ONE_PERSON:
        bodies = [_Body(len(s))]
        _ONE_PERSON[name](bodies, s, a)
        return bodies
    distance, steps, prim = _DISTANCE[name]
    bodies = _pair(distance(s, a))
    for body in bodies:
        if steps:
            _gait(body, s, steps)
    if prim is not None:
        prim(bodies, s, a)
    return bodies


_FIDGET_JOINTS = [  # (joint, axis): where class-independent posture and motion are added
    ("spine_mid", 0), ("spine_mid", 2), ("neck", 0), ("neck", 1),
    ("left_shoulder", 0), ("left_shoulder", 2), ("right_shoulder", 0), ("right_shoulder", 2),
    ("left_elbow", 0), ("right_elbow", 0), ("left_hip", 0), ("right_hip", 0), ("left_knee", 0), ("right_knee", 0),
]


def _fidget(body: _Body, u: np.ndarray, scale: float, rng: np.random.Generator) -> None:
    """Per-sample posture offsets and slow random joint motion that carry no class information."""
    for joint, axis in _FIDGET_JOINTS:
        static = rng.normal(0, 8 * _DEG * scale)
        freq = rng.uniform(0.3, 2.0, size=2)
        amp = rng.uniform(0, 15 * _DEG * scale, size=2)
        phase = rng.uniform(0, 2 * np.pi, size=2)
        moving = (amp[:, None] * np.sin(2 * np.pi * freq[:, None] * u + phase[:, None])).sum(0)
        if "knee" in joint:  # knees only bend backwards
            static, moving = -abs(static), -np.abs(moving)
        body.turn(joint, axis, static + moving)


def _subject_scales(seed: int, subject: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 1, subject])
    height = rng.uniform(0.88, 1.12)
    scale = np.full(LAYOUT.num_joints, height)
    for suffixes in _LIMB.values():
        factor = rng.uniform(0.94, 1.06)
        for j, name in enumerate(LAYOUT.joint_names):
            if any(name == sfx or name.endswith("_" + sfx) for sfx in suffixes):
                scale[j] *= factor
    return scale


def _sample(cfg: SynthConfig, label: int, subject: int, partner: int, rep: int) -> np.ndarray:
    rng = np.random.default_rng([cfg.seed, 2, label, subject, rep])
    frames = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    u = np.linspace(0, 1, frames)
    onset, end = rng.uniform(0, 0.15), rng.uniform(0.85, 1.0)  # idle before and after the action
    s = np.clip((u - onset) / (end - onset), 0, 1) ** rng.uniform(0.8, 1.25)  # with a speed warp
    amplitude = rng.uniform(0.8, 1.15)
    bodies = _act(label, s, amplitude)
    seq = np.zeros((frames, 2, LAYOUT.num_joints, 3))
    for m, (body, who) in enumerate(zip(bodies, (subject, partner))):
        body.root_pos[:, 0] += 0.01 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * u + rng.uniform(0, 6.3))
        if cfg.nuisance > 0:
            _fidget(body, u, cfg.nuisance, rng)
        seq[:, m] = body.joints(_subject_scales(cfg.seed, who))
    present = len(bodies)
    view = _rot(1, np.array(rng.uniform(-1, 1) * cfg.max_view_yaw * _DEG)) @ _rot(
        0, np.array(rng.uniform(-1, 1) * cfg.max_view_pitch * _DEG)
    )
    seq[:, :present] = seq[:, :present] @ view.T
    seq[:, :present] += rng.normal(0, rng.uniform(*cfg.noise), size=seq[:, :present].shape)
    seq[:, :present] -= seq[0, 0, _J["spine_mid"]]
    return seq.astype(np.float32)


def generate(cfg: SynthConfig) -> Iterator[tuple[np.ndarray, int, str, dict[str, int]]]:
    """Yields (sequence (T, 2, 25, 3), label, name, meta) for every subject, class and repetition."""
    for subject in range(cfg.subjects):
        is_test = subject >= cfg.subjects - cfg.test_subjects
        pool = (
            range(cfg.subjects - cfg.test_subjects, cfg.subjects) if is_test else range(cfg.subjects - cfg.test_subjects)
        )
        for label in range(len(CLASSES)):
            for rep in range(cfg.repetitions):
                rng = np.random.default_rng([cfg.seed, 3, label, subject, rep])
                partner = int(rng.choice([p for p in pool if p != subject]))
                seq = _sample(cfg, label, subject, partner, rep)
                yield seq, label, f"S{subject:03d}A{label:03d}R{rep:02d}", {
                    "subject": subject,
                    "replication": rep,
                    "split_test": int(is_test),
                }


def source_config(cfg: SynthConfig) -> dict:
    """What the manifest records about the generator: equal records mean equal data."""
    return {**cfg.__dict__, "noise": list(cfg.noise), "version": GENERATOR_VERSION}


def write_synthetic(out_dir: str | Path, cfg: SynthConfig | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """Generate the dataset into a canonical folder with subject-disjoint ``train``/``test`` splits."""
    from tqdm import tqdm

    cfg = cfg or SynthConfig()
    if cfg.subjects - cfg.test_subjects < 2 or cfg.test_subjects < 2:
        raise ValueError("need at least 2 train and 2 test subjects (two-person classes need a partner)")
    total = cfg.subjects * len(CLASSES) * cfg.repetitions
    train, test = [], []
    with DatasetWriter(
        out_dir, layout=LAYOUT, channels=["x", "y", "z"], num_persons=2, classes=CLASSES,
        name="synthetic", overwrite=overwrite, preprocessing=Preprocessing.centred(get_layout(LAYOUT)),
        source={"generator": "skelmae.data.synthetic", "config": source_config(cfg)},
    ) as writer:
        for seq, label, name, meta in tqdm(generate(cfg), total=total, desc="synthesising", disable=not progress):
            index = writer.add(seq, label, name, meta)
            (test if meta["split_test"] else train).append(index)
        writer.add_split("train", train)
        writer.add_split("test", test)
    return Path(out_dir)

"""NTU RGB+D 60 / 120 raw ``.skeleton`` files, preprocessed as the SGN/CTR-GCN scripts do.

Every paper in this field trains on the output of the same three SGN scripts (used
unchanged by CTR-GCN and MAMP); this module reproduces them step by step:

1. Parse (``get_raw_skes_data``): frames without bodies are dropped; each body ID
   collects its joints in order of appearance, and its interval is taken as contiguous
   from its first valid frame (the reference never looks at the real frame index of a
   later appearance). With several body IDs, each body's motion is the sum over x, y, z
   of the variance of its joints.
2. Denoise and assign actors (``get_raw_denoised_data``, only with several body IDs):
   drop bodies tracked for at most 11 frames; drop a body whose share of "noisy" frames
   (x-extent > 0.8 y-extent) is at least 0.69754, otherwise lower its motion to that of
   its valid frames; sort by motion. Actor 1 is the most moving body; every further body
   joins actor 1's slot if their intervals do not overlap (touching by one frame counts
   as no overlap, the later body overwriting that frame), else actor 2's slot under the
   same rule, else it is discarded. Actor 2's interval starts as the virtual [0, 0], so
   its start never leaves frame 0 (a reference quirk kept for parity). Frames in which
   every actor is empty are removed.
3. Centre (``seq_transformation``): subtract joint 2 (spine middle) of actor 1 in its
   first non-empty frame from every frame of both actors; empty actor frames stay zero.
   No rotation or scale normalisation.

Choices where the reference is silent or awkward:

- If the length filter would remove every body, none is removed (the reference crashes
  on such a file; no file of the released datasets has one).
- Sequences are stored unpadded (the reference pads to 300 frames).
- ``second_actor``: the reference fills the second actor of one-actor samples with zeros
  for NTU 60 but with a copy of actor 1 (after centring) for NTU 120, and so do the
  defaults here, so that data and checkpoints compare with published ones. ``"zeros"``
  for NTU 120 keeps an absent person absent everywhere (valid-length detection,
  motion-aware masking, per-person pooling) and makes NTU 60 and NTU 120 data agree.

Files the reference would turn into garbage or crash on are refused, each with the file
and (where there is one) the line: a body ID twice in one frame, a multi-body file whose
bodies are all zero, and coordinates float32 cannot hold (see
:func:`~skelmae.data.formats.common.checked_float32`).

Splits follow the dataset papers: NTU 60 cross-subject (20 training performers) and
cross-view (cameras 2 and 3 train); NTU 120 cross-subject (53 training performers) and
cross-setup (even setups train). The officially listed samples with missing skeletons
(302 / 535, shipped in ``skelmae/data/resources``) are skipped.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from skelmae.data.formats.base import FORMATS, DatasetFormat, FormatOptionError, ImportPlan, Loaded, PoseSample, Sample
from skelmae.data.formats.common import (
    centre_on_first_frame, checked_float32, find_files, parse_int, parse_number_rows, read_text, resource_lines,
)
from skelmae.data.layouts import get_layout
from skelmae.data.preprocessing import Preprocessing
from skelmae.errors import DataFormatError

__all__ = [
    "Body",
    "RawSkeleton",
    "parse_skeleton",
    "read_skeleton",
    "assign_actors",
    "preprocess",
    "load_sequence",
    "parse_name",
    "split_masks",
    "missing_skeletons",
    "class_names",
    "DATASETS",
    "NtuOptions",
    "Ntu60",
    "Ntu120",
]

JOINTS = 25
JOINT_FIELDS = 12  # x y z depthX depthY colorX colorY orientW orientX orientY orientZ trackingState
BODY_FIELDS = 10  # bodyID clippedEdges handLeft(conf, state) handRight(conf, state) isRestricted leanX leanY trackingState
LAYOUT = "ntu25"
NOISE_MAX_LENGTH = 11
NOISE_SPREAD_X_OVER_Y = 0.8
NOISE_SPREAD_RATIO = 0.69754
SECOND_ACTOR = ("zeros", "duplicate")

XSUB60_TRAIN = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
XSUB120_TRAIN = XSUB60_TRAIN + (
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93,
    94, 95, 97, 98, 100, 103,
)
XVIEW_TRAIN_CAMERAS = (2, 3)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    max_setup: int
    num_classes: int
    protocols: tuple[str, str]
    missing_list: str
    available: int  # samples in the full release minus the missing-skeleton list
    second_actor: str  # what the reference puts in the second actor of one-actor samples


DATASETS = {
    "ntu60": DatasetInfo("ntu60", 17, 60, ("xsub", "xview"), "ntu60_missing_skeletons.txt", 56_578, "zeros"),
    "ntu120": DatasetInfo("ntu120", 32, 120, ("xsub", "xset"), "ntu120_missing_skeletons.txt", 113_945, "duplicate"),
}

_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
META_FIELDS = ("setup", "camera", "performer", "replication", "action")


def parse_name(name: str) -> dict[str, int] | None:
    """``SsssCcccPpppRrrrAaaa`` -> setup, camera, performer, replication, action (1-based); None if not one."""
    match = _NAME.fullmatch(name)
    return dict(zip(META_FIELDS, map(int, match.groups()))) if match else None


def missing_skeletons(dataset: str) -> frozenset[str]:
    return frozenset(resource_lines(DATASETS[dataset].missing_list))


def class_names(dataset: str) -> list[str]:
    return resource_lines("ntu120_classes.txt")[: DATASETS[dataset].num_classes]


# -- step 1: parsing ----------------------------------------------------------------------


@dataclass(eq=False)
class Body:
    """One tracked body ID: joints over its (assumed contiguous) interval of valid frames."""

    body_id: str
    joints: np.ndarray  # (frames, 25, 3) float32
    start: int  # first valid-frame index
    motion: np.float32 | None = None  # only set when the file has several body IDs

    @property
    def end(self) -> int:
        return self.start + len(self.joints) - 1


@dataclass
class RawSkeleton:
    bodies: list[Body]  # in order of first appearance
    num_frames: int  # frames with at least one body
    dropped_frames: list[int]  # 0-based indices of frames without bodies


def read_skeleton(path: str | Path) -> RawSkeleton:
    return parse_skeleton(read_text(path), path)


def parse_skeleton(text: str, path: str | Path = "<text>") -> RawSkeleton:
    """Parse the text of a ``.skeleton`` file (CRLF or LF); raises :class:`DataFormatError`."""
    lines = text.split("\n")
    num_frames = parse_int(lines, 0, path, "frame count")
    block_lines: list[int] = []  # first joint line of every body block
    block_body: list[str] = []
    block_frame: list[int] = []
    dropped: list[int] = []
    valid = -1
    i = 1
    for frame in range(num_frames):
        num_bodies = parse_int(lines, i, path, f"body count of frame {frame + 1}")
        i += 1
        if num_bodies == 0:
            dropped.append(frame)
            continue
        valid += 1
        in_frame: set[str] = set()
        for _ in range(num_bodies):
            if i >= len(lines):
                raise DataFormatError(path, i + 1, f"file ends inside frame {frame + 1} of {num_frames}", "more lines (truncated file?)")
            fields = lines[i].split()
            if len(fields) != BODY_FIELDS:
                raise DataFormatError(
                    path, i + 1, f"body line of frame {frame + 1} has {len(fields)} values",
                    f"{BODY_FIELDS} (bodyID, clippedEdges, hand states, isRestricted, lean, trackingState)",
                )
            if fields[0] in in_frame:  # its joints would fill two frames of its interval
                raise DataFormatError(path, i + 1, f"body {fields[0][:40]} appears twice in frame {frame + 1}", "each body ID once per frame")
            in_frame.add(fields[0])
            joints = parse_int(lines, i + 1, path, f"joint count of frame {frame + 1}")
            if joints != JOINTS:
                raise DataFormatError(path, i + 2, f"joint count is {joints}", f"{JOINTS} (Kinect v2)")
            if i + 2 + JOINTS > len(lines):
                raise DataFormatError(path, len(lines), f"file ends inside the joints of frame {frame + 1}", f"{JOINTS} joint lines")
            block_lines.append(i + 2)
            block_body.append(fields[0])
            block_frame.append(valid)
            i += 2 + JOINTS
    for k in range(i, len(lines)):
        if lines[k].strip():
            raise DataFormatError(path, k + 1, f"unexpected content after the {num_frames} declared frames", "end of file")
    if valid < 0:
        raise DataFormatError(path, None, "no frame contains a body", "at least one tracked body")

    rows = [start + j for start in block_lines for j in range(JOINTS)]
    values = parse_number_rows(lines, rows, path, JOINT_FIELDS, "joint line")
    xyz = checked_float32(values[:, :3], path, lambda row: rows[row] + 1, "joint position")
    xyz = xyz.reshape(len(block_lines), JOINTS, 3)

    order: dict[str, list[int]] = {}
    for block, body_id in enumerate(block_body):
        order.setdefault(body_id, []).append(block)
    bodies = [
        Body(body_id, np.ascontiguousarray(xyz[blocks]), start=block_frame[blocks[0]])
        for body_id, blocks in order.items()
    ]
    if len(bodies) > 1:
        for body in bodies:
            body.motion = _motion(body.joints)
    return RawSkeleton(bodies, num_frames=valid + 1, dropped_frames=dropped)


def _motion(joints: np.ndarray) -> np.float32:
    """Sum over x, y, z of the variance of all joint positions (float32, as the reference)."""
    return np.sum(np.var(joints.reshape(-1, 3), axis=0))


# -- step 2: denoising and actor assignment ------------------------------------------------


def _denoise(bodies: list[Body]) -> list[Body]:
    """The reference's length and spread filters; the survivors sorted by motion, largest first."""
    kept = [b for b in bodies if len(b.joints) > NOISE_MAX_LENGTH] or list(bodies)
    if len(kept) > 1:
        survivors = list(kept)
        for body in kept:
            if len(survivors) == 1:
                break
            x, y = body.joints[..., 0], body.joints[..., 1]
            x_extent = (x.max(axis=1) - x.min(axis=1)).astype(np.float64)
            y_extent = (y.max(axis=1) - y.min(axis=1)).astype(np.float64)
            valid = x_extent <= NOISE_SPREAD_X_OVER_Y * y_extent
            noisy = len(valid) - int(valid.sum())
            if noisy == 0:
                continue
            if noisy / float(len(valid)) >= NOISE_SPREAD_RATIO:
                survivors.remove(body)
            else:
                body.motion = min(body.motion, _motion(body.joints[valid]))
        kept = survivors
    return sorted(kept, key=lambda b: b.motion, reverse=True) if len(kept) > 1 else kept


def assign_actors(raw: RawSkeleton) -> tuple[np.ndarray, int]:
    """Denoise and place bodies in actor slots: ((T, 2, 25, 3) float32, actor slots used by the reference).

    The second number is 1 when the reference keeps a single actor (one body ID, or one
    left after denoising) and 2 when it fills two slots (the second may still be empty).
    Not yet centred. Frames in which all actors are empty are removed for multi-body files.
    """
    n = raw.num_frames
    seq = np.zeros((n, 2, JOINTS, 3), dtype=np.float32)
    if len(raw.bodies) == 1:
        body = raw.bodies[0]
        seq[body.start : body.end + 1, 0] = body.joints
        return seq, 1
    kept = _denoise([Body(b.body_id, b.joints, b.start, b.motion) for b in raw.bodies])
    first = kept[0]
    seq[first.start : first.end + 1, 0] = first.joints
    slots = 1 if len(kept) == 1 else 2
    start1, end1, start2, end2 = first.start, first.end, 0, 0
    for body in kept[1:]:
        if min(end1, body.end) - max(start1, body.start) <= 0:
            seq[body.start : body.end + 1, 0] = body.joints
            start1, end1 = min(body.start, start1), max(body.end, end1)
        elif min(end2, body.end) - max(start2, body.start) <= 0:
            seq[body.start : body.end + 1, 1] = body.joints
            start2, end2 = min(body.start, start2), max(body.end, end2)
    # the reference tests a frame for emptiness by the sum of its values
    occupied = seq[:, :slots].reshape(n, -1).sum(axis=1) != 0
    return seq[occupied], slots


# -- step 3: centring ---------------------------------------------------------------------


def _check_second_actor(second_actor: str) -> None:
    if second_actor not in SECOND_ACTOR:
        raise FormatOptionError(f"second_actor must be one of {SECOND_ACTOR}, got {second_actor!r}")


def preprocess(raw: RawSkeleton, second_actor: str = "zeros", path: str | Path = "<text>") -> np.ndarray:
    """Denoised, actor-assigned, centred (T, 2, 25, 3) float32 sequence."""
    _check_second_actor(second_actor)
    seq, slots = assign_actors(raw)
    if not seq[:, 0].any():  # also when frame removal left no frame: every body was all zero
        raise DataFormatError(path, None, "every joint of the main actor is exactly zero", "tracked joint positions")
    centred = centre_on_first_frame(seq, get_layout(LAYOUT).center, _reference_absent(seq, slots))
    if slots == 1 and second_actor == "duplicate":
        centred[:, 1] = centred[:, 0]
    return centred


def _reference_absent(seq: np.ndarray, slots: int) -> np.ndarray:
    """Actor frames the reference ``seq_translation`` keeps at zero: with one actor slot only
    the second actor; with two, every actor frame whose values sum to zero."""
    if slots == 1:
        absent = np.zeros(seq.shape[:2], dtype=bool)
        absent[:, 1] = True
        return absent
    return seq.reshape(len(seq), 2, -1).sum(axis=2) == 0


def load_sequence(path: str | Path, second_actor: str = "zeros") -> np.ndarray:
    """One raw ``.skeleton`` file -> (T, 2, 25, 3) float32, exactly as ``data prepare ntu60`` stores it
    (``ntu120`` by default: ``second_actor="duplicate"``)."""
    return preprocess(read_skeleton(path), second_actor, path)


# -- splits -------------------------------------------------------------------------------


def split_masks(
    dataset: str, setup: Sequence[int] | np.ndarray, camera: Sequence[int] | np.ndarray, performer: Sequence[int] | np.ndarray,
) -> dict[str, np.ndarray]:
    """Boolean membership of every standard split (``<protocol>_train`` / ``<protocol>_test``)."""
    setup, camera, performer = (np.asarray(a) for a in (setup, camera, performer))
    if dataset == "ntu60":
        train = {"xsub": np.isin(performer, XSUB60_TRAIN), "xview": np.isin(camera, XVIEW_TRAIN_CAMERAS)}
    elif dataset == "ntu120":
        train = {"xsub": np.isin(performer, XSUB120_TRAIN), "xset": setup % 2 == 0}
    else:
        raise ValueError(f"unknown NTU dataset {dataset!r}; expected one of {sorted(DATASETS)}")
    masks = {}
    for protocol, mask in train.items():
        masks[f"{protocol}_train"] = mask
        masks[f"{protocol}_test"] = ~mask
    return masks


# -- import plan --------------------------------------------------------------------------


def _load_item(path: Path, dataset: str, second_actor: str) -> Loaded:
    meta = parse_name(path.stem)
    if meta is None:
        raise DataFormatError(path, "file name", f"{path.stem!r} is not an NTU sample name", "SsssCcccPpppRrrrAaaa.skeleton")
    if meta["action"] < 1:  # its label would be -1, which means "unlabelled"
        raise DataFormatError(path, "file name", f"action is {meta['action']}", f"1..{DATASETS[dataset].num_classes}")
    seq = load_sequence(path, second_actor)
    masks = split_masks(dataset, [meta["setup"]], [meta["camera"]], [meta["performer"]])
    splits = tuple(name for name, mask in masks.items() if mask[0])
    return Loaded([Sample(seq, meta["action"] - 1, path.stem, meta, splits)])


@dataclass(frozen=True)
class NtuOptions:
    second_actor: str | None = field(
        default=None, metadata={"help": "zeros or duplicate (default: as the reference, zeros for ntu60, duplicate for ntu120)"},
    )

    def __post_init__(self) -> None:
        if self.second_actor is not None:
            _check_second_actor(self.second_actor)


class _NtuSkeletons(DatasetFormat):
    """Raw ``.skeleton`` files of one NTU release; ``dataset`` fixes which."""

    dataset: ClassVar[str]
    suffixes = (".skeleton",)
    pose_file = "NTU .skeleton"

    @property
    def second_actor(self) -> str:
        return self.options.second_actor or DATASETS[self.dataset].second_actor

    def read(self, path: Path) -> list[PoseSample]:
        return [PoseSample(path.name.split(".")[0], load_sequence(path, self.second_actor), LAYOUT)]

    def plan(self, raw: Sequence[Path]) -> ImportPlan:
        """Every ``*.skeleton`` file under ``raw`` (files or folders, e.g. both NTU 120 archives)."""
        dataset, second_actor = self.dataset, self.second_actor
        info = DATASETS[dataset]
        missing = missing_skeletons(dataset)
        chosen: list[Path] = []
        on_missing_list = outside = 0
        for name, path in sorted(find_files(raw, "*.skeleton").items()):
            meta = parse_name(name)
            if meta is not None and name in missing:
                on_missing_list += 1
            elif meta is not None and (meta["setup"] > info.max_setup or meta["action"] > info.num_classes):
                outside += 1
            else:
                chosen.append(path)
        notes = [f"{on_missing_list} sample(s) on the official missing-skeleton list left out"]
        if outside:
            notes.append(f"{outside} file(s) of setups/actions outside {dataset} ignored")
        if len(chosen) != info.available:
            notes.append(f"{len(chosen)} sample file(s) found; the full {dataset} release has {info.available:,}")
        return ImportPlan(
            format=dataset, name=dataset, raw=" ".join(map(str, raw)), layout=LAYOUT, channels=["x", "y", "z"],
            num_persons=2, classes=class_names(dataset),
            split_names=[f"{p}_{part}" for p in info.protocols for part in ("train", "test")],
            source={
                "raw": [str(p) for p in raw],
                "second_actor": second_actor,
                "missing_skeleton_samples_left_out": on_missing_list,
                "complete": len(chosen) == info.available,
            },
            items=chosen, load=functools.partial(_load_item, dataset=dataset, second_actor=second_actor),
            total=len(chosen), notes=notes,
            preprocessing=Preprocessing.centred(
                get_layout(LAYOUT), persons=2, person_order="motion", second_actor=second_actor,
                note="SGN/CTR-GCN: bodies denoised and assigned to actors, frames without bodies dropped",
            ),
        )


@FORMATS.register("ntu60", config=NtuOptions)
class Ntu60(_NtuSkeletons):
    """NTU RGB+D 60 raw .skeleton files (SGN/CTR-GCN preprocessing)."""

    dataset = "ntu60"


@FORMATS.register("ntu120", config=NtuOptions)
class Ntu120(_NtuSkeletons):
    """NTU RGB+D 120 raw .skeleton files (SGN/CTR-GCN preprocessing)."""

    dataset = "ntu120"

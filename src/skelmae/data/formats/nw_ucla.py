"""Northwestern-UCLA Multiview Action3D, the ``all_sqe`` JSON release used by CTR-GCN and InfoGCN.

One file per sequence: ``{"file_name": "a01_s01_e00_v01", "skeletons": T x 20 x [x, y, z],
"label": 1..10}``, 20 Kinect v1 joints (layout ``kinect20``), one person, metres.

Preprocessing: the sequence is centred on the spine joint of the first frame, the first
step of the CTR-GCN feeder. The feeder's later steps run at load time and are not stored:
random rotation and scaling (training only) and, for training and test alike, a per-sample
min-max scaling of each axis to [-1, 1], which skelmae does not apply (coordinates stay in
metres). Labels are stored 0-based;
the JSON label is checked against the action in the file name (a01..a06, a08, a09, a11,
a12 -> 1..10). Sequences are kept at their own length (1 to 201 frames; the crop-resize
turns even a single frame into a constant window). Split: cross-view, views 1 and 2
train (1,020 sequences), view 3 test (464).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skelmae.data.formats.base import FORMATS, DatasetFormat, ImportPlan, Loaded, PoseSample, Sample
from skelmae.data.formats.common import centre_on_first_frame, checked_float32, find_files, read_text, resource_lines
from skelmae.data.layouts import get_layout
from skelmae.data.preprocessing import Preprocessing
from skelmae.errors import DataFormatError

__all__ = ["parse_sequence", "load_sequence", "parse_name", "split_masks", "class_names", "LAYOUT", "EXPECTED_SEQUENCES",
           "NwUcla"]

LAYOUT = "kinect20"
JOINTS = 20
EXPECTED_SEQUENCES = 1484
ACTION_TO_LABEL = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 8: 7, 9: 8, 11: 9, 12: 10}
XVIEW_TRAIN_VIEWS = (1, 2)
_NAME = re.compile(r"a([0-9]{1,3})_s([0-9]{1,3})_e([0-9]{1,3})_v([0-9]{1,3})")  # numbers become int64 metadata
META_FIELDS = ("action", "subject", "repetition", "view")


def class_names() -> list[str]:
    return resource_lines("nw_ucla_classes.txt")


def parse_name(name: str) -> dict[str, int] | None:
    """``aAA_sSS_eEE_vVV`` -> action, subject, repetition, view; None if not one."""
    match = _NAME.fullmatch(name)
    return dict(zip(META_FIELDS, map(int, match.groups()))) if match else None


def parse_sequence(text: str, path: str | Path = "<text>") -> tuple[np.ndarray, int, str, dict[str, int]]:
    """JSON text -> (centred (T, 1, 20, 3) float32, 0-based label, name, meta)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, exc.lineno, f"invalid JSON: {exc.msg}") from exc
    except ValueError as exc:  # an integer of more digits than Python converts
        raise DataFormatError(path, None, f"invalid JSON: {exc}") from None
    except RecursionError:
        raise DataFormatError(path, None, "JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise DataFormatError(path, None, f"top level is a {type(doc).__name__}", "an object with file_name, skeletons, label")
    for key in ("file_name", "skeletons", "label"):
        if key not in doc:
            raise DataFormatError(path, f"field '{key}'", "is missing")
    name = doc["file_name"]
    meta = parse_name(name) if isinstance(name, str) else None
    if meta is None:
        raise DataFormatError(path, "field 'file_name'", f"is {name!r}", "a name like 'a01_s01_e00_v01'")
    label = doc["label"]
    if isinstance(label, bool) or not isinstance(label, int) or label not in ACTION_TO_LABEL.values():
        raise DataFormatError(path, "field 'label'", f"is {label!r}", "an integer 1..10")
    if ACTION_TO_LABEL.get(meta["action"]) != label:
        raise DataFormatError(
            path, "field 'label'", f"is {label} but the file name says action a{meta['action']:02d}",
            f"label {ACTION_TO_LABEL.get(meta['action'], '?')} (a01..a06, a08, a09, a11, a12 -> 1..10)",
        )
    joints = _skeletons(doc["skeletons"], path)
    seq = centre_on_first_frame(joints[:, None], get_layout(LAYOUT).center)
    if seq is None:
        raise DataFormatError(path, "field 'skeletons'", "every joint is exactly zero", "tracked joint positions")
    return seq, label - 1, name, meta


def _skeletons(frames: Any, path: str | Path) -> np.ndarray:
    if not isinstance(frames, list) or not frames:
        raise DataFormatError(path, "field 'skeletons'", "is empty or not a list", "a list of frames of 20 [x, y, z] joints")
    for t, frame in enumerate(frames):
        if not isinstance(frame, list) or len(frame) != JOINTS:
            size = len(frame) if isinstance(frame, list) else type(frame).__name__
            raise DataFormatError(path, f"field 'skeletons[{t}]'", f"has {size} joints", f"{JOINTS} (Kinect v1)")
        for j, joint in enumerate(frame):
            if (
                not isinstance(joint, list) or len(joint) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in joint)
            ):
                raise DataFormatError(path, f"field 'skeletons[{t}][{j}]'", f"is {str(joint)[:40]}", "[x, y, z] numbers")
    try:
        values = np.asarray(frames, dtype=np.float64)
    except OverflowError:
        raise DataFormatError(path, "field 'skeletons'", "holds an integer too large for a coordinate", "[x, y, z] numbers") from None
    return checked_float32(values, path, lambda t: f"field 'skeletons[{t}]'", "a joint")


def load_sequence(path: str | Path) -> np.ndarray:
    """One ``all_sqe`` JSON file -> (T, 1, 20, 3) float32, exactly as ``data prepare nw-ucla`` stores it."""
    return parse_sequence(read_text(path), path)[0]


def split_masks(view: np.ndarray) -> dict[str, np.ndarray]:
    train = np.isin(np.asarray(view), XVIEW_TRAIN_VIEWS)
    return {"xview_train": train, "xview_test": ~train}


def _load_item(path: Path) -> Loaded:
    seq, label, name, meta = parse_sequence(read_text(path), path)
    splits = tuple(split for split, mask in split_masks(np.array([meta["view"]])).items() if mask[0])
    return Loaded([Sample(seq, label, name, meta, splits)])


@FORMATS.register("nw-ucla")
class NwUcla(DatasetFormat):
    """Northwestern-UCLA all_sqe JSON files, centred on the spine (CTR-GCN feeder)."""

    suffixes = (".json",)
    pose_file = "NW-UCLA .json"

    def read(self, path: Path) -> list[PoseSample]:
        return [PoseSample(path.stem, load_sequence(path), LAYOUT)]

    def plan(self, raw: Sequence[Path]) -> ImportPlan:
        """Every ``*.json`` file under ``raw`` (the ``all_sqe`` folder)."""
        files = [path for _, path in sorted(find_files(raw, "*.json").items())]
        notes = []
        if len(files) != EXPECTED_SEQUENCES:
            notes.append(f"{len(files)} sequence file(s) found; the full release has {EXPECTED_SEQUENCES:,}")
        return ImportPlan(
            format="nw-ucla", name="nw-ucla", raw=" ".join(map(str, raw)), layout=LAYOUT, channels=["x", "y", "z"],
            num_persons=1, classes=class_names(), split_names=["xview_train", "xview_test"],
            source={"raw": [str(p) for p in raw], "complete": len(files) == EXPECTED_SEQUENCES},
            items=files, load=_load_item, total=len(files), notes=notes,
            preprocessing=Preprocessing.centred(get_layout(LAYOUT), persons=1, note="the CTR-GCN feeder's first step (its min-max scaling is not stored)"),
        )

"""PKU-MMD phase 1 and phase 2: untrimmed skeleton videos + label files -> trimmed action instances.

Input (the official releases; folder names do not matter):

- skeleton files ``<video>.txt`` (phase 1 ``0002-L``, phase 2 e.g. ``A01N01-L``; the
  suffix is the view L/M/R): one line per frame of 150 numbers = 2 bodies x 25 Kinect v2
  joints x (x, y, z); an absent second body is 75 zeros.
- label files of the same names in a folder whose name contains "label": one line per
  action instance, ``class,start,end,confidence`` (class 1..51).
- split files ``cross-subject.txt`` / ``cross-view.txt`` (phase 1) or
  ``cross_subject_v2.txt`` / ``cross_view_v2.txt`` (phase 2): a "Training videos:" line
  followed by the comma-separated training videos, then a "Validation videos:" section.

As in the reference converter (MAMP ``pku_gendata``): an instance is frames
``[start, end)`` of its video (an end past the last frame is cut there), labels are the
class minus one over all 51 classes (phase 2 uses a subset), instances whose frames are
all zero are left out (listed in the report), and coordinates are not centred (camera
space, as the published PKU-MMD numbers use; ``center=True`` centres them like NTU).
Unlike the reference, instances are not truncated to 300 frames: the crop-resize handles
any length. Splits: ``xsub_*`` and ``xview_*`` from the split files (video-level).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skelmae.data.formats.base import FORMATS, DatasetFormat, ImportPlan, Loaded, Sample
from skelmae.data.formats.common import (
    centre_on_first_frame, checked_float32, parse_number_rows, read_text, resource_lines,
)
from skelmae.data.layouts import get_layout
from skelmae.data.preprocessing import Preprocessing
from skelmae.errors import DataFormatError

__all__ = ["parse_skeleton", "parse_labels", "parse_split", "load_instances", "class_names", "PkuMmdOptions", "PkuMmd"]

VALUES_PER_FRAME = 150  # 2 bodies x 25 joints x xyz
NUM_CLASSES = 51
LAYOUT = "ntu25"
VIEWS = {"L": 1, "M": 2, "R": 3}
MAX_VALUE = 2**31 - 1  # label-file numbers are stored as per-sample metadata
_VIDEO = re.compile(r"([^\r\n]+)-([LMR])")  # the video becomes part of sample names, which are lines
_VIDEO_NUMBER = re.compile(r"[0-9]{1,9}")
_SPLIT_FILE = re.compile(r"cross[-_ ]?(subject|view)(_v2)?", re.IGNORECASE)


def class_names() -> list[str]:
    return resource_lines("pku_mmd_classes.txt")


def _content_lines(text: str) -> list[str]:
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def parse_skeleton(text: str, path: str | Path = "<text>") -> np.ndarray:
    """Skeleton file text -> (T, 2, 25, 3) float32 in camera coordinates."""
    lines = _content_lines(text)
    if not lines:
        raise DataFormatError(path, 1, "the file has no frames", f"one line of {VALUES_PER_FRAME} numbers per frame")
    values = parse_number_rows(lines, range(len(lines)), path, VALUES_PER_FRAME, "frame")
    return checked_float32(values, path, lambda row: row + 1, "frame").reshape(len(lines), 2, 25, 3)


def parse_labels(text: str, path: str | Path = "<text>") -> list[tuple[int, int, int, int]]:
    """Label file text -> [(class 1..51, start, end, confidence), ...]."""
    instances = []
    for index, line in enumerate(_content_lines(text)):
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4:
            raise DataFormatError(path, index + 1, f"label line has {len(fields)} fields", "class,start,end,confidence")
        try:
            label, start, end, confidence = (int(f) for f in fields)
        except ValueError:
            raise DataFormatError(path, index + 1, f"label line is {line.strip()[:60]!r}", "four whole numbers: class,start,end,confidence") from None
        if not 1 <= label <= NUM_CLASSES:
            raise DataFormatError(path, index + 1, f"class is {label}", f"1..{NUM_CLASSES}")
        if not (0 <= start <= MAX_VALUE and 0 <= end <= MAX_VALUE):  # start >= end: empty, left out by load_instances
            raise DataFormatError(path, index + 1, f"frames {start}..{end}", f"frame numbers from 0 to {MAX_VALUE}")
        if abs(confidence) > MAX_VALUE:
            raise DataFormatError(path, index + 1, f"confidence is {confidence}", f"a whole number of magnitude up to {MAX_VALUE}")
        instances.append((label, start, end, confidence))
    if not instances:
        raise DataFormatError(path, 1, "the label file is empty", "class,start,end,confidence lines")
    return instances


def parse_split(text: str, path: str | Path = "<text>") -> dict[str, set[str]]:
    """Split file text -> {"train": videos, "test": videos}."""
    sections: dict[str, set[str]] = {}
    current = None
    for line in text.split("\n"):
        head, colon, rest = line.partition(":")
        key = head.strip().lower()
        if colon and key.startswith("train"):
            current, line = "train", rest
        elif colon and (key.startswith("valid") or key.startswith("test")):
            current, line = "test", rest
        videos = {v.strip() for v in line.split(",") if v.strip()}
        if videos and current is None:
            raise DataFormatError(path, None, "video names before any 'Training videos:' line", "the official split file")
        if current is not None:
            sections.setdefault(current, set()).update(videos)
    if "train" not in sections:
        raise DataFormatError(path, None, "no 'Training videos:' section", "the official split file")
    sections.setdefault("test", set())
    return sections


def load_instances(
    skeleton_path: str | Path, label_path: str | Path, center: bool = False,
) -> tuple[list[tuple[np.ndarray, int, int, int, int]], list[str]]:
    """The trimmed instances of one video: ([(seq, label0, start, end, confidence)], notes on left-out ones)."""
    video = Path(skeleton_path).stem
    frames = parse_skeleton(read_text(skeleton_path), skeleton_path)
    instances, notes = [], []
    for k, (label, start, end, confidence) in enumerate(parse_labels(read_text(label_path), label_path)):
        seq = frames[start:end]
        if start >= end:  # one line of the official phase-1 labels (0043-L, line 21) is reversed
            notes.append(f"{video}_{k}: frames {start}..{end} end before they start (left out, as the reference does)")
            continue
        if not seq.size or not seq.any():
            notes.append(f"{video}_{k}: frames {start}..{end} of {len(frames)} hold no skeleton (left out, as the reference does)")
            continue
        if center:
            seq = centre_on_first_frame(seq, get_layout(LAYOUT).center)
            if seq is None:
                notes.append(f"{video}_{k}: the first body is absent in every frame, so it cannot be centred (left out)")
                continue
        instances.append((seq, label - 1, start, min(end, len(frames)), confidence))
    return instances, notes


def _load_item(item: tuple[str, Path, Path, tuple[str, ...]], center: bool) -> Loaded:
    video, skeleton_path, label_path, splits = item
    instances, notes = load_instances(skeleton_path, label_path, center)
    meta = {"view": VIEWS[_VIDEO.fullmatch(video).group(2)]}
    if _VIDEO_NUMBER.fullmatch(video.split("-")[0]):
        meta["video"] = int(video.split("-")[0])
    samples = [
        Sample(seq, label, f"{video}_{k}", {**meta, "start": start, "end": end, "confidence": confidence}, splits)
        for k, (seq, label, start, end, confidence) in enumerate(instances)
    ]
    return Loaded(samples, notes)


@dataclass(frozen=True)
class PkuMmdOptions:
    center: bool = field(default=False, metadata={"help": "centre like NTU (default: no, as the reference)"})


@FORMATS.register("pku-mmd", config=PkuMmdOptions)
class PkuMmd(DatasetFormat):
    """PKU-MMD phase 1/2 skeleton videos + label files, trimmed to action instances."""

    def plan(self, raw: Sequence[Path]) -> ImportPlan:
        """Skeleton, label and split files found anywhere under ``raw``."""
        center = self.options.center
        skeletons: dict[str, Path] = {}
        labels: dict[str, Path] = {}
        split_files: dict[str, list[Path]] = {"subject": [], "view": []}
        for root in raw:
            for path in [root] if root.is_file() else sorted(root.rglob("*.txt")):
                split = _SPLIT_FILE.fullmatch(path.stem)
                if split:
                    split_files[split.group(1).lower()].append(path)
                    continue
                if not _VIDEO.fullmatch(path.stem):
                    continue
                relative = path.relative_to(root) if root.is_dir() else Path(path.name)
                is_label = any("label" in part.lower() for part in relative.parts[:-1])
                table = labels if is_label else skeletons
                if path.stem in table:
                    raise DataFormatError(path, None, f"video {path.stem} is also at {table[path.stem]}", "each video once")
                table[path.stem] = path
        for kind, paths in split_files.items():
            if len(paths) != 1:
                found = ", ".join(map(str, paths)) or "none"
                raise DataFormatError(" ".join(map(str, raw)), None, f"found {len(paths)} cross-{kind} split files ({found})", "exactly one")
        phase = 2 if any("v2" in p[0].stem.lower() for p in split_files.values()) else 1
        protocols = {"xsub": parse_split(read_text(split_files["subject"][0]), split_files["subject"][0]),
                     "xview": parse_split(read_text(split_files["view"][0]), split_files["view"][0])}
        videos = sorted(set(skeletons) & set(labels))
        items, unlisted = [], 0
        for video in videos:
            splits = tuple(f"{p}_{part}" for p, sections in protocols.items() for part in ("train", "test") if video in sections[part])
            unlisted += len(splits) < len(protocols)
            items.append((video, skeletons[video], labels[video], splits))
        notes = [f"phase {phase}: {len(videos)} video(s) with skeleton and labels"]
        if len(labels) > len(videos):
            notes.append(f"{len(labels) - len(videos)} label file(s) without a skeleton file ignored")
        if len(skeletons) > len(videos):
            notes.append(f"{len(skeletons) - len(videos)} skeleton file(s) without a label file ignored")
        if unlisted:
            notes.append(f"{unlisted} video(s) missing from a split file (left out of that protocol's splits)")
        steps = {"persons": 2, "note": "instances = frames [start, end) of each labelled video"}
        return ImportPlan(
            format="pku-mmd", name=f"pku-mmd-v{phase}", raw=" ".join(map(str, raw)), layout=LAYOUT,
            channels=["x", "y", "z"], num_persons=2, classes=class_names(),
            split_names=[f"{p}_{part}" for p in protocols for part in ("train", "test")],
            source={
                "raw": [str(p) for p in raw], "phase": phase, "videos": len(videos), "center": center,
            },
            items=items, load=functools.partial(_load_item, center=center), total=len(items), unit="video", notes=notes,
            preprocessing=Preprocessing.centred(get_layout(LAYOUT), **steps) if center else Preprocessing(**steps),
        )

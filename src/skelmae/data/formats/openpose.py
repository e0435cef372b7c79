"""OpenPose ``--write_json`` output: one ``*_keypoints.json`` file per frame.

A frame file holds ``{"people": [{"person_id": [-1], "pose_keypoints_2d": [x0, y0, c0, x1, ...]}, ...]}``
(the face and hand fields are ignored). 25 keypoints are BODY_25 (layout ``openpose_body25``),
18 are COCO (``openpose_coco18``); ``layout`` names the one expected.

A sequence is a folder of frame files, ordered by the frame number in their names (OpenPose
writes ``<video>_000000000012_keypoints.json``; other files are ignored). A folder holding
the frames of several videos (different names before the number) is refused: OpenPose is run
once per video, with its own ``--write_json`` folder. ``data prepare openpose`` imports every
folder under ``--raw`` that holds frame files, each one sequence named by its folder (a frame
file given alone is a one-frame sequence named by its file).

Persons, confidence and 2D normalisation: see :mod:`skelmae.data.formats.tracks`.
``person_id`` is a track id when OpenPose's tracking wrote one (-1 means untracked), so
untracked frames fill the person slots by detection score (the mean keypoint confidence);
OpenPose writes pixels, or what ``--keypoint_scale`` says, and the clip box normalisation
suits any of them. Undetected keypoints are OpenPose's (0, 0, 0) and stay 0.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from skelmae.data.formats.base import FORMATS, DatasetFormat, ImportPlan, PoseSample
from skelmae.data.formats.files import plan_sequences
from skelmae.data.formats.tracks import (
    CHANNELS_2D, Keypoints, PixelOptions, clip_of, files_under, first_readable, keypoint_clip, load_json, mentions,
    named_sequences, normalisation_note, preprocessing_2d, numbers, track_id,
)
from skelmae.data.layouts import SkeletonLayout
from skelmae.errors import DataFormatError

__all__ = ["OpenposeOptions", "OpenPose", "BODIES", "frame_files", "read_sequence"]

FRAME_SUFFIX = "_keypoints.json"
BODIES = {25: ("openpose_body25",), 18: ("openpose_coco18",)}
_NUMBERED = re.compile(r"(?P<video>.*?)(?P<frame>[0-9]+)", re.DOTALL)
_PERSON = "a list of people: {'pose_keypoints_2d': [x, y, c, ...]}"


@dataclass(frozen=True)
class OpenposeOptions(PixelOptions):
    """Labelling, persons, ``min_score``, ``image_size`` and ``layout`` (openpose_body25 or openpose_coco18)."""

    bodies: ClassVar[Mapping[int, tuple[str, ...]]] = BODIES


def frame_files(folder: Path) -> list[Path]:
    """The frame files of a sequence folder, in frame order."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(FRAME_SUFFIX))
    if not files:
        raise DataFormatError(folder, None, f"holds no *{FRAME_SUFFIX} frame file", "a folder of OpenPose --write_json output")
    if len(files) == 1:
        return files
    numbered = []
    for path in files:
        found = _NUMBERED.fullmatch(path.name[: -len(FRAME_SUFFIX)])
        if found is None:
            raise DataFormatError(path, None, "its name has no frame number", f"NAME_<frame>{FRAME_SUFFIX}, as OpenPose writes")
        numbered.append((found["video"], int(found["frame"]), path))
    videos = {video: path for video, _, path in numbered}
    if len(videos) > 1:
        shown = ", ".join(p.name for p in list(videos.values())[:2])
        raise DataFormatError(folder, None, f"holds the frames of {len(videos)} videos ({shown})", "one folder per video")
    by_frame: dict[int, Path] = {}
    for _, frame, path in numbered:
        if frame in by_frame:
            raise DataFormatError(path, None, f"frame {frame} is also {by_frame[frame].name}", "one file per frame number")
        by_frame[frame] = path
    return [by_frame[frame] for frame in sorted(by_frame)]


def _people(path: Path) -> list[Keypoints]:
    """The persons of one frame file."""
    doc = load_json(path)
    people = doc.get("people") if isinstance(doc, dict) else None
    if not isinstance(people, list):
        problem = "is missing" if isinstance(doc, dict) else f"cannot be read from a top-level {type(doc).__name__}"
        raise DataFormatError(path, "field 'people'", problem, _PERSON)
    found = []
    for k, person in enumerate(people):
        where = f"field 'people[{k}].pose_keypoints_2d'"
        if not isinstance(person, dict) or "pose_keypoints_2d" not in person:
            raise DataFormatError(path, where, "is missing", _PERSON)
        flat = numbers(person["pose_keypoints_2d"], path, where, "a flat list [x0, y0, c0, x1, ...]")
        if len(flat) % 3:
            raise DataFormatError(path, where, f"has {len(flat)} values", "3 per keypoint (x, y, c)")
        track = track_id(person.get("person_id"), path, f"field 'people[{k}].person_id'")
        found.append(Keypoints(flat.reshape(-1, 3), None, track, path, where))
    return found


def read_sequence(path: Path, options: OpenposeOptions, layout: str | None = None) -> tuple[np.ndarray, SkeletonLayout]:
    """A sequence folder (or one frame file) -> ((T, max_persons, V, 3) float32, layout);
    ``layout`` overrides ``options.layout`` (see :func:`~skelmae.data.formats.tracks.keypoint_clip`)."""
    files = frame_files(path) if path.is_dir() else [path]
    return keypoint_clip([_people(file) for file in files], options, layout, path, "OpenPose")


def _sequences(raw: Sequence[Path], options: OpenposeOptions) -> dict[str, Path]:
    """Every folder holding frame files, named by the folder; a frame file given alone, by its name."""
    pairs = []
    for root in raw:
        if root.is_file():
            pairs.append((root.name.removesuffix(FRAME_SUFFIX).removesuffix(".json"), root))
            continue
        folders = {file.parent for file in files_under([root], (".json",), options) if file.name.endswith(FRAME_SUFFIX)}
        pairs.extend((folder.name, folder) for folder in sorted(folders))
    return named_sequences(pairs)


@FORMATS.register("openpose", config=OpenposeOptions)
class OpenPose(DatasetFormat):
    """OpenPose JSON (BODY_25 or COCO-18), one folder of frame files per sequence."""

    suffixes = (".json",)
    pose_file = "OpenPose *_keypoints.json frame folder"
    folders = True

    @classmethod
    def recognises(cls, path: Path) -> bool:
        if path.is_dir():
            return next(path.glob(f"*{FRAME_SUFFIX}"), None) is not None
        return path.name.endswith(FRAME_SUFFIX) or mentions(path, '"pose_keypoints_2d"')

    def read(self, path: Path) -> list[PoseSample]:
        """A folder of frame files (or one frame file) as one clip."""
        sequence, layout = read_sequence(path, self.options)
        return [PoseSample(path.name if path.is_dir() else path.stem, sequence, layout.name)]

    def plan(self, raw: Sequence[Path]) -> ImportPlan:
        """Every folder of frame files under ``raw``, one sequence each."""
        items = _sequences(raw, self.options)
        layout = first_readable(items, lambda path: read_sequence(path, self.options)[1].name, self.options.layout or "openpose_body25")
        return plan_sequences(
            "openpose", raw, items, functools.partial(clip_of, read_sequence, options=self.options, layout=layout),
            layout=layout, channels=CHANNELS_2D, options=self.options,
            source={"normalisation": normalisation_note(self.options.pixels()), "min_score": self.options.min_score},
            preprocessing=preprocessing_2d(self.options.pixels(), self.options.max_persons),
            notes=[f"{len(items)} sequence folder(s), layout {layout}, channels {', '.join(CHANNELS_2D)}"],
        )


"""MMPose / RTMPose inference JSON, one file per video (or image).

Accepted as the inference scripts write it:

- ``{"meta_info": ..., "instance_info": [...]}`` (``demo/topdown_demo_with_mmdet.py
  --save-predictions``), ``instance_info`` being either of:
- a list of frames ``{"frame_id": 1, "instances": [instance, ...]}`` (videos; the
  ``MMPoseInferencer`` writes this list alone), ordered by ``frame_id``;
- a list of instances: one image, a one-frame clip.

An instance is ``{"keypoints": [[x, y], ...], "keypoint_scores": [s, ...], "bbox_score": s,
"track_id": n}``; ``bbox_score`` and ``track_id`` are optional. 17 keypoints are COCO-17,
133 COCO-WholeBody, whose first 17 are the COCO-17 body (both layout ``coco17``), and 26
Halpe-26 (RTMPose ``body8-halpe26``; ``layout=coco17`` keeps its COCO-17 part).

Persons, confidence and 2D normalisation: see :mod:`skelmae.data.formats.tracks`; the
detection score is ``bbox_score`` (the detector's, by which PYSKL orders people), else the
mean keypoint score. MMPose predicts every keypoint, so only ``min_score`` makes some
undetected. ``data prepare mmpose`` imports every ``.json`` file under ``--raw``, one
sequence each, named by its file.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skelmae.data.formats.base import FORMATS, DatasetFormat, ImportPlan, PoseSample
from skelmae.data.formats.files import plan_sequences
from skelmae.data.formats.tracks import (
    CHANNELS_2D, Keypoints, PixelOptions, clip_of, files_under, first_readable, keypoint_clip, load_json, mentions,
    named_sequences, normalisation_note, preprocessing_2d, number, number_rows, numbers, track_id,
)
from skelmae.data.layouts import SkeletonLayout
from skelmae.errors import DataFormatError

__all__ = ["MmposeOptions", "MMPose", "read_sequence"]

_EXPECTED = "MMPose predictions: a list of {'frame_id', 'instances'} frames or of instances, or {'instance_info': ...}"


@dataclass(frozen=True)
class MmposeOptions(PixelOptions):
    """Labelling, persons, ``min_score``, ``image_size`` and ``layout`` (coco17 or halpe26)."""


def _frames(doc: Any, path: Path) -> list[tuple[str, Any]]:
    """(field, instances) of each frame, in frame order."""
    prefix = ""
    if isinstance(doc, dict):
        if "instance_info" not in doc:
            raise DataFormatError(path, "field 'instance_info'", "is missing", _EXPECTED)
        doc, prefix = doc["instance_info"], "instance_info"
    if not isinstance(doc, list) or not doc:
        raise DataFormatError(path, f"field '{prefix}'" if prefix else None, "holds no frame or instance", _EXPECTED)
    if not (isinstance(doc[0], dict) and ("instances" in doc[0] or "frame_id" in doc[0])):
        return [(f"{prefix}[{{k}}]", doc)]  # one image: the instances themselves
    by_frame: dict[int, tuple[str, Any]] = {}
    for t, entry in enumerate(doc):
        where = f"{prefix}[{t}]"
        if not isinstance(entry, dict) or "instances" not in entry:
            raise DataFormatError(path, f"field '{where}.instances'", "is missing", "a frame {'frame_id', 'instances'} like the first")
        frame = entry.get("frame_id")
        if isinstance(frame, bool) or not isinstance(frame, int):
            raise DataFormatError(path, f"field '{where}.frame_id'", f"is {frame!r}"[:60], "a whole frame number")
        if frame in by_frame:
            raise DataFormatError(path, f"field '{where}.frame_id'", f"frame {frame} is listed twice", "one entry per frame")
        by_frame[frame] = (f"{where}.instances[{{k}}]", entry["instances"])
    return [by_frame[frame] for frame in sorted(by_frame)]


def _instance(instance: Any, path: Path, where: str) -> Keypoints:
    if not isinstance(instance, dict):
        raise DataFormatError(path, f"field '{where}'", f"is a {type(instance).__name__}", "an instance {'keypoints', 'keypoint_scores'}")
    for key in ("keypoints", "keypoint_scores"):
        if key not in instance:
            raise DataFormatError(path, f"field '{where}.{key}'", "is missing", "an instance {'keypoints', 'keypoint_scores'}")
    xy = number_rows(instance["keypoints"], path, f"field '{where}.keypoints'", 2, "a list of [x, y] keypoints")
    scores = numbers(instance["keypoint_scores"], path, f"field '{where}.keypoint_scores'", "one score per keypoint")
    if len(scores) != len(xy):
        raise DataFormatError(path, f"field '{where}.keypoint_scores'", f"has {len(scores)} scores for {len(xy)} keypoints", "one per keypoint")
    score = instance.get("bbox_score")
    if isinstance(score, list) and len(score) == 1:
        score = score[0]
    score = None if score is None else number(score, path, f"field '{where}.bbox_score'")
    track = track_id(instance.get("track_id"), path, f"field '{where}.track_id'")
    return Keypoints(np.column_stack([xy, scores]), score, track, path, f"field '{where}.keypoints'")


def read_sequence(path: Path, options: MmposeOptions, layout: str | None = None) -> tuple[np.ndarray, SkeletonLayout]:
    """One MMPose JSON file -> ((T, max_persons, V, 3) float32, layout); ``layout`` overrides
    ``options.layout`` (see :func:`~skelmae.data.formats.tracks.keypoint_clip`)."""
    frames = []
    for pattern, instances in _frames(load_json(path), path):
        if not isinstance(instances, list):
            raise DataFormatError(path, f"field '{pattern.rsplit('[', 1)[0]}'", f"is a {type(instances).__name__}", "a list of instances")
        frames.append([_instance(instance, path, pattern.format(k=k)) for k, instance in enumerate(instances)])
    return keypoint_clip(frames, options, layout, path, "MMPose")


@FORMATS.register("mmpose", config=MmposeOptions)
class MMPose(DatasetFormat):
    """MMPose / RTMPose prediction JSON (COCO-17, COCO-WholeBody, Halpe-26), one file per video."""

    suffixes = (".json",)
    pose_file = "MMPose prediction .json"

    @classmethod
    def recognises(cls, path: Path) -> bool:
        return path.is_file() and (mentions(path, '"keypoint_scores"') or mentions(path, '"instance_info"'))

    def read(self, path: Path) -> list[PoseSample]:
        sequence, layout = read_sequence(path, self.options)
        return [PoseSample(path.stem, sequence, layout.name)]

    def plan(self, raw: Sequence[Path]) -> ImportPlan:
        """Every ``.json`` file under ``raw``, one sequence each."""
        items = named_sequences((path.stem, path) for path in files_under(raw, (".json",), self.options))
        layout = first_readable(items, lambda path: read_sequence(path, self.options)[1].name, self.options.layout or "coco17")
        return plan_sequences(
            "mmpose", raw, items, functools.partial(clip_of, read_sequence, options=self.options, layout=layout),
            layout=layout, channels=CHANNELS_2D, options=self.options,
            source={"normalisation": normalisation_note(self.options.pixels()), "min_score": self.options.min_score},
            preprocessing=preprocessing_2d(self.options.pixels(), self.options.max_persons),
            notes=[f"{len(items)} prediction file(s), layout {layout}, channels {', '.join(CHANNELS_2D)}"],
        )

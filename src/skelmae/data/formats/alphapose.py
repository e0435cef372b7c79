"""AlphaPose ``alphapose-results.json`` (its default COCO-style output), one file per video.

The file is a list of detections ``{"image_id": "12.jpg", "category_id": 1, "keypoints": [x0,
y0, s0, x1, ...], "score": s, "idx": n}``. 17 keypoints are COCO-17 (layout ``coco17``), 26
Halpe-26 (``halpe26``; ``layout=coco17`` keeps its COCO-17 part), 136 Halpe full-body and 133
COCO-WholeBody, whose bodies are their first 26 and 17 keypoints.

Frames: the detections of one ``image_id`` form a frame; frames are ordered by the number in
their image id (AlphaPose names video frames ``<n>.jpg``), or by first appearance when an id has
none. AlphaPose writes nothing for a frame without detections, so such frames are not in the
sequence.

Persons, confidence and 2D normalisation: see :mod:`skelmae.data.formats.tracks`. ``idx`` is
the track id when AlphaPose tracked (``--pose_track``, ``--detector tracker``; a list's first
entry is the person's own id); without tracking it writes the same id for everyone, so each
frame's people fill the slots by ``score``, AlphaPose's pose-NMS person score.

``data prepare alphapose`` imports every ``.json`` file under ``--raw``, one sequence each,
named by its file, or by its folder for the default name ``alphapose-results.json``.
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
    CHANNELS_2D, Keypoints, PixelOptions, clip_of, files_under, first_readable, frame_number, keypoint_clip, load_json,
    mentions, named_sequences, normalisation_note, preprocessing_2d, number, numbers, track_id,
)
from skelmae.data.layouts import SkeletonLayout
from skelmae.errors import DataFormatError

__all__ = ["AlphaposeOptions", "AlphaPose", "read_sequence", "RESULTS_NAME"]

RESULTS_NAME = "alphapose-results.json"
_EXPECTED = "a list of {'image_id', 'keypoints': [x, y, score, ...], 'score'} (alphapose-results.json)"


@dataclass(frozen=True)
class AlphaposeOptions(PixelOptions):
    """Labelling, persons, ``min_score``, ``image_size`` and ``layout`` (coco17 or halpe26)."""


def _frames(doc: Any, path: Path) -> list[list[Keypoints]]:
    """Every detection, grouped into frames by image id, in frame order."""
    if not isinstance(doc, list) or not doc:
        raise DataFormatError(path, None, f"is {'an empty list' if doc == [] else 'a ' + type(doc).__name__}", _EXPECTED)
    frames: dict[str, list[Keypoints]] = {}
    for k, entry in enumerate(doc):
        where = f"[{k}]"
        if not isinstance(entry, dict):
            raise DataFormatError(path, f"field '{where}'", f"is a {type(entry).__name__}", _EXPECTED)
        for key in ("image_id", "keypoints"):
            if key not in entry:
                raise DataFormatError(path, f"field '{where}.{key}'", "is missing", _EXPECTED)
        image = entry["image_id"]
        if isinstance(image, bool) or not isinstance(image, (str, int)):
            raise DataFormatError(path, f"field '{where}.image_id'", f"is {image!r}"[:60], "an image name or number")
        flat = numbers(entry["keypoints"], path, f"field '{where}.keypoints'", "a flat list [x0, y0, s0, x1, ...]")
        if len(flat) % 3:
            raise DataFormatError(path, f"field '{where}.keypoints'", f"has {len(flat)} values", "3 per keypoint (x, y, score)")
        score = None if entry.get("score") is None else number(entry["score"], path, f"field '{where}.score'")
        track = track_id(entry.get("idx"), path, f"field '{where}.idx'")
        frames.setdefault(str(image), []).append(Keypoints(flat.reshape(-1, 3), score, track, path, f"field '{where}.keypoints'"))
    numbers_of = {image: frame_number(image) for image in frames}
    order = list(frames)
    if all(n is not None for n in numbers_of.values()):
        order.sort(key=lambda image: numbers_of[image])
    return [frames[image] for image in order]


def read_sequence(path: Path, options: AlphaposeOptions, layout: str | None = None) -> tuple[np.ndarray, SkeletonLayout]:
    """One results file (or the folder of a default-named one) -> ((T, max_persons, V, 3)
    float32, layout); ``layout`` overrides ``options.layout`` (see
    :func:`~skelmae.data.formats.tracks.keypoint_clip`)."""
    path = path / RESULTS_NAME if path.is_dir() else path
    return keypoint_clip(_frames(load_json(path), path), options, layout, path, "AlphaPose")


def _named(path: Path) -> tuple[str, Path]:
    """A results file's sequence name and item: its folder for the default file name."""
    return (path.absolute().parent.name, path.parent) if path.name == RESULTS_NAME else (path.stem, path)


@FORMATS.register("alphapose", config=AlphaposeOptions)
class AlphaPose(DatasetFormat):
    """AlphaPose results JSON (COCO-17, Halpe-26/136, COCO-WholeBody), one file per video."""

    suffixes = (".json",)
    pose_file = "AlphaPose alphapose-results.json"

    @classmethod
    def recognises(cls, path: Path) -> bool:
        return path.is_file() and (path.name == RESULTS_NAME or mentions(path, '"image_id"', '"keypoints"'))

    def read(self, path: Path) -> list[PoseSample]:
        sequence, layout = read_sequence(path, self.options)
        return [PoseSample(_named(path)[0], sequence, layout.name)]

    def plan(self, raw: Sequence[Path]) -> ImportPlan:
        """Every ``.json`` file under ``raw``, one sequence each."""
        items = named_sequences(_named(path) for path in files_under(raw, (".json",), self.options))
        layout = first_readable(items, lambda item: read_sequence(item, self.options)[1].name, self.options.layout or "coco17")
        return plan_sequences(
            "alphapose", raw, items, functools.partial(clip_of, read_sequence, options=self.options, layout=layout),
            layout=layout, channels=CHANNELS_2D, options=self.options,
            source={"normalisation": normalisation_note(self.options.pixels()), "min_score": self.options.min_score},
            preprocessing=preprocessing_2d(self.options.pixels(), self.options.max_persons),
            notes=[f"{len(items)} results file(s), layout {layout}, channels {', '.join(CHANNELS_2D)}"],
        )


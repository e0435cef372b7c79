"""What the readers of pose-estimator outputs (OpenPose, MMPose, MediaPipe, AlphaPose) share:
their options, decoding their JSON, the layout a keypoint count gives, finding the sequences
of ``data prepare``, turning each frame's detections into person slots, and normalising 2D
(:func:`keypoint_clip` runs these last steps for the 2D estimators).

Person slots, as PYSKL's pose extraction fills them (:func:`assign_persons`):

- with track ids (every detection has one, and no frame holds an id twice), a slot is a
  track: the tracks are ranked by their total confidence (the sum of their detections'
  scores, so a long confident track beats a short one; ties: more frames, then the earlier
  start) and the best ``max_persons`` are kept, each in its slot for the whole clip;
- otherwise each frame's detections are ordered by score and fill the slots in that order,
  frame by frame (PYSKL's ``pose_inference``: slot j holds the j-th best detection).

A detection's score is the estimator's person score where it writes one, else the mean
confidence of its keypoints (undetected ones counting 0). Keypoints whose confidence is at
most ``min_score`` are undetected and stored as zeros; a detection without any detected
keypoint is dropped. Frames without detections stay zero.

2D normalisation (:func:`normalise_2d`): with the image size, PYSKL's ``(x - w/2) / (w/2)``,
``(y - h/2) / (h/2)``; without it, per clip: centred on the box around every detected
keypoint of the clip (all persons kept, all frames) and divided by half its larger side, so
the clip spans [-1, 1] along that side and keeps its aspect ratio. Undetected keypoints stay
(0, 0, score 0), as in PYSKL's padding. Channels: ``x, y, score`` (PYSKL's 2D import).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from skelmae.data.formats.base import FormatOptionError
from skelmae.data.formats.common import COORDINATE_LIMIT, checked_float32, read_text
from skelmae.data.formats.files import SequenceFileOptions
from skelmae.data.layouts import LayoutError, SkeletonLayout, get_layout
from skelmae.data.preprocessing import Preprocessing
from skelmae.errors import DataFormatError, SkelmaeError

__all__ = [
    "CHANNELS_2D", "CHANNELS_3D", "KEYPOINT_BODIES", "DetectionOptions", "PixelOptions", "Detection", "load_json", "mentions",
    "numbers", "number_rows", "number", "track_id", "frame_number", "MAX_FRAME_DIGITS", "detection", "assign_persons", "normalise_2d",
    "clip_2d", "clip_3d", "Keypoints", "keypoint_clip", "clip_of", "normalisation_note", "preprocessing_2d", "choose_layout", "files_under", "named_sequences", "first_readable",
]

T = TypeVar("T")
CHANNELS_2D = ["x", "y", "score"]
CHANNELS_3D = ["x", "y", "z"]
# keypoint count -> the layouts whose joints are its first keypoints, the default first: the
# COCO-WholeBody (133) and Halpe full-body (136) sets start with the COCO-17 / Halpe-26 body,
# and Halpe-26 starts with COCO-17
KEYPOINT_BODIES: dict[int, tuple[str, ...]] = {
    17: ("coco17",), 26: ("halpe26", "coco17"), 133: ("coco17",), 136: ("halpe26", "coco17"),
}
MAX_IMAGE_SIDE = 1_000_000  # pixels
SNIFF_BYTES = 65_536  # how much of a file --format auto looks at
_IMAGE_SIZE = re.compile(r"\s*([0-9]{1,7})\s*[xX]\s*([0-9]{1,7})\s*")
_NUMBER = re.compile(r"[0-9]+")
MAX_FRAME_DIGITS = 18  # a longer "frame number" is no frame number (and int64 holds 18 digits)


# -- options -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectionOptions(SequenceFileOptions):
    """The options of every pose-estimator format: labelling (see ``files``) and the confidence cut."""

    min_score: float = field(
        default=0.0, metadata={"help": "keypoints of at most this confidence are undetected, stored as 0 (default 0)"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.min_score, (int, float)) and math.isfinite(self.min_score) and self.min_score >= 0):
            raise FormatOptionError(f"min_score must be a number of at least 0, got {self.min_score!r}")


@dataclass(frozen=True)
class PixelOptions(DetectionOptions):
    """The options of the estimators writing pixel coordinates (OpenPose, MMPose, AlphaPose)."""

    image_size: str | None = field(
        default=None,
        metadata={"help": "WIDTHxHEIGHT of the video in pixels: normalise as PYSKL does (default: by the clip's keypoint box)"},
    )
    layout: str | SkeletonLayout | None = field(
        default=None, metadata={"help": "layout name (default: from the keypoint count)"},
    )
    bodies: ClassVar[Mapping[int, tuple[str, ...]]] = KEYPOINT_BODIES  # the layouts each keypoint count gives

    def __post_init__(self) -> None:
        super().__post_init__()
        self.pixels()
        if isinstance(self.layout, SkeletonLayout):
            object.__setattr__(self, "layout", self.layout.name)
        offered = sorted({name for names in self.bodies.values() for name in names})
        if self.layout is not None and self.layout not in offered:
            raise FormatOptionError(f"layout {self.layout!r} is not one this format gives; expected one of {offered}")

    def pixels(self) -> tuple[int, int] | None:
        """``image_size`` as (width, height), or None."""
        if self.image_size is None:
            return None
        found = _IMAGE_SIZE.fullmatch(str(self.image_size))
        size = (int(found[1]), int(found[2])) if found else None
        if size is None or not all(1 <= side <= MAX_IMAGE_SIDE for side in size):
            raise FormatOptionError(f"image_size must be WIDTHxHEIGHT in pixels (1..{MAX_IMAGE_SIDE:,}), e.g. 1920x1080; got {self.image_size!r}")
        return size


# -- decoding ------------------------------------------------------------------------------
def load_json(path: str | Path) -> Any:
    """The decoded JSON file; every way it can fail to decode is a :class:`DataFormatError`."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # an integer of more digits than Python converts; deep nesting
        raise DataFormatError(path, None, f"invalid JSON: {str(exc)[:80] or 'nested too deeply'}") from None


def mentions(path: Path, *needles: str) -> bool:
    """Whether the start of the file holds every one of ``needles``: the cheap look at a file's
    content that ``--format auto`` takes (see ``DatasetFormat.recognises``)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return False
    return all(needle in head for needle in needles)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_float64(values: list, path: str | Path, where: str, expected: str) -> np.ndarray:
    """The numbers as float64 after the float32 check every reader makes (finite, in range)."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except OverflowError:
        raise DataFormatError(path, where, "holds an integer too large for a coordinate", expected) from None
    return checked_float32(array, path, lambda _: where, "a value").astype(np.float64)


def numbers(value: Any, path: str | Path, where: str, expected: str = "a list of numbers") -> np.ndarray:
    """A JSON list of finite numbers as float64 (N,); anything else names ``where`` (a field)."""
    if not isinstance(value, list):
        raise DataFormatError(path, where, f"is {_shown(value)}", expected)
    for k, item in enumerate(value):
        if not _is_number(item):
            raise DataFormatError(path, where, f"value {k + 1} is {_shown(item)}", expected)
    return _as_float64(value, path, where, expected)


def number_rows(value: Any, path: str | Path, where: str, width: int, expected: str) -> np.ndarray:
    """A JSON list of lists of ``width`` finite numbers as float64 (N, width)."""
    if not isinstance(value, list):
        raise DataFormatError(path, where, f"is {_shown(value)}", expected)
    for k, row in enumerate(value):
        if not isinstance(row, list) or len(row) != width or not all(_is_number(v) for v in row):
            raise DataFormatError(path, where, f"[{k}] is {_shown(row)}", expected)
    return _as_float64(value, path, where, expected).reshape(len(value), width)


def number(value: Any, path: str | Path, where: str) -> float:
    """A finite JSON number within float32's range."""
    if not _is_number(value) or not abs(value) <= COORDINATE_LIMIT:  # NaN compares False
        raise DataFormatError(path, where, f"is {_shown(value)}", f"a finite number of magnitude up to {COORDINATE_LIMIT:.3g}")
    return float(value)


def track_id(value: Any, path: str | Path, where: str) -> int | None:
    """A track id: a whole number, or a list whose first entry is one (AlphaPose); None for
    none, for an empty list and for -1 (OpenPose's "not tracked")."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    if not _is_number(value) or not abs(value) <= COORDINATE_LIMIT or value != int(value):
        raise DataFormatError(path, where, f"is {_shown(value)}", "a whole-number track id (or a list starting with one)")
    return None if int(value) == -1 else int(value)


def frame_number(name: str) -> int | None:
    """The last number in a frame's name (``video_000000000012_keypoints`` -> 12), or None."""
    found = _NUMBER.findall(name)
    return int(found[-1]) if found and len(found[-1]) <= MAX_FRAME_DIGITS else None


def _shown(value: Any) -> str:
    """A JSON value as the file spells it, cut short for a message."""
    try:
        text = json.dumps(value[:8] if isinstance(value, list) else value)
    except (TypeError, ValueError, RecursionError):  # an integer of more digits than Python prints
        text = f"a {type(value).__name__} too long to show"
    return text if len(text) <= 40 else text[:37] + "..."


# -- sequences -----------------------------------------------------------------------------
def files_under(raw: Sequence[Path], suffixes: Sequence[str], options: SequenceFileOptions) -> list[Path]:
    """The files with one of ``suffixes`` among the given files and (recursively) folders,
    without the index and class-name files that the options name."""
    excluded = {p.resolve() for p in (options.index, options.class_names) if p is not None}
    found = []
    for root in raw:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        found.extend(p for p in paths if p.resolve() not in excluded)
    return found


def named_sequences(pairs: Iterable[tuple[str, Path]]) -> dict[str, Path]:
    """Sequence name -> its file or folder; a name twice is an error (a sample must not be imported twice)."""
    found: dict[str, Path] = {}
    for name, path in pairs:
        if name in found:
            raise DataFormatError(path, None, f"sequence {name} is also at {found[name]}", "each sequence once (distinct names)")
        found[name] = path
    return found


def first_readable(items: Mapping[str, Path], probe: Callable[[Path], T], default: T) -> T:
    """``probe`` of the first sequence that reads (the data set's layout comes from it): the
    first one's error when none reads, ``default`` when there is none (the planner says so)."""
    first: DataFormatError | None = None
    for path in items.values():
        try:
            return probe(path)
        except DataFormatError as exc:
            first = first or exc
    if first is not None:
        raise first
    return default


# -- layouts -------------------------------------------------------------------------------
def choose_layout(
    count: int, bodies: Mapping[int, Sequence[str]], wanted: str | None, path: str | Path, where: str, what: str,
) -> SkeletonLayout:
    """The layout of ``count`` keypoints: ``wanted`` if given (it must lead those keypoints),
    else the default of ``bodies`` (see :data:`KEYPOINT_BODIES`)."""
    if count not in bodies:
        counts = ", ".join(f"{n} ({'/'.join(names)})" for n, names in bodies.items())
        raise DataFormatError(path, where, f"has {count} keypoints", f"{what} keypoints: {counts}")
    if wanted is not None and wanted not in bodies[count]:
        raise DataFormatError(path, where, f"has {count} keypoints, which do not start with layout {wanted}", f"{what} keypoints of {'/'.join(bodies[count])}")
    try:
        return get_layout(wanted or bodies[count][0])
    except LayoutError as exc:
        raise SkelmaeError(str(exc)) from None


# -- person slots --------------------------------------------------------------------------
@dataclass(frozen=True)
class Detection:
    """One person in one frame: ``points`` (V, C) in the stored channels, its score, its track."""

    points: np.ndarray
    score: float
    track: int | None = None


def detection(
    points: np.ndarray, confidence: np.ndarray, min_score: float, score: float | None = None, track: int | None = None,
) -> Detection | None:
    """A detection whose keypoints of ``confidence`` at most ``min_score`` are zeroed; None when
    none is left. ``score`` defaults to the mean confidence of the detected keypoints over all."""
    detected = confidence > min_score
    if not detected.any():
        return None
    points = np.where(detected[:, None], points, 0.0)
    person = float(np.where(detected, confidence, 0.0).mean()) if score is None else score
    return Detection(points, person, track)


def assign_persons(frames: Sequence[Sequence[Detection]], max_persons: int, joints: int, channels: int) -> np.ndarray:
    """The detections of each frame in person slots: (T, max_persons, V, C) float64 (see the
    module docstring for the rule)."""
    clip = np.zeros((len(frames), max_persons, joints, channels), dtype=np.float64)
    if _tracked(frames):
        ranked = _ranked_tracks(frames)[:max_persons]
        slot = {track: k for k, track in enumerate(ranked)}
        for t, found in enumerate(frames):
            for person in found:
                if person.track in slot:
                    clip[t, slot[person.track]] = person.points
        return clip
    for t, found in enumerate(frames):
        for k, person in enumerate(sorted(found, key=lambda d: -d.score)[:max_persons]):
            clip[t, k] = person.points
    return clip


def _tracked(frames: Sequence[Sequence[Detection]]) -> bool:
    """Track ids are used when every detection has one and no frame holds one twice (AlphaPose
    without tracking writes the same id for every person)."""
    for found in frames:
        ids = [person.track for person in found]
        if None in ids or len(set(ids)) != len(ids):
            return False
    return any(frames)


def _ranked_tracks(frames: Sequence[Sequence[Detection]]) -> list[int]:
    total: dict[int, float] = {}
    length: dict[int, int] = {}
    start: dict[int, int] = {}
    for t, found in enumerate(frames):
        for person in found:
            total[person.track] = total.get(person.track, 0.0) + person.score
            length[person.track] = length.get(person.track, 0) + 1
            start.setdefault(person.track, t)
    return sorted(total, key=lambda track: (-total[track], -length[track], start[track], track))


# -- clips ---------------------------------------------------------------------------------
def normalise_2d(clip: np.ndarray, image_size: tuple[int, int] | None) -> np.ndarray:
    """(T, M, V, 3) x, y, score -> x, y normalised as the module docstring says; undetected
    keypoints (score 0) stay 0."""
    detected = clip[..., 2] > 0
    xy = clip[..., :2]
    if image_size is not None:
        centre = np.array(image_size, dtype=np.float64) / 2
        scale = centre
    else:
        points = xy[detected]
        low, high = points.min(axis=0), points.max(axis=0)
        centre = (low + high) / 2
        half = float((high - low).max()) / 2
        scale = np.full(2, half if half > 0 else 1.0)
    out = clip.copy()
    out[..., :2] = np.where(detected[..., None], (xy - centre) / scale, 0.0)
    return out


def normalisation_note(image_size: tuple[int, int] | None) -> str:
    """The 2D normalisation in words, for the data set's provenance."""
    if image_size is None:
        return "2D: centred on the clip's keypoint box, divided by half its larger side; undetected keypoints 0"
    w, h = image_size
    return f"2D: (x - w/2) / (w/2), (y - h/2) / (h/2) with w x h = {w}x{h} (PYSKL); undetected keypoints 0"


def preprocessing_2d(image_size: tuple[int, int] | None, persons: int, note: str = "") -> Preprocessing:
    """The record of the 2D normalisation, for prediction on bare arrays: PYSKL's by the image
    size (w, h), or, for the clip box, which a bare array cannot be given again, an unknown one."""
    slots = "person slots: tracks ranked by total confidence, else each frame's detections by score"
    if image_size is None:
        return Preprocessing(known=False, persons=persons, note=f"{normalisation_note(None)}; {slots}")
    width, height = image_size
    return Preprocessing(normalise_2d="image_size", image_size=(height, width), persons=persons, note="; ".join(filter(None, [note, slots])))


def _nobody(path: str | Path, where: str | None) -> DataFormatError:
    return DataFormatError(path, where, "no person is detected in any frame", "at least one detected keypoint")


def clip_2d(
    frames: Sequence[Sequence[Detection]], joints: int, max_persons: int, image_size: tuple[int, int] | None,
    path: str | Path, where: str | None = None,
) -> np.ndarray:
    """Detections (x, y, score points) -> the stored (T, max_persons, V, 3) float32 clip."""
    clip = assign_persons(frames, max_persons, joints, 3)
    if not (clip[..., 2] > 0).any():
        raise _nobody(path, where)
    checked_float32(clip, path, _frame_where(where), "a keypoint")
    with np.errstate(over="ignore", invalid="ignore"):
        normalised = normalise_2d(clip, image_size)
    return checked_float32(normalised, path, _frame_where(where), "a normalised keypoint (check the image size)")


@dataclass(frozen=True)
class Keypoints:
    """One person as a 2D estimator wrote it: (V, 3) x, y, confidence, its score and track id if
    it has them, and where it is (file and field), for errors."""

    points: np.ndarray
    score: float | None
    track: int | None
    path: Path
    where: str


def keypoint_clip(
    frames: Sequence[Sequence[Keypoints]], options: PixelOptions, layout: str | None, path: Path, estimator: str,
) -> tuple[np.ndarray, SkeletonLayout]:
    """The persons of each frame -> (the stored (T, max_persons, V, 3) float32 clip, its layout).
    The layout is ``layout``, else ``options.layout``, else the first person's keypoint count's;
    every person has as many keypoints as the first, of which the layout's leading ones are kept."""
    first = next((person for people in frames for person in people), None)
    if first is None:
        raise _nobody(path, None)
    count = len(first.points)
    chosen = choose_layout(count, options.bodies, layout or options.layout, first.path, first.where, estimator)
    detections = []
    for people in frames:
        kept = []
        for person in people:
            if len(person.points) != count:
                raise DataFormatError(person.path, person.where, f"has {len(person.points)} keypoints", f"{count} like the first person")
            body = person.points[: chosen.num_joints]
            found = detection(body, body[:, 2], options.min_score, person.score, person.track)
            if found is not None:
                kept.append(found)
        detections.append(kept)
    return clip_2d(detections, chosen.num_joints, options.max_persons, options.pixels(), path), chosen


def clip_of(read: Callable[..., tuple[np.ndarray, Any]], path: Path, **options: Any) -> np.ndarray:
    """The clip alone of a reader returning (clip, layout): the picklable ``load`` of a plan
    (with ``functools.partial``)."""
    return read(path, **options)[0]


def clip_3d(
    frames: Sequence[Sequence[Detection]], joints: int, max_persons: int, path: str | Path, where: str | None = None,
) -> np.ndarray:
    """Detections (x, y, z points) -> the stored (T, max_persons, V, 3) float32 clip, not centred."""
    clip = assign_persons(frames, max_persons, joints, 3)
    if not any(frames):
        raise _nobody(path, where)
    return checked_float32(clip, path, _frame_where(where), "a landmark")


def _frame_where(where: str | None) -> Callable[[int], str]:
    return lambda t: f"{where}, frame {t + 1}" if where else f"frame {t + 1}"

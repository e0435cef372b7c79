"""MediaPipe Pose landmarks (33, layout ``mediapipe33``), one CSV or JSON file per video.

``coordinates`` says which landmarks the file holds:

- ``image`` (default, ``pose_landmarks``): x and y divided by the image width and height,
  with ``visibility``: channels ``x, y, score``, x and y mapped to ``2x - 1``, ``2y - 1``, which
  is PYSKL's ``(x - w/2) / (w/2)`` since MediaPipe already divided by the image size (z, a
  relative depth, is left out);
- ``world`` (``pose_world_landmarks``): x, y, z in metres about the hips' midpoint: channels
  ``x, y, z``, centred like every 3D format on the layout's centre joint (``left_hip``) of the
  first frame (``center``); ``visibility`` is optional there.

CSV, with a header naming the columns, in either shape (told apart by the header; other
columns are ignored, and there is one pose per frame):

- one row per frame: ``<landmark>_x``, ``<landmark>_y``, ``<landmark>_z``, ``<landmark>_visibility``
  (or ``x15``, ``x_15``, ...) for the 33 landmarks, each named as MediaPipe names it
  (``left_wrist``) or by its index (``15``); a ``frame`` column, if there is one, orders the
  rows; a row whose landmark cells are all empty is a frame without a pose;
- one row per landmark: ``frame``, ``landmark`` (name or index), ``x``, ``y``, ``z``,
  ``visibility``; every frame lists all 33 landmarks, in any order.

JSON: a list of frames, each ``null`` or ``[]`` (no pose), a list of 33 landmarks ``{"x", "y",
"z", "visibility"}`` (one pose), a list of such lists (the Pose Landmarker's ``num_poses``),
or an object holding one of these under ``pose_landmarks`` / ``pose_world_landmarks``.

Several poses per frame fill the person slots by their mean visibility, frame by frame (there
are no track ids), and landmarks of visibility at most ``min_score`` are stored as 0 (see
:mod:`skelmae.data.formats.tracks`). ``data prepare mediapipe`` imports every ``.csv`` and
``.json`` file under ``--raw``, one sequence each, named by its file.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skelmae.data.formats.base import FORMATS, DatasetFormat, FormatOptionError, ImportPlan, PoseSample
from skelmae.data.formats.common import COORDINATE_LIMIT, centre_on_first_frame, read_text
from skelmae.data.formats.files import plan_sequences
from skelmae.data.formats.tracks import (
    CHANNELS_2D, CHANNELS_3D, MAX_FRAME_DIGITS, DetectionOptions, Detection, clip_2d, clip_3d, detection, files_under, load_json, mentions,
    named_sequences, number, preprocessing_2d,
)
from skelmae.data.layouts import get_layout
from skelmae.errors import DataFormatError

__all__ = ["MediapipeOptions", "MediaPipe", "read_sequence", "LAYOUT", "COORDINATES"]

LAYOUT = "mediapipe33"
JOINTS = 33
VALUES = ("x", "y", "z", "visibility")  # what a landmark holds, in this order
# coordinates -> (landmark values the file must hold, the JSON key of a frame object)
COORDINATES = {"image": (("x", "y", "visibility"), "pose_landmarks"), "world": (("x", "y", "z"), "pose_world_landmarks")}
IMAGE_FRACTIONS = "MediaPipe's x, y are fractions of the image width and height: stored as 2x - 1, 2y - 1"
_NAMED_COLUMN = re.compile(r"(?P<landmark>.+)_(?P<value>x|y|z|visibility)")
_NUMBERED_COLUMN = re.compile(r"(?P<value>x|y|z|visibility)_?(?P<landmark>[0-9]+)")
_INDEX = re.compile(r"[0-9]{1,2}")
_FRAME = re.compile(f"[0-9]{{1,{MAX_FRAME_DIGITS}}}")


@dataclass(frozen=True)
class MediapipeOptions(DetectionOptions):
    """Labelling, ``min_score``, ``coordinates`` (image or world) and persons (default 1)."""

    max_persons: int = field(default=1, metadata={"help": "persons kept per sample (default 1: MediaPipe Pose tracks one)"})
    coordinates: str = field(
        default="image",
        metadata={"help": "image (default; normalised x, y and visibility, 2D) or world (x, y, z in metres, 3D)"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.coordinates not in COORDINATES:
            raise FormatOptionError(f"coordinates must be one of {list(COORDINATES)}, got {self.coordinates!r}")

    @property
    def planar(self) -> bool:
        return self.coordinates == "image"


def _landmark(text: str) -> int | None:
    """A landmark index from its MediaPipe name or number."""
    names = get_layout(LAYOUT).joint_names
    if text in names:
        return names.index(text)
    return int(text) if _INDEX.fullmatch(text) and int(text) < JOINTS else None


def _wide_columns(header: list[str]) -> dict[tuple[int, int], int]:
    """(landmark, value) -> column of a one-row-per-frame header."""
    columns = {}
    for c, name in enumerate(header):
        found = _NAMED_COLUMN.fullmatch(name) or _NUMBERED_COLUMN.fullmatch(name)
        landmark = _landmark(found["landmark"]) if found else None
        if landmark is not None:
            columns[(landmark, VALUES.index(found["value"]))] = c
    return columns


def _header(row: list[str]) -> list[str]:
    """Column names as compared: stripped, lower case, without a spreadsheet's byte-order mark."""
    return [name.strip().lstrip("\ufeff").lower() for name in row]


def _is_long(header: list[str]) -> bool:
    return "landmark" in header and "x" in header


def _cell(row: list[str], column: int, path: Path, line: int, name: str) -> float | None:
    text = row[column].strip() if column < len(row) else ""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not abs(value) <= COORDINATE_LIMIT:  # NaN compares False
        raise DataFormatError(path, line, f"column {name!r} is {text[:40]!r}", f"a finite number of magnitude up to {COORDINATE_LIMIT:.3g}")
    return value


def _frame_number(row: list[str], column: int, path: Path, line: int) -> int:
    text = row[column].strip() if column < len(row) else ""
    if not _FRAME.fullmatch(text):
        raise DataFormatError(path, line, f"column 'frame' is {text[:40]!r}", f"a whole frame number of at most {MAX_FRAME_DIGITS} digits")
    return int(text)


def _csv_poses(path: Path, options: MediapipeOptions) -> list[list[np.ndarray]]:
    """The poses (33 x [x, y, z, visibility]) of each frame, none or one, in frame order."""
    text = read_text(path)
    reader = csv.reader(io.StringIO(text))
    try:
        header = _header(next(reader, []))
        rows = [(reader.line_num, row) for row in reader if row]  # a blank line is no frame
    except csv.Error as exc:
        raise DataFormatError(path, reader.line_num, f"not readable as CSV: {exc}", "comma-separated values") from None
    required = [VALUES.index(value) for value in COORDINATES[options.coordinates][0]]
    return (_long_poses if _is_long(header) else _wide_poses)(path, header, rows, required)


def _blank_pose(required: list[int]) -> np.ndarray:
    """Missing optional values: visibility 1, z 0."""
    pose = np.zeros((JOINTS, len(VALUES)))
    if VALUES.index("visibility") not in required:
        pose[:, VALUES.index("visibility")] = 1.0
    return pose


def _wide_poses(path: Path, header: list[str], rows: list, required: list[int]) -> list[list[np.ndarray]]:
    columns = _wide_columns(header)
    for landmark in range(JOINTS):
        for value in required:
            if (landmark, value) not in columns:
                name = f"{get_layout(LAYOUT).joint_names[landmark]}_{VALUES[value]}"
                raise DataFormatError(path, 1, f"the header has no column {name!r}", "one column per landmark and value, e.g. nose_x, or x0")
    used = {key: column for key, column in columns.items() if key[1] in required or key[1] == VALUES.index("visibility")}
    frame_column = header.index("frame") if "frame" in header else None
    found = []
    for line, row in rows:
        values = {key: _cell(row, column, path, line, header[column]) for key, column in used.items()}
        if all(v is None for v in values.values()):
            poses = []
        else:
            pose = _blank_pose(required)
            for (landmark, value), v in values.items():
                if v is None and value in required:
                    raise DataFormatError(path, line, f"column {header[used[(landmark, value)]]!r} is empty", "a number (or the whole row empty: no pose)")
                if v is not None:
                    pose[landmark, value] = v
            poses = [pose]
        order = _frame_number(row, frame_column, path, line) if frame_column is not None else len(found)
        found.append((order, line, poses))
    return _in_frame_order(path, found)


def _long_poses(path: Path, header: list[str], rows: list, required: list[int]) -> list[list[np.ndarray]]:
    for name in ("frame", *(VALUES[value] for value in required)):
        if name not in header:
            raise DataFormatError(path, 1, f"the header has no column {name!r}", "frame, landmark, x, y, z, visibility")
    value_columns = {
        value: header.index(name) for value, name in enumerate(VALUES) if name in header and (value in required or name == "visibility")
    }
    frames: dict[int, tuple[int, np.ndarray, set[int]]] = {}
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        frame = _frame_number(row, header.index("frame"), path, line)
        cell = row[header.index("landmark")].strip().lower() if header.index("landmark") < len(row) else ""
        landmark = _landmark(cell)
        if landmark is None:
            raise DataFormatError(path, line, f"column 'landmark' is {cell[:40]!r}", "a MediaPipe landmark name or 0..32")
        first_line, pose, seen = frames.setdefault(frame, (line, _blank_pose(required), set()))
        if landmark in seen:
            raise DataFormatError(path, line, f"frame {frame} lists landmark {cell!r} twice", "each landmark once per frame")
        seen.add(landmark)
        for value, column in value_columns.items():
            v = _cell(row, column, path, line, VALUES[value])
            if v is None and value in required:
                raise DataFormatError(path, line, f"column {VALUES[value]!r} is empty", "a number")
            if v is not None:
                pose[landmark, value] = v
    for frame, (line, _, seen) in frames.items():
        if len(seen) != JOINTS:
            raise DataFormatError(path, line, f"frame {frame} lists {len(seen)} of the 33 landmarks", "all 33 landmarks of every frame")
    return _in_frame_order(path, [(frame, line, [pose]) for frame, (line, pose, _) in frames.items()])


def _in_frame_order(path: Path, found: list[tuple[int, int, list[np.ndarray]]]) -> list[list[np.ndarray]]:
    by_frame: dict[int, int] = {}
    for order, line, _ in found:
        if order in by_frame:
            raise DataFormatError(path, line, f"frame {order} is also on line {by_frame[order]}", "one row per frame")
        by_frame[order] = line
    return [poses for _, _, poses in sorted(found, key=lambda entry: entry[0])]


def _json_poses(path: Path, options: MediapipeOptions) -> list[list[np.ndarray]]:
    doc = load_json(path)
    if not isinstance(doc, list):
        raise DataFormatError(path, None, f"top level is a {type(doc).__name__}", "a list of frames of 33 landmarks")
    required_names, key = COORDINATES[options.coordinates]
    required = [VALUES.index(value) for value in required_names]
    found = []
    for t, frame in enumerate(doc):
        where = f"[{t}]"
        if isinstance(frame, dict):
            if key not in frame:
                raise DataFormatError(path, f"field '{where}.{key}'", "is missing", f"the {options.coordinates} landmarks of the frame")
            frame, where = frame[key], f"{where}.{key}"
        if frame is None:
            frame = []
        if not isinstance(frame, list):
            raise DataFormatError(path, f"field '{where}'", f"is a {type(frame).__name__}", "a list of 33 landmarks, or of poses")
        several = bool(frame) and all(isinstance(pose, list) for pose in frame)
        poses = frame if several else [frame] if frame else []
        found.append([_json_pose(pose, path, f"{where}[{p}]" if several else where, required) for p, pose in enumerate(poses)])
    return found


def _json_pose(pose: list, path: Path, where: str, required: list[int]) -> np.ndarray:
    if len(pose) != JOINTS:
        raise DataFormatError(path, f"field '{where}'", f"has {len(pose)} landmarks", f"{JOINTS} (MediaPipe Pose)")
    values = _blank_pose(required)
    for j, landmark in enumerate(pose):
        if not isinstance(landmark, dict):
            raise DataFormatError(path, f"field '{where}[{j}]'", f"is a {type(landmark).__name__}", "a landmark {x, y, z, visibility}")
        for value, name in enumerate(VALUES):
            if name in landmark:
                values[j, value] = number(landmark[name], path, f"field '{where}[{j}].{name}'")
            elif value in required:
                raise DataFormatError(path, f"field '{where}[{j}].{name}'", "is missing", "a landmark {x, y, z, visibility}")
    return values


def read_sequence(path: Path, options: MediapipeOptions) -> np.ndarray:
    """One CSV or JSON file -> (T, max_persons, 33, 3) float32, 2D normalised, 3D not centred."""
    frames = (_json_poses if path.suffix.lower() == ".json" else _csv_poses)(path, options)
    if not frames:
        raise DataFormatError(path, None, "holds no frame", "one frame per row (CSV) or list entry (JSON)")
    visibility = VALUES.index("visibility")
    channels = [0, 1, visibility] if options.planar else [0, 1, 2]
    detections: list[list[Detection]] = [
        [found for pose in poses if (found := detection(pose[:, channels], pose[:, visibility], options.min_score)) is not None]
        for poses in frames
    ]
    if options.planar:
        return clip_2d(detections, JOINTS, options.max_persons, (1, 1), path)
    return clip_3d(detections, JOINTS, options.max_persons, path)


@FORMATS.register("mediapipe", config=MediapipeOptions)
class MediaPipe(DatasetFormat):
    """MediaPipe Pose landmarks (33), image or world coordinates, one CSV or JSON file per video."""

    suffixes = (".csv", ".json")
    pose_file = "MediaPipe landmark .csv/.json"

    @classmethod
    def recognises(cls, path: Path) -> bool:
        if not path.is_file():
            return False
        if path.suffix.lower() == ".json":
            return mentions(path, '"visibility"')
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                header = _header(next(csv.reader([fh.readline(65_536)]), []))
        except OSError:
            return False
        return _is_long(header) or len({key[0] for key in _wide_columns(header)}) == JOINTS

    def read(self, path: Path) -> list[PoseSample]:
        sequence = read_sequence(path, self.options)
        if not self.options.planar and self.options.center:
            centred = centre_on_first_frame(sequence, get_layout(LAYOUT).center)
            if centred is None:
                raise DataFormatError(path, None, "person 1 is never present (every value is zero)", "detected landmarks")
            sequence = centred
        return [PoseSample(path.stem, sequence, LAYOUT)]

    def plan(self, raw: Sequence[Path]) -> ImportPlan:
        """Every ``.csv`` and ``.json`` file under ``raw``, one sequence each."""
        items = named_sequences((path.stem, path) for path in files_under(raw, (".csv", ".json"), self.options))
        channels = CHANNELS_2D if self.options.planar else CHANNELS_3D
        normalisation = (
            "2D: 2x - 1, 2y - 1 of MediaPipe's x, y in image widths and heights (PYSKL's normalisation); undetected landmarks 0"
            if self.options.planar else "3D: metres about the hips' midpoint (MediaPipe world landmarks)"
        )
        return plan_sequences(
            "mediapipe", raw, items, functools.partial(read_sequence, options=self.options),
            layout=LAYOUT, channels=channels, options=self.options,
            source={"coordinates": self.options.coordinates, "normalisation": normalisation, "min_score": self.options.min_score},
            preprocessing=preprocessing_2d((1, 1), self.options.max_persons, IMAGE_FRACTIONS) if self.options.planar else None,
            notes=[f"{len(items)} landmark file(s), {self.options.coordinates} coordinates, channels {', '.join(channels)}"],
        )

"""PYSKL / MMAction2 skeleton annotation pickles (FineGym, Diving48, NTU-2D/3D, own HRNet data).

A pickle holds ``{"split": {name: [frame_dir, ...]}, "annotations": [ann, ...]}`` (a bare
list of annotations is accepted too); each annotation has ``frame_dir``, ``label``,
``keypoint`` (M, T, V, C) and, for 2D pose, ``keypoint_score`` (M, T, V) and
``img_shape`` (h, w).

Decoding: a pickle can run code, so it is read only when the user names this format,
and then with an unpickler that accepts nothing but numpy arrays and plain containers, after
a scan that refuses anything making it allocate more memory than the file holds.

Conversion (:func:`annotation_to_sequence`):

- 2D (C = 2, or C = 3 with ``img_shape``, the third channel then being the score):
  channels ``x, y, score``; pixel coordinates are centred by ``img_shape`` and divided by
  half its size, as PYSKL's ``PreNormalize2D`` does, so every clip spans about [-1, 1]
  whatever its resolution. Undetected keypoints (at exactly (0, 0) with score 0, PYSKL's
  padding) stay 0 instead of moving to (-1, -1), so absent persons still read as absent.
- 3D (C = 3 without ``img_shape``): channels ``x, y, z``, centred like NTU on the layout's
  centre joint of person 1 in its first present frame.
- Persons: the first ``num_persons`` (default 2, as PYSKL's ``FormatGCNInput``), zero
  padded. The layout follows from V (17 -> coco17, 25 -> ntu25, 20 -> kinect20) unless
  given.

Labels are stored 0-based: ``label_base="auto"`` treats a pickle whose smallest label is 1
as 1-based. Every label must name a class: one of ``--class-names`` when given, else one of
at most :data:`~skelmae.data.formats.common.MAX_CLASSES`. Split names are kept as they are
(e.g. ``xsub_train``, ``xsub_val``) and must be plain file names.

Where PYSKL differs: its 3D pipelines (``PreNormalize3D``) also keep only the frames in which
the person present in more frames appears (putting that person first) and rotate each clip so
that its spine and shoulders lie along fixed axes; the training option ``data.align_view``
does the rotation at load time instead. Its 2D normalisation is the same, but later PYSKL
versions zero every keypoint of score at most 0.01, while here only PYSKL's padding
(0, 0, score 0) stays 0.
"""

from __future__ import annotations

import functools
import io
import pickle
import pickletools
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skelmae.data.formats import ntu
from skelmae.data.formats.base import FORMATS, DatasetFormat, FormatOptionError, ImportPlan, Loaded, PoseSample, Sample
from skelmae.data.formats.common import (
    COORDINATE_LIMIT, MAX_CLASSES, centre_on_first_frame, check_labels, checked_float32, read_class_names,
)
from skelmae.data.layouts import LayoutError, SkeletonLayout, get_layout
from skelmae.data.preprocessing import Preprocessing
from skelmae.errors import DataFormatError, SkelmaeError

__all__ = ["load_pickle", "unpickle_arrays", "annotation_to_sequence", "LAYOUT_BY_JOINTS", "PysklOptions", "Pyskl"]

LAYOUT_BY_JOINTS = {17: "coco17", 25: "ntu25", 20: "kinect20"}
CHANNELS_2D = ["x", "y", "score"]
CHANNELS_3D = ["x", "y", "z"]
MAX_IMAGE_SIDE = 1_000_000  # pixels; the image size is stored as per-sample metadata
_SPLIT_NAME = re.compile(r"[\w.-]+", re.ASCII)  # a split is stored as splits/<name>.npy


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's array pickles start from an empty array that the pickle's bytes then fill; only
    that is accepted, so a pickle cannot allocate memory its bytes do not hold."""
    if subtype is not _NDARRAY or shape != (0,):
        raise pickle.UnpicklingError("it reconstructs an array in a way numpy's own pickles never do")
    core = getattr(np, "_core", None) or np.core
    return core.multiarray._reconstruct(np.ndarray, shape, dtype)


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` in a pickle: it can name the class of an array, not create one."""

    def __call__(self, *args: Any) -> None:
        raise pickle.UnpicklingError("it calls numpy.ndarray, which allocates memory its bytes do not hold")


_NDARRAY = _NdarrayToken()


def _numpy_global(module: str, name: str) -> Any:
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core; pickles use either name
    allowed = {
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.multiarray", "scalar"): core.multiarray.scalar,
        ("numpy._core.multiarray", "scalar"): core.multiarray.scalar,
        ("numpy.core.numeric", "_frombuffer"): core.numeric._frombuffer,  # pickle protocol 5: a view of its bytes
        ("numpy._core.numeric", "_frombuffer"): core.numeric._frombuffer,
        ("collections", "OrderedDict"): __import__("collections").OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
    }
    if (module, name) in allowed:
        return allowed[(module, name)]
    if module == "numpy.dtypes" and name.endswith("DType"):  # numpy >= 1.25 dtype classes
        return getattr(np.dtypes, name)
    raise pickle.UnpicklingError(f"it references {module}.{name}; only numpy arrays and plain containers are accepted")


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return _numpy_global(module, name)


def unpickle_arrays(path: str | Path) -> Any:
    """Decode a pickle that may hold only numpy arrays and plain containers: a pose file
    never needs more, and anything else could run code while it loads."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataFormatError(path, None, f"cannot read the file ({exc.strerror or exc})") from exc
    try:
        _check_opcodes(data)
        return _ArraysOnlyUnpickler(io.BytesIO(data)).load()
    except MemoryError:  # not a damaged file: memory is bounded by the file's size (see _check_opcodes)
        raise
    except Exception as exc:  # a corrupt pickle can fail in many ways; all mean "not a valid file"
        raise DataFormatError(path, None, f"not a readable PYSKL pickle: {exc}", "a pickle written by PYSKL/MMAction2") from None


def _check_opcodes(data: bytes) -> None:
    """Refuse what would make the unpickler allocate more than the file holds, before it runs.

    The C unpickler sizes its memo table by the largest index a PUT names, and allocates a
    counted bytes object before reading it. ``pickletools`` reads every counted length against
    the bytes that remain (raising where they run out), and memo indexes must count up from 0
    as every pickler writes them. Scanning costs a fraction of the load itself.
    """
    stored = 0
    with warnings.catch_warnings():  # pickletools warns about odd escapes in protocol-0 strings
        warnings.simplefilter("ignore", DeprecationWarning)
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                if arg > stored:
                    raise pickle.UnpicklingError(f"it stores memo entry {arg} after only {stored} entries")
                stored += 1
            elif opcode.name == "MEMOIZE":
                stored += 1


def load_pickle(path: str | Path) -> dict[str, Any]:
    """Decode a PYSKL pickle (numpy arrays and containers only) -> {"split": ..., "annotations": [...]}."""
    content = unpickle_arrays(path)
    if isinstance(content, list):
        content = {"annotations": content}
    if not isinstance(content, dict) or not isinstance(content.get("annotations"), list):
        raise DataFormatError(path, "field 'annotations'", "is missing", "a dict with 'split' and an 'annotations' list")
    split = content.get("split", {})
    if not isinstance(split, dict) or not all(
        isinstance(k, str) and isinstance(v, (list, tuple)) for k, v in split.items()
    ):
        raise DataFormatError(path, "field 'split'", "is not a mapping of split names to lists", "{'xsub_train': [frame_dir, ...], ...}")
    for name in split:
        if not _SPLIT_NAME.fullmatch(name) or set(name) == {"."}:
            raise DataFormatError(path, "field 'split'", f"has a split named {name[:40]!r}", "names of letters, digits, '_', '-' and '.'")
    return {"split": split, "annotations": content["annotations"]}


def _array(ann: dict, key: str, ndim: int, path: str | Path, where: str) -> np.ndarray:
    value = ann.get(key)
    if not isinstance(value, np.ndarray) or value.ndim != ndim or value.dtype.kind not in "fiu" or 0 in value.shape:
        shape = getattr(value, "shape", type(value).__name__)
        raise DataFormatError(path, f"{where}.{key}", f"is {shape}", f"a non-empty numeric array with {ndim} dimensions")
    return checked_float32(value, path, lambda _: f"{where}.{key}", key)


def _img_shape(ann: dict, path: str | Path, where: str) -> tuple[float, float]:
    shape = ann.get("img_shape")
    try:
        h, w = (float(v) for v in shape)
    except (TypeError, ValueError, OverflowError):
        raise DataFormatError(path, f"{where}.img_shape", f"is {shape!r}", "(height, width) in pixels") from None
    if not (0 < h <= MAX_IMAGE_SIDE and 0 < w <= MAX_IMAGE_SIDE):
        raise DataFormatError(
            path, f"{where}.img_shape", f"is {shape!r}", f"positive (height, width) of at most {MAX_IMAGE_SIDE:,} pixels",
        )
    return h, w


def annotation_to_sequence(
    ann: dict,
    num_persons: int = 2,
    layout: str | SkeletonLayout | None = None,
    path: str | Path = "<annotation>",
    where: str = "annotation",
) -> tuple[np.ndarray, str]:
    """One PYSKL annotation -> ((T, num_persons, V, C) float32, layout name), as ``data prepare pyskl`` stores it."""
    seq, layout_name, _ = _to_sequence(ann, num_persons, layout, path, where)
    return seq, layout_name


def _to_sequence(
    ann: dict, num_persons: int, layout: str | SkeletonLayout | None, path: str | Path, where: str,
) -> tuple[np.ndarray, str, list[str]]:
    if not isinstance(ann, dict):
        raise DataFormatError(path, where, f"is a {type(ann).__name__}", "a dict")
    keypoint = _array(ann, "keypoint", 4, path, where)  # (M, T, V, C)
    persons, frames, joints, coords = keypoint.shape
    if layout is None:
        if joints not in LAYOUT_BY_JOINTS:
            raise DataFormatError(
                path, f"{where}.keypoint", f"has {joints} joints", f"one of {sorted(LAYOUT_BY_JOINTS)}, or a layout given with --layout",
            )
        layout = LAYOUT_BY_JOINTS[joints]
    try:
        layout = get_layout(layout)
    except LayoutError as exc:
        raise SkelmaeError(str(exc)) from None
    if layout.num_joints != joints:
        raise DataFormatError(path, f"{where}.keypoint", f"has {joints} joints", f"{layout.num_joints} (layout {layout.name})")
    if coords not in (2, 3):
        raise DataFormatError(path, f"{where}.keypoint", f"has {coords} values per joint", "2 (x, y) or 3 (x, y, z or score)")
    planar = coords == 2 or "img_shape" in ann
    if planar:
        xy = keypoint[..., :2]
        if coords == 3:
            score = keypoint[..., 2]
        elif "keypoint_score" in ann:
            score = _array(ann, "keypoint_score", 3, path, where)
            if score.shape != keypoint.shape[:3]:
                raise DataFormatError(path, f"{where}.keypoint_score", f"is {score.shape}", f"{keypoint.shape[:3]} like keypoint")
        else:
            score = np.ones(keypoint.shape[:3], np.float32)
        h, w = _img_shape(ann, path, where)
        undetected = (xy == 0).all(axis=-1) & (score == 0)
        scale = np.array([w / 2, h / 2], dtype=np.float32)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            xy = (xy - scale) / scale
        if not (np.abs(xy) <= COORDINATE_LIMIT).all():
            raise DataFormatError(path, f"{where}.img_shape", f"is {ann.get('img_shape')!r}: coordinates overflow", "the image size in pixels")
        xy[undetected] = 0
        values = np.concatenate([xy, score[..., None]], axis=-1)
    else:
        values = keypoint
    seq = np.zeros((frames, num_persons, joints, values.shape[-1]), dtype=np.float32)
    kept = min(persons, num_persons)
    seq[:, :kept] = values[:kept].transpose(1, 0, 2, 3)
    if not planar:
        centred = centre_on_first_frame(seq, layout.center)
        seq = seq if centred is None else centred
    return seq, layout.name, CHANNELS_2D if planar else CHANNELS_3D


def _convert(item: tuple[int, dict], path: Path, num_persons: int, layout: str | None, channels: list[str],
             base: int, memberships: dict[str, tuple[str, ...]], ntu_names: bool) -> Loaded:
    index, ann = item
    where = f"annotations[{index}]"
    seq, _, found = _to_sequence(ann, num_persons, layout, path, where)
    if found != channels:
        raise DataFormatError(path, f"{where}.keypoint", f"gives channels {found}", f"{channels} like the first annotation")
    name = str(ann.get("frame_dir", index))
    if "\n" in name or "\r" in name:
        raise DataFormatError(path, f"{where}.frame_dir", f"is {name[:40]!r}", "a name without line breaks")
    meta: dict[str, int] = {}
    if "img_shape" in ann:
        h, w = _img_shape(ann, path, where)
        meta.update(img_h=int(round(h)), img_w=int(round(w)))
    if ntu_names:
        meta.update(ntu.parse_name(name))
    return Loaded([Sample(seq, int(ann["label"]) - base, name, meta, memberships.get(name, ()))])


def _labels(annotations: list, path: Path) -> np.ndarray:
    """The labels as given (an object array: a damaged one may exceed int64)."""
    labels = []
    for i, ann in enumerate(annotations):
        label = ann.get("label") if isinstance(ann, dict) else None
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
            raise DataFormatError(path, f"annotations[{i}].label", f"is {label!r}", "an integer class index")
        labels.append(int(label))
    return np.array(labels, dtype=object)


def _annotations(content: Any, path: Path) -> list[dict[str, Any]]:
    """The annotations of a pose file: one annotation dict, a list of them, or a whole PYSKL file."""
    if isinstance(content, dict) and "annotations" in content:
        content = content["annotations"]
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list) or not content or not all(isinstance(a, dict) for a in content):
        raise DataFormatError(
            path, None, f"a pickled {type(content).__name__} is not PYSKL annotations",
            "one annotation dict, a list of them, or a dict with 'annotations'",
        )
    return content


def _common_image_size(annotations: list, path: Path) -> tuple[float, float] | None:
    """The (h, w) that every annotation shares, or None where they differ: each clip was then
    normalised by its own size, which a prediction input must bring along."""
    sizes = set()
    for i, ann in enumerate(annotations):
        try:
            sizes.add(_img_shape(ann, path, f"annotations[{i}]"))
        except DataFormatError:  # refused when that annotation is converted
            continue
    return sizes.pop() if len(sizes) == 1 else None


@dataclass(frozen=True)
class PysklOptions:
    max_persons: int = field(default=2, metadata={"help": "persons kept per sample (default 2)"})
    label_base: str = field(default="auto", metadata={"help": "auto (default), 0 or 1"})
    layout: str | SkeletonLayout | None = field(
        default=None, metadata={"help": "layout name or YAML file (default: from the joint count)"},
    )
    class_names: Path | None = field(default=None, metadata={"help": "text file with one class name per line"})

    def __post_init__(self) -> None:
        if self.label_base not in ("auto", "0", "1"):
            raise FormatOptionError(f"label_base must be auto, 0 or 1, got {self.label_base!r}")
        if self.max_persons < 1:
            raise FormatOptionError(f"max_persons must be at least 1, got {self.max_persons}")


@FORMATS.register("pyskl", config=PysklOptions)
class Pyskl(DatasetFormat):
    """PYSKL / MMAction2 skeleton annotation pickles (2D or 3D)."""

    suffixes = (".pkl", ".pickle")
    pose_file = "PYSKL pickles"
    unsafe = "is a pickle, and unpickling runs code from the file"

    def read(self, path: Path) -> list[PoseSample]:
        """One sample per annotation, named by ``frame_dir``."""
        samples = []
        for i, ann in enumerate(_annotations(unpickle_arrays(path), path)):
            sequence, found = annotation_to_sequence(ann, self.options.max_persons, self.options.layout, path, f"annotation {i}")
            samples.append(PoseSample(str(ann.get("frame_dir", f"{path.stem}[{i}]")), sequence, found))
        return samples

    def plan(self, raw: Sequence[Path]) -> ImportPlan:
        """One PYSKL annotation pickle."""
        if len(raw) != 1 or not raw[0].is_file():
            raise SkelmaeError("pyskl takes exactly one annotation pickle: --raw FILE.pkl")
        max_persons, layout = self.options.max_persons, self.options.layout
        path = raw[0]
        content = load_pickle(path)
        annotations = content["annotations"]
        if not annotations:
            raise DataFormatError(path, "field 'annotations'", "is empty", "at least one annotation")
        labels = _labels(annotations, path)
        label_base = self.options.label_base
        base = (1 if min(labels) == 1 else 0) if label_base == "auto" else int(label_base)
        names = [str(a.get("frame_dir", i)) for i, a in enumerate(annotations)]
        ntu_names = all(ntu.parse_name(n) is not None for n in names)
        if self.options.class_names is not None:
            classes = read_class_names(self.options.class_names)
            allowed, source = len(classes), f"one per class in {self.options.class_names}"
        else:
            allowed, source = MAX_CLASSES, f"at most {MAX_CLASSES:,} classes without --class-names"
        check_labels(
            labels, allowed, base, path, lambda i: f"annotations[{i}].label (sample {names[i][:40]!r})", f"{source}, label base {base}",
        )
        _, layout_name, channels = _to_sequence(annotations[0], max_persons, layout, path, "annotations[0]")
        if self.options.class_names is None:
            num_classes = int(max(labels)) - base + 1
            if ntu_names and num_classes <= 120 and all(
                ntu.parse_name(n)["action"] - 1 == label - base for n, label in zip(names, labels)
            ):
                classes = ntu.class_names("ntu120" if num_classes > 60 else "ntu60")
            else:
                classes = [f"class {i}" for i in range(num_classes)]
        known = set(names)
        memberships: dict[str, list[str]] = {}
        unmatched = 0
        for split, members in content["split"].items():
            for member in members:
                if str(member) in known:
                    memberships.setdefault(str(member), []).append(split)
                else:
                    unmatched += 1
        notes = [f"{len(annotations)} annotation(s), labels {base}-based, layout {layout_name}, channels {', '.join(channels)}"]
        if unmatched:
            notes.append(f"{unmatched} split entr(y/ies) name no annotation (ignored, as PYSKL does)")
        if channels == CHANNELS_2D:
            preprocessing = Preprocessing(
                normalise_2d="image_size", image_size=_common_image_size(annotations, path), persons=max_persons,
                note="PYSKL PreNormalize2D, undetected keypoints (0, 0, score 0) kept at 0",
            )
        else:
            preprocessing = Preprocessing.centred(get_layout(layout or layout_name), persons=max_persons)
        return ImportPlan(
            format="pyskl", name=path.stem, raw=str(path), layout=layout_name, channels=channels,
            num_persons=max_persons, classes=classes, split_names=list(content["split"]),
            source={"raw": str(path), "label_base": base, "max_persons": max_persons},
            items=list(enumerate(annotations)),
            load=functools.partial(
                _convert, path=path, num_persons=max_persons, layout=layout_name, channels=channels, base=base,
                memberships={k: tuple(v) for k, v in memberships.items()}, ntu_names=ntu_names,
            ),
            total=len(annotations), parallel=False, unit="annotation", notes=notes, preprocessing=preprocessing,
        )

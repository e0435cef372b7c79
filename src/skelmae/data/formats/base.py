"""What a dataset format provides, and the registry that ``data prepare`` and ``predict`` read.

A format is one class registered in :data:`FORMATS` under its name, with a typed options
dataclass (or none); each options field carries a ``help`` text for the command line. The
class implements one or both of:

- ``plan(raw) -> ImportPlan``: how ``skelmae data prepare`` imports the raw data: dataset
  facts plus work items and a picklable ``load`` turning one item into samples
  (:mod:`skelmae.data.prepare` runs the plan);
- ``read(path) -> list[PoseSample]``: the clips of one file (or folder, with ``folders``),
  for ``skelmae predict``, with ``suffixes`` and ``recognises`` to choose the format by file
  name and content.

A plan records what its import does to the coordinates as a
:class:`~skelmae.data.preprocessing.Preprocessing` (``ImportPlan.preprocessing``, written to
the manifest); a reader whose clips still lack those steps returns them with
``PoseSample.preprocessed=False``, so that prediction applies the dataset's record.

A new format is therefore one module: :func:`skelmae.data.prepare.prepare`,
:func:`read_pose_file` and the command line list and accept it from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, ClassVar

import numpy as np

from skelmae.data.layouts import SkeletonLayout, available_layouts, get_layout
from skelmae.data.preprocessing import Preprocessing
from skelmae.errors import DataFormatError, SkelmaeError
from skelmae.registry import Registry

__all__ = [
    "Sample", "Loaded", "ImportPlan", "PoseSample", "FormatOptionError", "DatasetFormat", "FORMATS",
    "preparable_formats", "readable_formats", "option_names", "option_help", "options_to_json", "build_format",
    "read_pose_file",
]


@dataclass
class Sample:
    sequence: np.ndarray  # (T, M, V, C)
    label: int  # 0-based, -1 for unlabelled
    name: str
    meta: dict[str, int] = field(default_factory=dict)
    splits: tuple[str, ...] = ()


@dataclass
class Loaded:
    """What one work item yields: its samples, and notes on data the format's rules leave out."""

    samples: list[Sample]
    dropped: list[str] = field(default_factory=list)


@dataclass
class ImportPlan:
    format: str
    name: str
    raw: str  # the input, as shown to the user
    layout: str | SkeletonLayout
    channels: list[str]
    num_persons: int
    classes: list[str]
    split_names: list[str]
    source: dict[str, Any]
    items: Iterable[Any]
    load: Callable[[Any], Loaded]
    total: int | None = None
    parallel: bool = True
    unit: str = "file"
    notes: list[str] = field(default_factory=list)  # facts worth telling the user (files excluded, ...)
    preprocessing: Preprocessing = Preprocessing()  # what ``load`` does to the coordinates (default: nothing)


@dataclass
class PoseSample:
    """One sequence read from a pose file.

    ``layout`` is the reader's layout name and ``joint_names`` the joints the file names (a
    CSV header), when the reader knows them. ``preprocessed``: the sequence is what ``data
    prepare`` would store; False for a reader that returns coordinates as given (``.npy``),
    whose clips then get the dataset's recorded preprocessing at prediction.
    """

    name: str
    sequence: np.ndarray
    layout: str | None = None
    preprocessed: bool = True
    joint_names: tuple[str, ...] | None = None


class FormatOptionError(SkelmaeError, ValueError):
    """A dataset format, or one of its options, is unknown or invalid."""


class DatasetFormat:
    """Base of the registered formats. A subclass defines ``plan`` and/or ``read`` (see the
    module docstring); ``self.options`` is its typed options, None for a format without."""

    suffixes: ClassVar[tuple[str, ...]] = ()  # lower-case suffixes of the files ``read`` takes
    pose_file: ClassVar[str] = ""  # such a file in words, for help texts
    unsafe: ClassVar[str] = ""  # why reading runs code (pickles): then a file is read only when the format is named
    folders: ClassVar[bool] = False  # ``read`` also takes a folder (e.g. one JSON file per frame)
    # options that describe the file itself (e.g. lines per frame): a checkpoint whose data set
    # another format prepared does not impose its own values of them
    file_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: Any = None):
        self.options = options

    @classmethod
    def recognises(cls, path: Path) -> bool:
        """Whether ``path`` looks like this format's input by its content (a cheap look at the
        start of a file, or at a folder's file names; never an error). ``--format auto`` asks
        every format before the suffix decides, so formats sharing a suffix (the JSON of
        NW-UCLA and of pose estimators) or reading folders are told apart without ``--format``."""
        return False


FORMATS: Registry[DatasetFormat] = Registry("dataset format")


def preparable_formats() -> list[str]:
    """Formats ``data prepare`` imports, in registration order."""
    return [entry.name for entry in FORMATS.entries() if hasattr(entry.cls, "plan")]


def readable_formats() -> list[str]:
    """Formats whose files ``read_pose_file`` reads, in registration order."""
    return [entry.name for entry in FORMATS.entries() if hasattr(entry.cls, "read")]


def option_names(name: str) -> list[str]:
    schema = FORMATS.get(name).config
    return [f.name for f in dataclasses.fields(schema)] if schema is not None else []


def option_help(option: str) -> str:
    """``"<formats taking it>: <help>"`` of a preparation option, for the command line; formats
    whose help differs (another default) get their own part, joined by ``;``."""
    takers = [entry for entry in FORMATS.entries() if option in option_names(entry.name)]
    if not takers:
        raise FormatOptionError(f"no dataset format takes option {option!r}")
    by_text: dict[str, list[str]] = {}
    for entry in takers:
        text = next(f.metadata.get("help", "") for f in dataclasses.fields(entry.config) if f.name == option)
        by_text.setdefault(text, []).append(entry.name)
    return "; ".join(f"{'/'.join(names)}: {text}" for text, names in by_text.items())


def options_to_json(options: Any) -> dict[str, Any]:
    """A format's options dataclass as JSON values (the manifest's ``source["options"]``):
    paths as strings, tuples as lists, a layout by its registered name (else as its dict),
    so that prediction can build the same options from the record."""
    if options is None:
        return {}
    return {f.name: _json_value(getattr(options, f.name)) for f in dataclasses.fields(options)}


def _json_value(value: Any) -> Any:
    if isinstance(value, SkeletonLayout):
        registered = value.name in available_layouts() and get_layout(value.name) == value
        return value.name if registered else value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return options_to_json(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(_json_value(item) for item in value)
    if isinstance(value, (tuple, list)):
        return [_json_value(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # any other value by its text, so that the manifest stays JSON


def build_format(name: str, options: Mapping[str, Any] | None = None) -> DatasetFormat:
    """The registered format ``name`` with ``options``; an option it does not take is an
    error that lists those it takes (the options dataclass checks the values)."""
    options = dict(options or {})
    taken = option_names(name)
    for key in options:
        if key not in taken:
            raise FormatOptionError(f"option {key!r} does not apply to format {name!r} (it takes {sorted(taken) or 'none'})")
    return FORMATS.build(name, options)


def _format_of(path: Path) -> str:
    """The readable format that recognises the file or folder by its content, else the one its
    suffix names; pickles and unknown suffixes are errors."""
    for name in readable_formats():
        cls = FORMATS.get(name).cls
        if not cls.unsafe and cls.recognises(path):
            return name
    if path.is_dir():
        folder_formats = " or ".join(f"--format {name}" for name in readable_formats() if FORMATS.get(name).cls.folders)
        raise DataFormatError(path, None, "is a folder that no pose format recognises", folder_formats or "a pose file")
    by_suffix: dict[str, str] = {}
    for name in readable_formats():
        for suffix in FORMATS.get(name).cls.suffixes:
            by_suffix.setdefault(suffix, name)
    named_only = [name for name in readable_formats() if FORMATS.get(name).cls.unsafe]
    name = by_suffix.get(path.suffix.lower())
    if name is None:
        safe = [suffix for suffix, owner in by_suffix.items() if owner not in named_only]
        hint = "".join(f" or --format {n}" for n in named_only)
        raise DataFormatError(path, None, f"unknown pose file type {path.suffix!r}", ", ".join(safe) + hint)
    if name in named_only:
        raise DataFormatError(path, None, FORMATS.get(name).cls.unsafe, f"--format {name} (fmt={name!r}) if you trust this file")
    return name


def read_pose_file(
    path: str | Path, fmt: str = "auto", *, preparation: Mapping[str, Any] | None = None, **options: Any,
) -> list[PoseSample]:
    """The clips in one pose file, read by format ``fmt`` or (``auto``) by the format its suffix
    names; pickles are read only when their format is named, since unpickling runs code.

    ``options`` are dataset-preparation options as a checkpoint records them (e.g.
    ``second_actor``, ``max_persons``, ``layout``); each format uses those it takes, and
    an option that no readable format takes is an error. ``preparation`` is a dataset's
    ``source`` record: when the file is read by the format that prepared the dataset, the
    options recorded there (``preparation["options"]``) apply too, below ``options``, so a
    new file is read as the dataset's own files were.
    """
    path = Path(path)
    readable = readable_formats()
    if fmt != "auto" and fmt not in readable:
        raise FormatOptionError(f"unknown pose format {fmt!r}; expected one of {', '.join(['auto', *readable])}")
    known = {option for name in readable for option in option_names(name)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise FormatOptionError(f"no pose file format takes option(s) {unknown}; they take {sorted(known)}")
    if not (path.is_file() or path.is_dir()):
        raise DataFormatError(path, None, "file not found")
    name = _format_of(path) if fmt == "auto" else fmt
    if preparation and preparation.get("format") == name:
        options = {**(preparation.get("options") or {}), **options}
    elif preparation is not None:
        options = {key: value for key, value in options.items() if key not in FORMATS.get(name).cls.file_options}
    if path.is_dir() and not FORMATS.get(name).cls.folders:
        raise DataFormatError(path, None, "is a folder", f"a {FORMATS.get(name).cls.pose_file or name} file")
    taken = option_names(name)
    return build_format(name, {key: value for key, value in options.items() if key in taken}).read(path)

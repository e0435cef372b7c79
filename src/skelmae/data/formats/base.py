"""What a dataset format provides, and the registry that ``data prepare`` and ``predict`` read.

A format is one class registered in :data:`FORMATS` under its name, with a typed options
dataclass (or none); each options field carries a ``help`` text for the command line. The
class implements one or both of:

- ``plan(raw) -> ImportPlan``: how ``skelmae data prepare`` imports the raw data: dataset
  facts plus work items and a picklable ``load`` turning one item into samples
  (:mod:`skelmae.data.prepare` runs the plan);
- ``read(path) -> list[PoseSample]``: the clips of one file, for ``skelmae predict``, with
  ``suffixes`` to choose the format by file name.

A new format is therefore one module: :func:`skelmae.data.prepare.prepare`,
:func:`read_pose_file` and the command line list and accept it from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from skelmae.data.layouts import SkeletonLayout
from skelmae.errors import DataFormatError, SkelmaeError
from skelmae.registry import Registry

__all__ = [
    "Sample", "Loaded", "ImportPlan", "PoseSample", "FormatOptionError", "DatasetFormat", "FORMATS",
    "preparable_formats", "readable_formats", "option_names", "option_help", "build_format", "read_pose_file",
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


@dataclass
class PoseSample:
    """One sequence read from a pose file; ``layout`` is the reader's layout name, if it knows it."""

    name: str
    sequence: np.ndarray
    layout: str | None = None


class FormatOptionError(SkelmaeError, ValueError):
    """A dataset format, or one of its options, is unknown or invalid."""


class DatasetFormat:
    """Base of the registered formats. A subclass defines ``plan`` and/or ``read`` (see the
    module docstring); ``self.options`` is its typed options, None for a format without."""

    suffixes: ClassVar[tuple[str, ...]] = ()  # lower-case suffixes of the files ``read`` takes
    pose_file: ClassVar[str] = ""  # such a file in words, for help texts
    unsafe: ClassVar[str] = ""  # why reading runs code (pickles): then a file is read only when the format is named

    def __init__(self, options: Any = None):
        self.options = options


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
    """``"<formats taking it>: <help>"`` of a preparation option, for the command line."""
    takers = [entry for entry in FORMATS.entries() if option in option_names(entry.name)]
    if not takers:
        raise FormatOptionError(f"no dataset format takes option {option!r}")
    text = next(f.metadata.get("help", "") for f in dataclasses.fields(takers[0].config) if f.name == option)
    return f"{'/'.join(entry.name for entry in takers)}: {text}"


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
    """The readable format a file's suffix names; pickles and unknown suffixes are errors."""
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


def read_pose_file(path: str | Path, fmt: str = "auto", **options: Any) -> list[PoseSample]:
    """The clips in one pose file, read by format ``fmt`` or (``auto``) by the format its suffix
    names; pickles are read only when their format is named, since unpickling runs code.

    ``options`` are dataset-preparation options as a checkpoint records them (e.g.
    ``second_actor``, ``max_persons``, ``layout``); each format uses those it takes, and
    an option that no readable format takes is an error.
    """
    path = Path(path)
    readable = readable_formats()
    if fmt != "auto" and fmt not in readable:
        raise FormatOptionError(f"unknown pose format {fmt!r}; expected one of {', '.join(['auto', *readable])}")
    known = {option for name in readable for option in option_names(name)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise FormatOptionError(f"no pose file format takes option(s) {unknown}; they take {sorted(known)}")
    if not path.is_file():
        raise DataFormatError(path, None, "file not found")
    name = _format_of(path) if fmt == "auto" else fmt
    taken = option_names(name)
    return build_format(name, {key: value for key, value in options.items() if key in taken}).read(path)

"""``skelmae data prepare files``: one file per sequence, in any layout, without writing code.

Most skeleton data that no built-in importer knows looks alike: a folder with one file per
sequence, the action, subject and repetition in the file name. This module reads such
files and is also the planner that every one-file-per-sequence format shares
(:func:`plan_sequences`: labels, metadata, classes and splits from names or an index).

The file (``.txt``/``.csv`` text, ``.npy``/``.npz`` or ``.json``) holds numbers of
``max_persons`` persons of ``joints`` joints, one value per entry of ``columns``:

- ``rows=joint`` (default): one line per joint, ``persons x joints`` lines per frame,
  frames one after another (blank and ``#`` lines are ignored);
- ``rows=frame``: one line per frame with ``persons x joints x columns`` values, ordered
  person, joint, column (the layout of motion-capture CSV exports).

Text is whitespace, comma, semicolon or tab separated; a first line that is not numeric is
a header, which names the columns when ``columns`` is not given (``x,y,z,c``) and, for
``rows=frame``, may name the joints (``head_x,head_y,...``). Arrays are (T, V, C),
(T, M, V, C) or the 2-D matrix the ``rows`` rule describes; JSON is such a nested list or
an object holding it under ``key`` (default: its only list field).

Columns: ``x``, ``y``, ``z`` are coordinates, ``c``/``conf``/``confidence``/``score``/
``visibility`` a confidence and ``_`` a column to leave out. 3D data keep ``x, y, z``
(the confidence is dropped: the 3D models take coordinates only) and are centred like
every built-in 3D format, on the layout's centre joint of the first frame (``center``);
2D data keep ``x, y, score`` as the PYSKL 2D import does.

Labels and metadata come from the file name by ``name_pattern`` (``{label}``,
``{label:d}``, ``{subject:d}``, ``{_}`` for text to ignore) or from a CSV ``index``
(``name,label,subject,...``); see :class:`Labelling` for how labels become classes and
:class:`SplitRule` for ``split``.
"""

from __future__ import annotations

import ast
import csv
import functools
import io
import json
import operator
import re
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skelmae.data.formats.base import FORMATS, DatasetFormat, FormatOptionError, ImportPlan, Loaded, PoseSample, Sample
from skelmae.data.formats.common import (
    MAX_CLASSES, centre_on_first_frame, checked_float32, read_class_names, read_npy_header, read_text,
)
from skelmae.data.formats.npy import not_numpy
from skelmae.data.layouts import LayoutError, SkeletonLayout, get_layout
from skelmae.data.preprocessing import Preprocessing
from skelmae.errors import DataFormatError

__all__ = [
    "SequenceFileOptions", "FilesOptions", "Labelling", "SplitRule", "NamePattern", "plan_sequences", "read_sequence_file",
]

SUFFIXES = (".txt", ".csv", ".npy", ".npz", ".json")
LAYOUT_BY_JOINTS = {25: "ntu25", 20: "kinect20", 17: "coco17"}
SCORE_COLUMNS = frozenset({"c", "conf", "confidence", "score", "visibility"})
COORDINATES = ("x", "y", "z")
SKIPPED_COLUMN = "_"
ALL_SPLIT = "all"  # every imported sample: pre-training on the whole set needs no rule


# -- file names ----------------------------------------------------------------------------
class NamePattern:
    """A file-name pattern such as ``a{label:d}_s{subject:d}_e{rep:d}_skeleton3D.txt``.

    ``{name:d}`` matches digits (stored as an integer field), ``{name}`` any text without
    a path separator (allowed for ``label`` and ``_``, since stored fields are integers).
    A pattern with a suffix is matched against the whole file name, one without against
    the name without its suffix."""

    _FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)?(?::(d))?\}")

    def __init__(self, pattern: str):
        self.text = pattern
        parts, fields, numeric, end = [], [], set(), 0
        for match in self._FIELD.finditer(pattern):
            parts.append(re.escape(pattern[end:match.start()]))
            name, digits = match.group(1) or SKIPPED_COLUMN, match.group(2) == "d"
            if name != SKIPPED_COLUMN:
                if name in fields:
                    raise FormatOptionError(f"name_pattern {pattern!r}: field {{{name}}} appears twice")
                if not digits and name != "label":
                    raise FormatOptionError(
                        f"name_pattern {pattern!r}: field {{{name}}} must be a number ({{{name}:d}}): stored fields are "
                        "integers; only {label} may be text, and {_} ignores text"
                    )
                fields.append(name)
                if digits:
                    numeric.add(name)
            group = r"\d+" if digits else r"[^/\\]+?"
            parts.append(f"(?P<{name}>{group})" if name != SKIPPED_COLUMN else f"(?:{group})")
            end = match.end()
        parts.append(re.escape(pattern[end:]))
        if not fields and "{" not in pattern:
            raise FormatOptionError(f"name_pattern {pattern!r} has no {{field}}: e.g. 'a{{label:d}}_s{{subject:d}}'")
        self.fields = fields
        self.text_label = "label" in fields and "label" not in numeric
        self._regex = re.compile("".join(parts))
        self._whole_name = "." in pattern.rsplit("}", 1)[-1]

    def match(self, path: Path) -> dict[str, str] | None:
        """The fields of ``path``'s name (as text), or None when it does not match."""
        found = self._regex.fullmatch(path.name if self._whole_name else _stem(path))
        return found.groupdict() if found else None


def _stem(path: Path) -> str:
    return path.stem if path.suffix.lower() in SUFFIXES else path.name


# -- splits --------------------------------------------------------------------------------
_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
    ast.Mod: operator.mod, ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
}


@dataclass(frozen=True)
class SplitRule:
    """``NAME:RULE``: a split of the samples whose metadata satisfy ``RULE``.

    ``RULE`` is an expression over the integer fields: comparisons, ``in``/``not in`` a
    list, ``% + - * //``, ``and``/``or``/``not`` (``subject % 2 == 1``,
    ``subject in [1, 2, 4]``, ``view <= 2 and rep == 1``), or ``@FILE``: a text file of
    sample names, one per line. Nothing else is evaluated: a rule is never run as code."""

    name: str
    rule: str

    @classmethod
    def parse(cls, text: str) -> SplitRule:
        name, sep, rule = text.partition(":")
        if not sep or not name.strip() or not rule.strip():
            raise FormatOptionError(f"split {text!r}: expected NAME:RULE, e.g. 'xsub_train:subject % 2 == 1' or 'test:@test.txt'")
        split = cls(name.strip(), rule.strip())
        if not split.rule.startswith("@"):
            split._tree()
        return split

    def _tree(self) -> ast.Expression:
        try:
            tree = ast.parse(self.rule, mode="eval")
        except SyntaxError as exc:
            raise FormatOptionError(f"split {self.name}: rule {self.rule!r} is not an expression ({exc.msg})") from None
        except (MemoryError, RecursionError, ValueError):
            raise FormatOptionError(f"split {self.name}: rule {self.rule[:40]!r}... is too deeply nested to parse") from None
        for node in ast.walk(tree):
            allowed = (
                ast.Expression, ast.Compare, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.BinOp,
                ast.Name, ast.Load, ast.Constant, ast.List, ast.Tuple, ast.Set, *_OPERATORS,
            )
            if not isinstance(node, allowed) or (isinstance(node, ast.Constant) and not isinstance(node.value, int)):
                raise FormatOptionError(
                    f"split {self.name}: {type(node).__name__} is not allowed in rule {self.rule!r} "
                    "(fields, integers, lists, comparisons, in, % + - * //, and/or/not)"
                )
        return tree

    def fields(self) -> set[str]:
        return set() if self.rule.startswith("@") else {n.id for n in ast.walk(self._tree()) if isinstance(n, ast.Name)}

    def members(self, names: Sequence[str], meta: Sequence[Mapping[str, int]]) -> list[bool]:
        """Whether each sample is in the split."""
        if self.rule.startswith("@"):
            path = Path(self.rule[1:])
            listed = {line.strip() for line in read_text(path).splitlines() if line.strip()}
            return [name in listed for name in names]
        tree = self._tree()
        members = []
        for name, fields in zip(names, meta):
            try:
                members.append(bool(_evaluate(tree.body, fields)))
            except (ArithmeticError, TypeError, ValueError, RecursionError, MemoryError) as exc:
                raise FormatOptionError(f"split {self.name}: rule {self.rule!r} fails for sample {name!r} ({type(exc).__name__}: {exc})") from None
        return members


def _evaluate(node: ast.AST, fields: Mapping[str, int]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return fields[node.id]
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return {_evaluate(e, fields) for e in node.elts}
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, fields)
        return not value if isinstance(node.op, ast.Not) else -value
    if isinstance(node, ast.BoolOp):
        values = (_evaluate(v, fields) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.BinOp):
        return _OPERATORS[type(node.op)](_evaluate(node.left, fields), _evaluate(node.right, fields))
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, fields)
        for op, comparator in zip(node.ops, node.comparators):
            right = _evaluate(comparator, fields)
            if not _OPERATORS[type(op)](left, right):
                return False
            left = right
        return True
    raise AssertionError(f"unchecked node {type(node).__name__}")  # SplitRule._tree admits no other node


# -- options -------------------------------------------------------------------------------
def _tuple_of_strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


@dataclass(frozen=True)
class SequenceFileOptions:
    """The labelling options every one-file-per-sequence format shares."""

    name_pattern: str | None = field(
        default=None, metadata={"help": "labels and fields from file names, e.g. 'a{label:d}_s{subject:d}_e{rep:d}' ({_}: ignore)"},
    )
    index: Path | None = field(default=None, metadata={"help": "CSV index file: name,label[,field...] per sequence"})
    class_names: Path | None = field(default=None, metadata={"help": "text file with one class name per line"})
    split: tuple[str, ...] = field(
        default=(), metadata={"help": "NAME:RULE, repeatable: 'xsub_train:subject % 2 == 1', 'test:subject in [1, 2]', 'val:@names.txt'"},
    )
    label_base: str = field(default="auto", metadata={"help": "auto (default), 0 or 1"})
    max_persons: int = field(default=2, metadata={"help": "persons kept per sample (default 2)"})
    center: bool = field(default=True, metadata={"help": "centre 3D sequences on the layout's centre joint of the first frame (default: yes)"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "split", _tuple_of_strings(self.split))
        for name in ("index", "class_names"):  # options recorded in a manifest come back as text
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if self.name_pattern is not None and self.index is not None:
            raise FormatOptionError("give labels by --name-pattern or by --index, not both")
        if self.label_base not in ("auto", "0", "1"):
            raise FormatOptionError(f"label_base must be auto, 0 or 1, got {self.label_base!r}")
        if self.max_persons < 1:
            raise FormatOptionError(f"max_persons must be at least 1, got {self.max_persons}")
        self.pattern()
        names = [SplitRule.parse(text).name for text in self.split]
        if len(set(names)) != len(names) or ALL_SPLIT in names:
            raise FormatOptionError(f"split names must be distinct and not {ALL_SPLIT!r} (every sample), got {names}")

    def pattern(self) -> NamePattern | None:
        return NamePattern(self.name_pattern) if self.name_pattern else None

    def split_rules(self) -> list[SplitRule]:
        return [SplitRule.parse(text) for text in self.split]


@dataclass(frozen=True)
class FilesOptions(SequenceFileOptions):
    max_persons: int = field(default=1, metadata={"help": "persons per frame of every file (default 1)"})
    layout: str | SkeletonLayout | None = field(
        default=None, metadata={"help": "layout name or YAML file (default: from the joint count)"},
    )
    joints: int | None = field(default=None, metadata={"help": "joints per person (default: the layout's)"})
    columns: str | None = field(
        default=None, metadata={"help": "values per joint, e.g. x,y,z or x,y,z,c or x,y,score (_ skips one; default: the header, else x,y,z)"},
    )
    rows: str = field(default="joint", metadata={"help": "joint (one line per joint, frames stacked) or frame (one line per frame)"})
    key: str | None = field(default=None, metadata={"help": "the array's name in a .npz or .json (default: the only one)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rows not in ("joint", "frame"):
            raise FormatOptionError(f"rows must be joint or frame, got {self.rows!r}")
        if self.joints is not None and self.joints < 1:
            raise FormatOptionError(f"joints must be at least 1, got {self.joints}")
        if self.columns is not None:
            parse_columns(self.columns.split(","), "--columns")
        if self.layout is not None or self.joints is not None:  # without either, reading says what is missing
            self.resolved_layout()

    def resolved_layout(self) -> SkeletonLayout:
        """The layout named, else the built-in one of ``joints``; the two must agree."""
        if self.layout is None:
            if self.joints is None:
                raise FormatOptionError("files: give --layout (a name or YAML file) or --joints")
            if self.joints not in LAYOUT_BY_JOINTS:
                raise FormatOptionError(
                    f"files: no built-in layout has {self.joints} joints ({', '.join(f'{v}: {n}' for v, n in LAYOUT_BY_JOINTS.items())}); "
                    "describe yours in a YAML file and give --layout FILE (see docs/own-data.md)"
                )
            return get_layout(LAYOUT_BY_JOINTS[self.joints])
        try:
            layout = get_layout(self.layout)
        except LayoutError as exc:
            raise FormatOptionError(str(exc)) from None
        if self.joints is not None and self.joints != layout.num_joints:
            raise FormatOptionError(f"files: --joints {self.joints} but layout {layout.name} has {layout.num_joints} joints")
        return layout


def parse_columns(names: Sequence[str], where: str) -> list[str]:
    """Column roles: ``x``, ``y``, ``z``, ``score`` or ``_`` (skipped), checked to make a pose."""
    roles = []
    for name in (n.strip().lower() for n in names):
        roles.append("score" if name in SCORE_COLUMNS else name)
        if roles[-1] not in (*COORDINATES, "score", SKIPPED_COLUMN):
            raise FormatOptionError(
                f"{where}: column {name!r} is not one of x, y, z, {', '.join(sorted(SCORE_COLUMNS))} or _ (skip)"
            )
    kept = [r for r in roles if r != SKIPPED_COLUMN]
    if kept[:2] != ["x", "y"] or len(set(kept)) != len(kept) or ("z" in kept and kept.index("z") != 2):
        raise FormatOptionError(f"{where}: columns {list(names)} must give x, y[, z][, score] once each, in that order")
    return roles


def stored_channels(roles: Sequence[str]) -> list[str]:
    """The channels a data set keeps: x, y, z (3D) or x, y, score (2D, score 1 when absent)."""
    return list(COORDINATES) if "z" in roles else ["x", "y", "score"]


# -- labelling -----------------------------------------------------------------------------
@dataclass
class Labelling:
    """Labels, integer fields and classes of the named sequences.

    A text label (``{label}``, or a non-numeric ``label`` column) names the class; the
    classes are ``class_names`` in file order (a label not in it is an error), else the
    labels sorted. A numeric label indexes ``class_names`` (``label_base``: auto is 1
    when the smallest label is 1); without class names the classes are the distinct
    numbers in increasing order, named by their number, so gaps in the numbering make
    no empty classes. Without a label source every sample is unlabelled (-1)."""

    labels: dict[str, int]
    meta: dict[str, dict[str, int]]
    classes: list[str]
    unmatched: dict[str, str]  # name -> why it has no label
    notes: list[str]


def label_sequences(names: Mapping[str, Path], options: SequenceFileOptions) -> Labelling:
    pattern = options.pattern()
    if pattern is not None:
        found = {name: pattern.match(path) for name, path in names.items()}
        why, text_labels = f"the name does not match --name-pattern {pattern.text!r}", pattern.text_label
    elif options.index is not None:
        listed = _read_index(options.index)
        found = {name: listed.get(name) for name in names}
        why, text_labels = f"not listed in the index {options.index}", None
    else:
        return Labelling({name: -1 for name in names}, {name: {} for name in names}, [], {}, ["no labels given: every sample is unlabelled"])
    raw_labels: dict[str, str] = {}
    meta: dict[str, dict[str, int]] = {}
    missing = [name for name, fields in found.items() if fields is None]
    for name, fields in found.items():
        if fields is not None:
            fields = dict(fields)
            if "label" in fields:
                raw_labels[name] = fields.pop("label")
            meta[name] = {key: int(value) for key, value in fields.items()}
    if text_labels is None:  # an index: text labels unless every one is a number
        text_labels = not all(re.fullmatch(r"\d+", value) for value in raw_labels.values())
    unmatched = {name: f"{why} ({len(missing)} of {len(names)} sequences have no label)" for name in missing}
    labels, classes = _classes(raw_labels, text_labels, options)
    if not raw_labels:
        labels = {name: -1 for name in meta}
    return Labelling(labels, meta, classes, unmatched, [])


def _read_index(path: Path) -> dict[str, dict[str, str]]:
    """The rows of a CSV index by sequence name (the file name without its suffix)."""
    rows = list(csv.reader(io.StringIO(read_text(path))))
    header = [h.strip() for h in rows[0]] if rows else []
    if "name" not in header:
        raise DataFormatError(path, 1, f"header is {header}", "a CSV header with a 'name' column (and label, fields...)")
    by_name: dict[str, dict[str, str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataFormatError(path, line, f"has {len(row)} values", f"{len(header)} like the header {header}")
        entry = dict(zip(header, (cell.strip() for cell in row)))
        key = _stem(Path(entry.pop("name")))
        if key in by_name:
            raise DataFormatError(path, line, f"names {key!r} a second time", "each sequence once")
        for column, value in entry.items():
            if column != "label" and not re.fullmatch(r"-?\d+", value):
                raise DataFormatError(path, f"line {line}, column {column!r}", f"is {value[:40]!r}", "an integer (stored fields are integers)")
        by_name[key] = entry
    return by_name


def _classes(raw: dict[str, str], text: bool, options: SequenceFileOptions) -> tuple[dict[str, int], list[str]]:
    given = read_class_names(options.class_names) if options.class_names is not None else None
    if text:
        classes = given or sorted(set(raw.values()))
        position = {name: i for i, name in enumerate(classes)}
        unknown = sorted(set(raw.values()) - set(position))
        if unknown:
            raise DataFormatError(options.class_names, None, f"has no class {unknown[:5]}", "every label of the file names or index")
        return {name: position[label] for name, label in raw.items()}, classes
    numbers = {name: int(label) for name, label in raw.items()}
    if given is None:
        values = sorted(set(numbers.values()))
        if len(values) > MAX_CLASSES:
            raise FormatOptionError(f"{len(values):,} distinct labels; at most {MAX_CLASSES:,} classes")
        position = {value: i for i, value in enumerate(values)}
        return {name: position[value] for name, value in numbers.items()}, [str(v) for v in values]
    base = (1 if min(numbers.values(), default=0) == 1 else 0) if options.label_base == "auto" else int(options.label_base)
    for name, value in numbers.items():
        if not base <= value < base + len(given):
            raise DataFormatError(
                options.class_names, None, f"has {len(given)} classes but {name!r} has label {value}",
                f"labels {base}..{base + len(given) - 1} (label base {base})",
            )
    return {name: value - base for name, value in numbers.items()}, given


# -- the shared planner --------------------------------------------------------------------
@dataclass(frozen=True)
class _LabelledLoad:
    """Loads one sequence and gives it its label, fields and splits (picklable for the workers)."""

    load: Callable[[Path], np.ndarray]
    centre_joint: int | None

    def __call__(self, item: tuple[str, Path, int, dict[str, int], tuple[str, ...], str | None]) -> Loaded:
        name, path, label, meta, splits, problem = item
        if problem is not None:
            raise DataFormatError(path, None, problem, "a labelled sequence (see --name-pattern / --index)")
        sequence = self.load(path)
        if self.centre_joint is not None:
            centred = centre_on_first_frame(sequence, self.centre_joint)
            if centred is None:
                raise DataFormatError(path, None, "person 1 is never present (every value is zero)", "tracked joints")
            sequence = centred
        return Loaded([Sample(sequence, label, name, meta, splits)])


def plan_sequences(
    format: str,
    raw: Sequence[Path],
    items: Mapping[str, Path],
    load: Callable[[Path], np.ndarray],
    *,
    layout: str | SkeletonLayout,
    channels: list[str],
    options: SequenceFileOptions,
    source: dict[str, Any],
    notes: list[str] | None = None,
    preprocessing: Preprocessing | None = None,
) -> ImportPlan:
    """The import of named sequences (a name -> its file or folder) that ``load`` reads into
    (T, max_persons, V, C) float32, labelled by ``options``; 3D sequences are centred here.
    ``preprocessing`` records what ``load`` itself does (2D normalisation), for prediction.

    A sequence without a label (its name does not match the pattern, or the index does not
    list it) is an item that fails, so ``--on-error fail`` names it and ``skip`` lists it."""
    if not items:
        raise DataFormatError(" ".join(map(str, raw)), None, f"holds no {format} sequence", "sequence files or folders")
    layout = get_layout(layout)
    labelling = label_sequences(items, options)
    names = sorted(labelling.meta)
    splits = options.split_rules()
    fields = set().union(*(labelling.meta[n].keys() for n in names)) if names else set()
    for split in splits:
        missing = split.fields() - fields
        if missing:
            raise FormatOptionError(
                f"split {split.name}: rule {split.rule!r} uses {sorted(missing)}, but the samples have fields {sorted(fields) or 'none'}"
            )
    membership = {split.name: dict(zip(names, split.members(names, [labelling.meta[n] for n in names]))) for split in splits}
    work = []
    for name, path in sorted(items.items()):
        problem = labelling.unmatched.get(name)
        chosen = (ALL_SPLIT, *(s.name for s in splits if membership[s.name].get(name)))
        work.append((name, path, labelling.labels.get(name, -1), labelling.meta.get(name, {}), chosen, problem))
    notes = [*(notes or []), *labelling.notes]
    if labelling.unmatched:
        shown = ", ".join(sorted(labelling.unmatched)[:5])
        notes.append(f"{len(labelling.unmatched)} sequence(s) have no label ({shown}{', ...' if len(labelling.unmatched) > 5 else ''})")
    centre = "z" in channels and options.center
    if centre:
        preprocessing = Preprocessing.centred(layout, persons=options.max_persons)
    elif preprocessing is None:
        preprocessing = Preprocessing(persons=options.max_persons)
    return ImportPlan(
        format=format, name=Path(raw[0]).name if len(raw) == 1 else format, raw=" ".join(map(str, raw)), layout=layout,
        channels=channels, num_persons=options.max_persons, classes=labelling.classes,
        split_names=[ALL_SPLIT, *(s.name for s in splits)],
        source={"raw": [str(p) for p in raw], **source, "labels": _label_source(options)},
        items=work, load=_LabelledLoad(load, layout.center if centre else None),
        total=len(work), notes=notes, unit="sequence", preprocessing=preprocessing,
    )


def _label_source(options: SequenceFileOptions) -> str:
    if options.name_pattern:
        return f"file names: {options.name_pattern}"
    return f"index {options.index}" if options.index else "none"


# -- reading one file ----------------------------------------------------------------------
def read_sequence_file(path: Path, options: FilesOptions) -> tuple[np.ndarray, list[str], tuple[str, ...] | None]:
    """One file -> ((T, M, V, C) float32 in the stored channels, channels, joint names from a header or None)."""
    layout = options.resolved_layout()
    suffix = path.suffix.lower()
    header: list[str] | None = None
    if suffix in (".txt", ".csv"):
        header, values, lines = _read_text_rows(path)
        where: Callable[[int], Any] = lambda row: lines[row]
    else:
        values = _read_array(path, options.key)
        where = lambda row: f"row {row + 1}"
    roles, joint_names = _column_roles(header, options, layout, path)
    width = len(roles)
    persons, joints = options.max_persons, layout.num_joints
    if values.ndim == 2:
        per_row = width if options.rows == "joint" else persons * joints * width
        if values.shape[1] != per_row:
            row = 0
            raise DataFormatError(
                path, where(row), f"has {values.shape[1]} values",
                f"{per_row} ({_row_words(options, roles, persons, joints)})",
            )
        if options.rows == "joint":
            per_frame = persons * joints
            if values.shape[0] % per_frame:
                frames = values.shape[0] // per_frame
                raise DataFormatError(
                    path, where(frames * per_frame), f"frame {frames + 1} has {values.shape[0] % per_frame} of its {per_frame} joint lines",
                    f"{per_frame} lines per frame ({persons} person(s) x {joints} joints of layout {layout.name}); the file is cut short or a line is missing",
                )
        values = values.reshape(-1, persons, joints, width)
    elif values.ndim == 3:
        values = values[:, None]
    if values.ndim != 4 or values.shape[0] == 0 or values.shape[2:] != (joints, width) or values.shape[1] > persons:
        raise DataFormatError(
            path, None, f"holds an array of shape {values.shape}",
            f"(T, {joints}, {width}), (T, M<={persons}, {joints}, {width}) or rows as --rows {options.rows} says",
        )
    sequence = _to_channels(values, roles)
    padded = np.zeros((sequence.shape[0], persons, *sequence.shape[2:]), dtype=np.float32)
    padded[:, : sequence.shape[1]] = checked_float32(sequence, path, lambda t: f"frame {t + 1}", "a joint")
    return padded, stored_channels(roles), joint_names


def _row_words(options: FilesOptions, roles: Sequence[str], persons: int, joints: int) -> str:
    columns = f"columns {','.join(roles)}{'' if options.columns else '; other columns: --columns, e.g. x,y,z,c'}"
    if options.rows == "joint":
        return f"one joint per line: {columns}"
    return f"one frame per line: {persons} person(s) x {joints} joints x {columns}"


def _column_roles(header: list[str] | None, options: FilesOptions, layout: SkeletonLayout,
                  path: Path) -> tuple[list[str], tuple[str, ...] | None]:
    """Column roles from --columns, else from the header, else x,y,z; joint names from a per-frame header."""
    if options.columns is not None:
        return parse_columns(options.columns.split(","), "--columns"), _joint_names(header, options)
    if header is None:
        return list(COORDINATES), None
    if options.rows == "joint":
        try:
            return parse_columns(header, f"{path}: header"), None
        except FormatOptionError as exc:
            raise DataFormatError(path, 1, str(exc), "a header of x, y, z, c... or --columns") from None
    suffixes = [h.rsplit("_", 1)[-1] if "_" in h else h for h in header]
    width = len(header) // max(1, options.max_persons * layout.num_joints)
    try:
        return parse_columns(suffixes[:width], f"{path}: header"), _joint_names(header, options)
    except FormatOptionError as exc:
        raise DataFormatError(path, 1, str(exc), "a header of <joint>_x, <joint>_y... or --columns") from None


def _joint_names(header: list[str] | None, options: FilesOptions) -> tuple[str, ...] | None:
    """``head_x, head_y, neck_x, ...`` -> (head, neck, ...) for a per-frame header of one person."""
    if header is None or options.rows != "frame" or not all("_" in h for h in header):
        return None
    first_person = header[: len(header) // options.max_persons]
    return tuple(dict.fromkeys(h.rsplit("_", 1)[0] for h in first_person))


def _to_channels(values: np.ndarray, roles: Sequence[str]) -> np.ndarray:
    kept = stored_channels(roles)
    out = np.ones((*values.shape[:3], len(kept)), dtype=np.float64)
    for c, channel in enumerate(kept):
        if channel in roles:
            out[..., c] = values[..., roles.index(channel)]
    return out


_SEPARATOR = re.compile(r"[,;\s]+")


def _read_text_rows(path: Path) -> tuple[list[str] | None, np.ndarray, list[int]]:
    """Numbers of a text table -> (header or None, float64 (rows, width), 1-based line of each row)."""
    text = read_text(path)
    rows, lines, header = [], [], None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = [f for f in _SEPARATOR.split(stripped) if f]
        if not rows and header is None and not _numeric(fields[0]):
            header = [f.strip('"') for f in fields]
            continue
        rows.append(fields)
        lines.append(number)
    if not rows:
        raise DataFormatError(path, None, "holds no rows of numbers", "one line per joint or per frame")
    width = len(rows[0])
    values = np.empty((len(rows), width), dtype=np.float64)
    for k, fields in enumerate(rows):
        if len(fields) != width:
            raise DataFormatError(path, lines[k], f"has {len(fields)} values", f"{width} like line {lines[0]}")
        try:
            values[k] = [float(f) for f in fields]
        except ValueError:
            bad = next(c for c, f in enumerate(fields) if not _numeric(f))
            raise DataFormatError(path, f"line {lines[k]}, value {bad + 1}", f"is {fields[bad][:40]!r}", "a number") from None
    return header, values, lines


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_array(path: Path, key: str | None) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataFormatError(path, None, f"cannot read the file ({exc.strerror or exc})") from None
        problem = not_numpy(data[:64])
        if problem:
            raise DataFormatError(path, None, problem, "a .npy array, or a .txt/.csv name for a text table")
        return _npy(path, data, None)
    if suffix == ".npz":
        try:
            with zipfile.ZipFile(path) as archive:
                members = {Path(n).stem: n for n in archive.namelist() if n.endswith(".npy")}
                name = _pick(members, key, path, "array")
                return _npy(path, archive.read(members[name]), f"array {name!r}")
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
            raise DataFormatError(path, None, f"is not a readable .npz archive ({exc})", "an archive written by numpy.savez") from None
    doc = _json(path)
    if isinstance(doc, dict):
        lists = {k: v for k, v in doc.items() if isinstance(v, list)}
        doc = lists[_pick(lists, key, path, "list field")]
    try:
        return np.asarray(doc, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise DataFormatError(path, f"field {key or '(top level)'}", "is not a regular nested list of numbers", "frames of joints of numbers") from None


def _pick(found: Mapping[str, Any], key: str | None, path: Path, what: str) -> str:
    if key is not None:
        if key not in found:
            raise DataFormatError(path, f"{what} {key!r}", "is missing", f"one of {sorted(found)}")
        return key
    if len(found) != 1:
        raise DataFormatError(path, None, f"holds {len(found)} {what}s {sorted(found)[:8]}", "exactly one, or --key NAME")
    return next(iter(found))


def _npy(path: Path, data: bytes, where: str | None) -> np.ndarray:
    stream = io.BytesIO(data)
    shape, dtype, fortran, nbytes = read_npy_header(stream, path, where, len(data))
    return np.frombuffer(stream.read(nbytes), dtype=dtype).reshape(shape, order="F" if fortran else "C").astype(np.float64)


def _json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise DataFormatError(path, None, f"invalid JSON: {exc}") from None


def _load_file(path: Path, options: FilesOptions, channels: tuple[str, ...]) -> np.ndarray:
    sequence, found, _ = read_sequence_file(path, options)
    if tuple(found) != channels:
        raise DataFormatError(path, 1, f"its header gives channels {found}", f"{list(channels)} like the other files, or --columns")
    return sequence


@FORMATS.register("files", config=FilesOptions)
class SequenceFiles(DatasetFormat):
    """One file per sequence (.txt/.csv/.npy/.npz/.json) in any layout; labels from names or an index."""

    suffixes = (".txt", ".csv")
    file_options = ("max_persons",)  # lines per frame, not the persons a model takes
    pose_file = ".txt/.csv tables (rows per --rows, columns per --columns)"

    def read(self, path: Path) -> list[PoseSample]:
        sequence, channels, joint_names = read_sequence_file(path, self.options)
        layout = self.options.resolved_layout()
        if self.options.center and "z" in channels:
            sequence = centre_on_first_frame(sequence, layout.center)
            if sequence is None:
                raise DataFormatError(path, None, "person 1 is never present (every value is zero)", "tracked joints")
        # marked raw: a checkpoint's record (a 2D image normalisation) then applies; the centring is idempotent
        return [PoseSample(_stem(path), sequence, layout.name, preprocessed=False, joint_names=joint_names)]

    def plan(self, raw: Sequence[Path]) -> ImportPlan:
        """Every file with a supported suffix under the given files and folders (the index and
        class-name files excepted)."""
        listed = [Path(rule.rule[1:]) for rule in self.options.split_rules() if rule.rule.startswith("@")]
        side_files = (self.options.index, self.options.class_names, *listed)
        found = _sequence_files(raw, {p.resolve() for p in side_files if p is not None})
        layout = self.options.resolved_layout()
        channels = _channels_of_first_readable(found, self.options)
        return plan_sequences(
            "files", raw, found, functools.partial(_load_file, options=self.options, channels=tuple(channels)),
            layout=layout, channels=channels, options=self.options,
            source={"rows": self.options.rows, "columns": self.options.columns or "header or x,y,z"},
            notes=[f"{len(found)} sequence file(s), layout {layout.name}, channels {', '.join(channels)}"],
        )


def _sequence_files(raw: Sequence[Path], excluded: set[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in raw:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        for path in paths:
            if path.resolve() in excluded:
                continue
            name = _stem(path)
            if name in found:
                raise DataFormatError(path, None, f"sequence {name} is also at {found[name]}", "each sequence once")
            found[name] = path
    return found


def _channels_of_first_readable(found: Mapping[str, Path], options: FilesOptions) -> list[str]:
    """The data set's channels: from --columns, else from the first file that reads (a bad
    first file must not stop an import that skips bad files)."""
    if options.columns is not None:
        return stored_channels(parse_columns(options.columns.split(","), "--columns"))
    first_error = None
    for _, path in sorted(found.items()):
        try:
            return read_sequence_file(path, options)[1]
        except DataFormatError as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    return list(COORDINATES)

"""Helpers shared by the format readers: reading text, line-numbered parsing, centring.

Every reader reports bad input as :class:`DataFormatError` naming the file, the line (or
field) and what was expected, and nothing else: the parsers are fuzzed for that.
"""

from __future__ import annotations

import math
import tokenize
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import IO

import numpy as np

from skelmae.errors import DataFormatError

# Stored values are float32. A magnitude beyond half its range is no measurement, and refusing
# it keeps every difference a reader takes (centring, image-size normalisation) finite.
COORDINATE_LIMIT = float(np.finfo(np.float32).max) / 2
# More classes than any action dataset has: a larger label is a damaged field, and without a
# class-name file each class up to the largest label gets a generated name.
MAX_CLASSES = 10_000

__all__ = [
    "read_text",
    "parse_int",
    "parse_number_rows",
    "COORDINATE_LIMIT",
    "MAX_CLASSES",
    "checked_float32",
    "check_labels",
    "read_npy_header",
    "resource_lines",
    "centre_on_first_frame",
    "read_class_names",
    "find_files",
]


def read_text(path: str | Path) -> str:
    """The file as text; unreadable or non-text files become a :class:`DataFormatError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataFormatError(path, None, f"cannot read the file ({exc.strerror or exc})") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataFormatError(path, line, f"byte 0x{data[exc.start]:02x} is not text", "a UTF-8/ASCII text file") from exc


def parse_int(lines: list[str], index: int, path: str | Path, what: str, minimum: int = 0) -> int:
    """The integer alone on line ``index`` (0-based); ``what`` names it in errors."""
    if index >= len(lines):
        raise DataFormatError(path, index + 1, f"file ends where the {what} should be", "more lines (truncated file?)")
    text = lines[index].strip()
    try:
        value = int(text)
    except ValueError:
        raise DataFormatError(path, index + 1, f"{what} is {text[:40]!r}", "a whole number alone on the line") from None
    if value < minimum:
        raise DataFormatError(path, index + 1, f"{what} is {value}", f"at least {minimum}")
    return value


def parse_number_rows(
    lines: list[str], line_numbers: list[int] | range, path: str | Path, width: int, what: str,
) -> np.ndarray:
    """Parse ``width`` whitespace-separated numbers on each of the given lines into float64 (N, width)
    (the caller converts with :func:`checked_float32`).

    numpy's C parser does the work; only when it fails are the lines re-checked one by
    one, so the error names the first bad line (0-based indices in, 1-based in messages).
    """
    rows = [lines[i] for i in line_numbers]
    values = None
    if rows:
        try:
            values = np.loadtxt(rows, dtype=np.float64, comments=None, ndmin=2)
        except ValueError:
            values = None
    if values is None or values.shape != (len(rows), width):
        values = _parse_rows_one_by_one(rows, line_numbers, path, width, what)
    return values


def _parse_rows_one_by_one(rows: list[str], line_numbers, path, width: int, what: str) -> np.ndarray:
    out = np.empty((len(rows), width), dtype=np.float64)
    for k, (row, index) in enumerate(zip(rows, line_numbers)):
        fields = row.split()
        if len(fields) != width:
            raise DataFormatError(path, index + 1, f"{what} has {len(fields)} values", f"{width} numbers")
        for c, field in enumerate(fields):
            try:
                out[k, c] = float(field)
            except ValueError:
                raise DataFormatError(
                    path, index + 1, f"{what}: value {c + 1} is {field[:40]!r}", "a number",
                ) from None
    return out


def checked_float32(values: np.ndarray, path: str | Path, where: Callable[[int], str | int | None], what: str) -> np.ndarray:
    """``values`` (N, ...) as float32; the first row holding NaN, infinity or a magnitude above
    :data:`COORDINATE_LIMIT` is an error at ``where(row)`` (a 1-based line or a field).

    Every reader converts through here, so none returns a value float32 cannot hold and the
    arithmetic after it cannot overflow.
    """
    if values.size == 0:
        return values.astype(np.float32)
    if values.dtype.kind == "f" and values.dtype.itemsize < 4:  # float16 cannot hold the limit
        values = values.astype(np.float32)
    with np.errstate(invalid="ignore"):  # NaN compares False
        bad = ~(np.abs(values) <= COORDINATE_LIMIT).reshape(len(values), -1).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        if not np.isfinite(values[row]).all():
            raise DataFormatError(path, where(row), f"{what} is not finite (NaN or infinity)", "finite numbers")
        raise DataFormatError(
            path, where(row), f"{what} holds a value beyond {COORDINATE_LIMIT:.3g}",
            f"magnitudes up to {COORDINATE_LIMIT:.3g} (float32)",
        )
    return values.astype(np.float32)


def check_labels(
    labels: np.ndarray, num_classes: int, base: int, path: str | Path, where: Callable[[int], str], classes: str,
) -> None:
    """Refuse the first label outside ``base .. base + num_classes - 1``, naming its sample:
    a label indexes the class list, so it is checked against it before anything is sized by it."""
    bad = np.flatnonzero((labels < base) | (labels >= base + num_classes))
    if bad.size:
        i = int(bad[0])
        raise DataFormatError(path, where(i), f"label is {labels[i]}", f"{base}..{base + num_classes - 1}: {classes}")


def read_npy_header(
    fh: IO[bytes], path: str | Path, where: str | None, size: int, kinds: str = "fiu",
) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """Shape, dtype, Fortran order and data size of the ``.npy`` stream ``fh`` of ``size`` bytes,
    leaving it at the data. A header claiming more data than the stream holds is refused before
    anything is allocated, so memory stays bounded by the input's real size."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(fh)
        if version not in readers:
            raise DataFormatError(path, where, f"is a .npy file of version {version}", "version 1.0 or 2.0")
        shape, fortran, dtype = readers[version](fh)
    except (ValueError, SyntaxError, tokenize.TokenError, RecursionError) as exc:  # numpy parses the header as Python
        raise DataFormatError(path, where, f"has no valid .npy header ({exc})", "an array written by numpy") from None
    if dtype.hasobject:
        raise DataFormatError(path, where, "holds Python objects", "a numeric array")
    if dtype.kind not in kinds or dtype.itemsize == 0:
        raise DataFormatError(path, where, f"has dtype {dtype}", "a numeric array")
    if any(n < 0 for n in shape):
        raise DataFormatError(path, where, f"has shape {tuple(shape)}", "dimensions of at least 0")
    nbytes = math.prod(shape) * dtype.itemsize
    held = max(0, size - fh.tell())
    if nbytes > held:
        raise DataFormatError(
            path, where, f"claims shape {tuple(shape)} ({nbytes:,} bytes) but holds {held:,} bytes",
            "an array as large as its header says",
        )
    return tuple(shape), dtype, bool(fortran), nbytes


def resource_lines(name: str) -> list[str]:
    """Non-empty, non-comment lines of a text file shipped in ``skelmae/data/resources``."""
    text = resources.files("skelmae.data").joinpath("resources", name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def centre_on_first_frame(seq: np.ndarray, joint: int, absent: np.ndarray | None = None) -> np.ndarray | None:
    """Translate so that ``joint`` of person 0 in its first present frame is the origin.

    The NTU reference centring (SGN ``seq_translation``), used for every 3D dataset.
    ``seq`` is (T, M, V, C) float32; only the first three channels (xyz) move. The
    (T, M) person frames marked in ``absent`` are zero afterwards; by default those whose
    values are all zero, so absent persons stay absent (the NTU reader passes the
    reference's own rule). Returns None when person 0 is never present.
    """
    frames = np.flatnonzero(np.any(seq[:, 0] != 0, axis=(1, 2)))
    if frames.size == 0:
        return None
    if absent is None:
        absent = ~np.any(seq != 0, axis=(2, 3))
    coords = min(3, seq.shape[-1])
    out = seq.copy()
    out[..., :coords] -= seq[frames[0], 0, joint, :coords]
    out[absent] = 0
    return out


def read_class_names(path: str | Path) -> list[str]:
    """Class names from a text file, one per line (the labels are checked against them)."""
    classes = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if not classes:
        raise DataFormatError(path, None, "names no class", "one class name per line")
    return classes


def find_files(raw: Sequence[Path], pattern: str) -> dict[str, Path]:
    """Files matching ``pattern`` among the given files and (recursively) folders, by stem.

    The same stem twice is an error: a sample must not be imported twice.
    """
    found: dict[str, Path] = {}
    for root in raw:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob(pattern) if p.is_file())
        for path in paths:
            if path.stem in found:
                raise DataFormatError(path, None, f"sample {path.stem} is also at {found[path.stem]}", "each sample once")
            found[path.stem] = path
    return found

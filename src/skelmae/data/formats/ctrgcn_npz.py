"""CTR-GCN / MAMP ``.npz`` files (``NTU60_CS.npz``, ``NTU120_CSet.npz``, ``PKUv1_XSub.npz``, ...).

Layout: ``x_train`` (N, T, M*V*C) float32, zero-padded to T = 300 frames, rows
``[person 1: 25 joints x xyz, person 2: ...]``; ``y_train`` one-hot (N, classes) or class
indices (N,); the same for ``x_test`` / ``y_test``. (N, C, T, V, M) arrays are read too.

An NTU120 x-sub file decompresses to 11 GB, so nothing is loaded whole: each array member
of the zip archive is streamed, a few rows at a time, through numpy's ``.npy`` header
reader, whether the archive is stored or deflated (``np.savez_compressed``). Only the
labels (a few MB) are read at once. A header claiming more data than its member holds is
refused before anything is allocated, and a label must name a class (one of
``--class-names``, or at most :data:`~skelmae.data.formats.common.MAX_CLASSES`), so memory
stays bounded by the file's real size. Writing (:func:`write_npz`) streams the same way.

Each sample is stored up to its last non-zero frame (the padding is dropped; zero frames
inside a sequence are kept); an all-zero row is left out and listed in the report. Splits
are ``<protocol>_train`` / ``<protocol>_test``, the protocol read from the file name
(CS/CSub/XSub -> xsub, CV/XView -> xview, CSet/XSet -> xset) unless given.

The coordinates are the file producer's. Its centring is recognised from the data: when the
first rows all have joint ``spine_mid`` of person 1 at exactly 0 in its first present frame
(the SGN ``seq_transformation`` output of the CTR-GCN NTU files), the dataset records
first-frame centring, and a second person identical to the first records the NTU 120
second-actor copy; otherwise its preprocessing is recorded as unknown.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import lzma
import math
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from skelmae.atomic import atomic_output
from skelmae.data.formats import ntu
from skelmae.data.formats.base import FORMATS, DatasetFormat, ImportPlan, Loaded, Sample
from skelmae.data.formats.common import MAX_CLASSES, check_labels, checked_float32, read_class_names, read_npy_header
from skelmae.data.layouts import get_layout
from skelmae.data.preprocessing import Preprocessing
from skelmae.errors import DataFormatError, SkelmaeError

__all__ = ["read_header", "iter_rows", "protocol_from_name", "write_npz", "NpzOptions", "CtrgcnNpz"]

PARTS = ("train", "test")
_PROTOCOLS = {"cs": "xsub", "csub": "xsub", "xsub": "xsub", "cv": "xview", "xview": "xview", "cview": "xview",
              "cset": "xset", "xset": "xset"}
READ_BYTES = 2**21  # rows are read in blocks of about this size


def protocol_from_name(stem: str) -> str | None:
    """``NTU60_CS`` -> ``xsub``, ``NTU120_CSet`` -> ``xset``; None when the name says nothing."""
    for token in re.split(r"[_\-. ]", stem.lower()):
        if token in _PROTOCOLS:
            return _PROTOCOLS[token]
    return None


@contextmanager
def _reading(path: Path, key: str) -> Iterator[None]:
    """Report a damaged archive member (bad CRC, truncated deflate stream, ...) as a format error."""
    try:
        yield
    except DataFormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError, KeyError,
            NotImplementedError, RuntimeError) as exc:  # RuntimeError: "encrypted", NotImplementedError: compression
        raise DataFormatError(path, f"array '{key}'", f"is damaged or unreadable ({exc})", "an intact .npz archive") from None


@contextmanager
def _member(
    archive: zipfile.ZipFile, key: str, path: Path, kinds: str = "fiu",
) -> Iterator[tuple[IO[bytes], tuple[int, ...], np.dtype, bool, int]]:
    """Open ``key.npy`` inside the archive: (stream at the data, shape, dtype, fortran_order, data bytes).

    The header is checked against the member's size, and that size against the archive's
    (a stored member, or the compressed bytes of a deflated one, cannot exceed the file), so
    no read later asks for more memory than the archive can fill.
    """
    with _reading(path, key):
        info = archive.getinfo(f"{key}.npy")
        on_disk = path.stat().st_size
        if info.compress_size > on_disk:
            raise DataFormatError(
                path, f"array '{key}'", f"claims {info.compress_size:,} bytes in a file of {on_disk:,}", "an intact .npz archive",
            )
        size = min(info.file_size, info.compress_size) if info.compress_type == zipfile.ZIP_STORED else info.file_size
        with archive.open(info) as fh:
            shape, dtype, fortran, nbytes = read_npy_header(fh, path, f"array '{key}'", size, kinds)
            yield fh, shape, dtype, fortran, nbytes


def read_header(path: str | Path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of array ``key`` of an ``.npz`` file, without reading its data."""
    path = Path(path)
    with _open_archive(path) as archive, _member(archive, key, path) as (_, shape, dtype, _, _):
        return shape, dtype


@contextmanager
def _open_archive(path: Path) -> Iterator[zipfile.ZipFile]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:  # ValueError: e.g. an undecodable member name
        raise DataFormatError(path, None, f"not a readable .npz archive ({exc})", "a file written by np.savez") from None
    with archive:
        yield archive


def _read_whole(fh: IO[bytes], shape: tuple[int, ...], dtype: np.dtype, fortran: bool, nbytes: int, path: Path, key: str) -> np.ndarray:
    """The whole array; reading stops where the member's data do, so a short member costs no more memory."""
    data = fh.read(nbytes)
    if len(data) != nbytes:
        raise DataFormatError(path, f"array '{key}'", f"ends after {len(data):,} of {nbytes:,} bytes", "a complete array")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def iter_rows(path: str | Path, key: str) -> Iterator[np.ndarray]:
    """Yield the rows ``array[i]`` of ``key`` one at a time, holding only a few in memory."""
    path = Path(path)
    with _open_archive(path) as archive, _member(archive, key, path) as (fh, shape, dtype, fortran, nbytes), _reading(path, key):
        if not shape:
            raise DataFormatError(path, f"array '{key}'", "is a scalar", "an array of samples")
        if fortran:  # rows are not contiguous: read the array once (still a single copy)
            yield from _read_whole(fh, shape, dtype, fortran, nbytes, path, key)
            return
        row_shape, row_bytes = shape[1:], math.prod(shape[1:]) * dtype.itemsize
        per_read = max(1, READ_BYTES // max(row_bytes, 1))
        remaining = shape[0]
        while remaining:
            count = min(per_read, remaining)
            block = fh.read(count * row_bytes)
            if len(block) != count * row_bytes:
                raise DataFormatError(path, f"array '{key}'", f"ends after {shape[0] - remaining} of {shape[0]} rows", "a complete array")
            yield from np.frombuffer(block, dtype=dtype).reshape(count, *row_shape)
            remaining -= count


def _labels(path: Path, key: str, count: int, num_classes: int, classes: str) -> tuple[np.ndarray, int]:
    """The class index of every row of ``key`` and the number of classes it spans (the one-hot
    width, if one-hot); each label is checked against ``num_classes``, naming its sample."""
    with _open_archive(path) as archive, _member(archive, key, path, "biuf") as (fh, shape, dtype, fortran, nbytes), _reading(path, key):
        if len(shape) not in (1, 2) or shape[0] != count or (len(shape) == 2 and shape[1] == 0):
            raise DataFormatError(path, f"array '{key}'", f"has shape {shape}", f"{count} labels, one per row of x_{key[2:]}")
        if len(shape) == 2 and shape[1] > num_classes:
            raise DataFormatError(path, f"array '{key}'", f"is one-hot over {shape[1]:,} classes", f"at most {num_classes:,}: {classes}")
        y = _read_whole(fh, shape, dtype, fortran, nbytes, path, key)
    if y.ndim == 2:
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            bad = int(np.flatnonzero(~(np.isin(y, (0, 1)).all(axis=1) & (y.sum(axis=1) == 1)))[0])
            raise DataFormatError(path, f"array '{key}', row {bad}", "is not a one-hot vector", "exactly one 1, the rest 0")
        return y.argmax(axis=1), y.shape[1]
    if y.dtype.kind == "b" or (y != np.round(y)).any():
        raise DataFormatError(path, f"array '{key}'", f"has shape {y.shape} and dtype {y.dtype}", "one-hot (N, classes) or class indices (N,)")
    check_labels(y, num_classes, 0, path, lambda i: f"array '{key}', row {i}", classes)
    y = y.astype(np.int64)
    return y, int(y.max()) + 1 if y.size else 0


def _row_to_sequence(shape: tuple[int, ...], path: Path, key: str) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """How to turn one row of ``key`` into (T, M, 25, 3), and M."""
    if len(shape) == 3 and shape[2] % 75 == 0 and shape[2] > 0:
        persons = shape[2] // 75
        return (lambda row: row.reshape(shape[1], persons, 25, 3)), persons
    if len(shape) == 5 and shape[1] == 3 and shape[3] == 25 and shape[4] > 0:
        return (lambda row: row.transpose(1, 3, 2, 0)), shape[4]
    raise DataFormatError(path, f"array '{key}'", f"has shape {shape}", "(N, T, M*75) or (N, 3, T, 25, M) Kinect v2 skeletons, M >= 1")


def _sample(item: tuple[str, int, np.ndarray, int], converters: dict[str, Callable], split: dict[str, str], path: Path) -> Loaded:
    part, index, row, label = item
    seq = converters[part](row)
    present = np.flatnonzero(np.any(seq != 0, axis=(1, 2, 3)))
    name = f"{part}_{index:06d}"
    if present.size == 0:
        return Loaded([], [f"{name}: every frame is zero (left out)"])
    seq = checked_float32(seq[: present[-1] + 1], path, lambda _: f"array 'x_{part}', row {index}", "the sample")
    return Loaded([Sample(seq, label, name, {}, (split[part],))])


PRODUCER_ROWS = 16  # rows looked at to recognise the producer's centring


def _producer_preprocessing(path: Path, key: str, converter: Callable[[np.ndarray], np.ndarray], persons: int) -> Preprocessing:
    """What the file's producer did to the coordinates, as far as its first rows show it."""
    layout = get_layout("ntu25")
    unrecognised = Preprocessing(known=False, note="the .npz producer's, not recognised from its first rows")
    centred = duplicated = False
    with contextlib.closing(iter_rows(path, key)) as rows:
        for row in itertools.islice(rows, PRODUCER_ROWS):
            seq = converter(row)
            present = np.flatnonzero(np.any(seq[:, 0] != 0, axis=(1, 2)))
            if present.size == 0:
                continue
            if np.any(seq[present[0], 0, layout.center] != 0):
                return unrecognised
            centred = True
            duplicated |= persons > 1 and np.array_equal(seq[:, 1], seq[:, 0])
    if not centred:
        return unrecognised
    return Preprocessing.centred(
        layout, persons=persons, second_actor="duplicate" if duplicated else "zeros",
        note="by the file's producer (SGN seq_transformation); skelmae drops each row's zero padding only",
    )


@dataclass(frozen=True)
class NpzOptions:
    protocol: str | None = field(default=None, metadata={"help": "split prefix (default: from the file name, e.g. xsub)"})
    class_names: Path | None = field(default=None, metadata={"help": "text file with one class name per line"})


@FORMATS.register("ctrgcn-npz", config=NpzOptions)
class CtrgcnNpz(DatasetFormat):
    """CTR-GCN / MAMP .npz files (x_train, y_train, x_test, y_test), streamed."""

    def plan(self, raw: Sequence[Path]) -> ImportPlan:
        """One ``.npz`` file with ``x_train``/``y_train`` and/or ``x_test``/``y_test``."""
        protocol, class_names = self.options.protocol, self.options.class_names
        if len(raw) != 1 or not raw[0].is_file():
            raise SkelmaeError("ctrgcn-npz takes exactly one .npz file: --raw FILE.npz")
        path = raw[0]
        with _open_archive(path) as archive:
            members = {Path(n).stem for n in archive.namelist() if n.endswith(".npy")}
        parts = [part for part in PARTS if f"x_{part}" in members]
        if not parts:
            raise DataFormatError(path, None, f"has arrays {sorted(members)}", "x_train/y_train and/or x_test/y_test")
        for part in parts:
            if f"y_{part}" not in members:
                raise DataFormatError(path, f"array 'y_{part}'", "is missing", f"labels for x_{part}")
        shapes = {part: read_header(path, f"x_{part}")[0] for part in parts}
        converters, persons = {}, {}
        for part in parts:
            converters[part], persons[part] = _row_to_sequence(shapes[part], path, f"x_{part}")
        if len(set(persons.values())) != 1:
            raise DataFormatError(path, "arrays x_train, x_test", f"hold samples of {persons} persons", "one person count")
        if class_names is not None:
            classes = read_class_names(class_names)
            allowed, source = len(classes), f"one per class in {class_names}"
        else:
            allowed, source = MAX_CLASSES, f"at most {MAX_CLASSES:,} classes without --class-names"
        labels, spans = {}, [1]
        for part in parts:
            labels[part], span = _labels(path, f"y_{part}", shapes[part][0], allowed, source)
            spans.append(span)
        if class_names is None:
            num_classes = max(spans)
            if path.stem.lower().startswith("ntu") and num_classes in (60, 120):
                classes = ntu.class_names(f"ntu{num_classes}")
            else:
                classes = [f"class {i}" for i in range(num_classes)]
        protocol = protocol or protocol_from_name(path.stem)
        split = {part: f"{protocol}_{part}" if protocol else part for part in parts}

        def items() -> Iterator[tuple[str, int, np.ndarray, int]]:
            for part in parts:
                for index, row in enumerate(iter_rows(path, f"x_{part}")):
                    yield part, index, row, int(labels[part][index])

        return ImportPlan(
            format="ctrgcn-npz", name=path.stem, raw=str(path), layout="ntu25", channels=["x", "y", "z"],
            num_persons=persons[parts[0]], classes=classes, split_names=[split[part] for part in parts],
            source={"raw": str(path), "protocol": protocol, "stored": "each row up to its last non-zero frame"},
            items=items(), load=functools.partial(_sample, converters=converters, split=split, path=path),
            total=sum(shape[0] for shape in shapes.values()), parallel=False, unit="sample",
            notes=[f"{shapes[part][0]} {part} sample(s) -> split {split[part]}" for part in parts],
            preprocessing=_producer_preprocessing(path, f"x_{parts[0]}", converters[parts[0]], persons[parts[0]]),
        )


def write_npz(path: str | Path, arrays: dict[str, tuple[tuple[int, ...], np.dtype, Iterator[np.ndarray]]], compress: bool = False) -> Path:
    """Write an ``.npz`` whose arrays are produced row by row: {key: (shape, dtype, rows)}.

    The archive is written under a temporary name and renamed when complete.
    """
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_output(path) as tmp, zipfile.ZipFile(tmp, "w", compression=compression, allowZip64=True) as archive:
        for key, (shape, dtype, rows) in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as fh:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
                np.lib.format.write_array_header_1_0(fh, header)
                written = 0
                for row in rows:
                    fh.write(np.ascontiguousarray(row, dtype=dtype).tobytes())
                    written += 1
                if written != shape[0]:
                    raise ValueError(f"{key}: {written} rows written, header says {shape[0]}")
    return Path(path)

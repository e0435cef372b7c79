"""The canonical on-disk dataset: a folder with ``manifest.json`` and memory-mapped ``.npy`` files.

Layout of a dataset folder (format version 1)::

    manifest.json        layout, channels, persons, classes, splits, per-file sha256, source,
                         preprocessing (what the import did to the coordinates)
    frames.npy           float32/float16 (F, M, V, C): all sequences' frames, concatenated
    offsets.npy          int64 (N + 1,): sample i is frames[offsets[i]:offsets[i + 1]]
    labels.npy           int64 (N,): class index, -1 for unlabelled samples
    names.txt            one sample name per line
    meta/<field>.npy     int64 (N,): optional per-sample attributes (subject, camera, view, ...)
    splits/<split>.npy   int64: sample indices of each split

Why concatenated frames + offsets rather than padding to a fixed length: NTU120 padded to
300 frames is ~20 GB of mostly zeros, while its real frames take about a quarter of that,
and a sample's frames stay one contiguous read. Nothing is ever loaded whole: ``frames``
is memory-mapped, and the per-sample index arrays are O(N) integers.

A folder is complete exactly when ``manifest.json`` exists: the writer builds everything
in a hidden temporary folder ``.<name>.partial-*`` (holding an ``.owner`` file with the
writing process) and renames it into place at the end, so a killed run never leaves a
half-written dataset that looks complete. Replacing a dataset moves the old one aside as
``.<name>.old-*`` first; :func:`recover` finishes or undoes a replacement that was
interrupted between the two renames, and removes what killed runs left.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import threading
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from skelmae.atomic import write_text_atomic
from skelmae.data.layouts import LayoutError, SkeletonLayout, get_layout
from skelmae.data.preprocessing import Preprocessing, PreprocessingError
from skelmae.errors import DataFormatError, SkelmaeError

FORMAT_NAME = "skelmae-dataset"
FORMAT_VERSION = 1
_DTYPES = {"float32": np.float32, "float16": np.float16}
OWNER = ".owner"  # inside a .partial folder: {"pid", "host"} of the process writing it
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")  # split and field names: they become file names
_INT64 = np.iinfo(np.int64)

__all__ = [
    "DatasetWriter", "SkeletonStore", "SampleError", "FORMAT_VERSION", "is_dataset_dir", "file_sha256",
    "sample_problem", "leftovers", "recover",
]


class SampleError(SkelmaeError, ValueError):
    """A sample that cannot be stored (shape, values, label or name)."""


def sample_problem(
    sequence: np.ndarray, label: int, name: str, meta: Mapping[str, int] | None,
    shape: tuple[int, int, int], num_classes: int, dtype: str = "float32",
) -> str | None:
    """Why a sample cannot be written into a dataset of ``shape`` (M, V, C) rows, or None.

    Values are checked after the cast to the stored ``dtype``, so coordinates that are
    finite in float64 but overflow float32 are refused too."""
    seq = np.asarray(sequence)
    if seq.ndim != 4 or seq.shape[1:] != tuple(shape) or seq.shape[0] < 1:
        return f"shape {seq.shape}, expected (T>=1, {', '.join(map(str, shape))})"
    if not np.issubdtype(seq.dtype, np.number):
        return f"values of type {seq.dtype}, expected numbers"
    with np.errstate(over="ignore", invalid="ignore"):
        if not np.isfinite(seq.astype(_DTYPES[dtype], copy=False)).all():
            return f"contains NaN, infinite or values beyond the {dtype} range"
    if not -1 <= label < num_classes:
        return f"label {label} outside -1..{num_classes - 1}"
    if not isinstance(name, str) or name.splitlines() != [name]:
        return f"name {name!r} is empty or contains a line break (names.txt holds one name per line)"
    for key, value in (meta or {}).items():
        if not _SAFE_NAME.fullmatch(key):
            return f"field name {key!r} is not a plain file name (letters, digits, _ . + -)"
        if not _INT64.min <= int(value) <= _INT64.max:
            return f"field {key!r} = {value} does not fit a 64-bit integer"
    return None


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def is_dataset_dir(path: str | Path) -> bool:
    return (Path(path) / "manifest.json").is_file()


class _NpyAppender:
    """Streams rows into a ``.npy`` file whose length is only known at the end.

    The header is written with room for the largest possible row count and rewritten in
    place (same byte length, space padded) when the file is closed, so rows are never
    held in memory or copied a second time.
    """

    def __init__(self, path: Path, dtype: np.dtype, row_shape: tuple[int, ...]):
        self.path, self.dtype, self.row_shape = path, np.dtype(dtype), tuple(row_shape)
        self.rows = 0
        self._header_size = len(self._header(10**15, pad_to=0))
        self._fh = open(path, "wb")
        self._fh.write(self._header(0, pad_to=self._header_size))

    def _header(self, rows: int, pad_to: int) -> bytes:
        spec = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (rows, *self.row_shape),
        }
        body = repr(spec).encode("latin1")
        total = pad_to or -(-(10 + len(body) + 1) // 64) * 64
        body = body + b" " * (total - 10 - len(body) - 1) + b"\n"
        return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body

    def append(self, rows: np.ndarray) -> None:
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} appended to {self.path.name} of rows {self.row_shape}")
        self._fh.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self.rows += rows.shape[0]

    def close(self) -> None:
        self._fh.seek(0)
        self._fh.write(self._header(self.rows, pad_to=self._header_size))
        self._fh.close()


class DatasetWriter:
    """Writes a dataset folder sample by sample; use as a context manager.

    >>> with DatasetWriter(out, layout="ntu25", channels=["x", "y", "z"], num_persons=2,
    ...                    classes=names) as w:
    ...     w.add(seq, label=3, name="S001C001P001R001A004", meta={"subject": 1})
    ...     w.add_split("train", [0])

    Sequences are (T, M, V, C) arrays. On an exception nothing is written to ``out``;
    an existing ``out`` is replaced only with ``overwrite=True`` and only once the new
    dataset is complete. ``preprocessing`` records what was done to the coordinates before
    :meth:`add` (default: nothing), so that prediction can do the same to raw clips.
    """

    def __init__(
        self,
        out_dir: str | Path,
        layout: str | SkeletonLayout,
        channels: Sequence[str],
        num_persons: int,
        classes: Sequence[str],
        name: str | None = None,
        source: Mapping[str, Any] | None = None,
        dtype: str = "float32",
        overwrite: bool = False,
        preprocessing: Preprocessing = Preprocessing(),
    ):
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not overwrite:
            raise FileExistsError(f"{self.out_dir} already exists; pass overwrite to replace it")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        self.layout = get_layout(layout)
        self.channels = list(channels)
        self.num_persons = int(num_persons)
        self.classes = list(classes)
        self.name = name or self.out_dir.name
        self.source = dict(source or {})
        self.preprocessing = preprocessing
        self.dtype = dtype
        self.overwrite = overwrite
        self._tmp = self.out_dir.parent / f".{self.out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
        self._offsets: list[int] = [0]
        self._labels: list[int] = []
        self._names: list[str] = []
        self._meta: dict[str, list[int]] = {}
        self._splits: dict[str, np.ndarray] = {}
        self._frames: _NpyAppender | None = None
        self._closed = False

    def __enter__(self) -> DatasetWriter:
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir()
        (self._tmp / OWNER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        self._frames = _NpyAppender(
            self._tmp / "frames.npy",
            _DTYPES[self.dtype],
            (self.num_persons, self.layout.num_joints, len(self.channels)),
        )
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalize()
        else:
            self.abort()

    def __len__(self) -> int:
        return len(self._labels)

    def add(self, sequence: np.ndarray, label: int, name: str, meta: Mapping[str, int] | None = None) -> int:
        """Append one (T, M, V, C) sequence; returns its sample index."""
        assert self._frames is not None, "use DatasetWriter as a context manager"
        problem = sample_problem(sequence, label, name, meta, self.row_shape, len(self.classes), self.dtype)
        if problem:
            raise SampleError(f"sample {name!r}: {problem}")
        seq = np.asarray(sequence)
        index = len(self._labels)
        for key, value in (meta or {}).items():
            column = self._meta.setdefault(key, [-1] * index)
            column.append(int(value))
        for key, column in self._meta.items():
            if len(column) == index:
                column.append(-1)
        self._frames.append(seq)
        self._offsets.append(self._offsets[-1] + seq.shape[0])
        self._labels.append(int(label))
        self._names.append(name)
        return index

    @property
    def row_shape(self) -> tuple[int, int, int]:
        """(M, V, C): the shape of one stored frame."""
        return self.num_persons, self.layout.num_joints, len(self.channels)

    def add_split(self, name: str, indices: Iterable[int]) -> None:
        if not _SAFE_NAME.fullmatch(name):
            raise SkelmaeError(f"split name {name!r} is not a plain file name (letters, digits, _ . + -; no '/', no leading '.')")
        idx = np.asarray(list(indices), dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self._labels)):
            raise ValueError(f"split {name!r} has indices outside 0..{len(self._labels) - 1}")
        self._splits[name] = idx

    def finalize(self) -> Path:
        if self._closed:
            return self.out_dir
        try:
            self._write_index_and_install()
        except BaseException:
            self.abort()  # a failed finalize leaves no hidden folder behind
            raise
        self._closed = True
        return self.out_dir

    def _write_index_and_install(self) -> None:
        assert self._frames is not None
        self._frames.close()
        tmp = self._tmp
        np.save(tmp / "offsets.npy", np.asarray(self._offsets, dtype=np.int64))
        np.save(tmp / "labels.npy", np.asarray(self._labels, dtype=np.int64))
        (tmp / "names.txt").write_text("".join(n + "\n" for n in self._names), encoding="utf-8")
        if self._meta:
            (tmp / "meta").mkdir()
            for key, column in self._meta.items():
                np.save(tmp / "meta" / f"{key}.npy", np.asarray(column, dtype=np.int64))
        if self._splits:
            (tmp / "splits").mkdir()
            for key, idx in self._splits.items():
                np.save(tmp / "splits" / f"{key}.npy", idx)
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file() and p.name != OWNER)
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "layout": self.layout.to_dict(),
            "channels": self.channels,
            "num_persons": self.num_persons,
            "num_samples": len(self._labels),
            "num_frames": self._offsets[-1],
            "dtype": self.dtype,
            "classes": self.classes,
            "splits": {k: {"file": f"splits/{k}.npy", "count": int(v.size)} for k, v in self._splits.items()},
            "meta_fields": sorted(self._meta),
            "source": self.source,
            "preprocessing": self.preprocessing.to_dict(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": {f: {"sha256": file_sha256(tmp / f), "bytes": (tmp / f).stat().st_size} for f in files},
        }
        write_text_atomic(tmp / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        self._install()

    def _install(self) -> None:
        """Old dataset aside, new one in, old one removed; :func:`recover` completes an interrupted swap."""
        old = None
        if self.out_dir.exists():
            old = self.out_dir.parent / f".{self.out_dir.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.out_dir, old)
        os.replace(self._tmp, self.out_dir)
        (self.out_dir / OWNER).unlink(missing_ok=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        if self._frames is not None and not self._frames._fh.closed:
            self._frames._fh.close()
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._closed = True


def leftovers(out_dir: str | Path) -> list[Path]:
    """The hidden ``.partial-*`` and ``.old-*`` folders beside ``out_dir``."""
    out_dir = Path(out_dir)
    return sorted(p for kind in ("partial", "old") for p in out_dir.parent.glob(f".{out_dir.name}.{kind}-*") if p.is_dir())


def _being_written(folder: Path) -> bool:
    """True while the process named in the folder's owner file still runs (or runs elsewhere)."""
    try:
        owner = json.loads((folder / OWNER).read_text())
        pid, host = int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no owner: finished writing (a complete copy) or never started
    if host != socket.gethostname():
        return True  # another machine's process: cannot tell, leave it alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(out_dir: str | Path) -> list[str]:
    """Finish or undo what interrupted runs left beside ``out_dir``; says what was done.

    If ``out_dir`` is missing, the newest complete copy is put back: a finished new dataset
    (``.partial-*`` with a manifest) before the old one (``.old-*``). Unfinished folders of
    dead processes and old copies no longer needed are removed; folders still being
    written are left alone."""
    out_dir = Path(out_dir)
    done: list[str] = []
    stale = [p for p in leftovers(out_dir) if not _being_written(p)]
    if not out_dir.exists():
        complete = [p for p in stale if (p / "manifest.json").is_file()]
        complete.sort(key=lambda p: (".partial-" in p.name, (p / "manifest.json").stat().st_mtime), reverse=True)
        if complete:
            os.replace(complete[0], out_dir)
            (out_dir / OWNER).unlink(missing_ok=True)
            done.append(f"restored {out_dir} from {complete[0].name}, the complete copy an interrupted run left")
            stale.remove(complete[0])
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
        done.append(f"removed {folder.name}, left beside {out_dir.name} by an interrupted run")
    return done


class SkeletonStore:
    """A validated, lazily memory-mapped view of a dataset folder.

    Opening reads the manifest and the small index arrays and checks every shape against
    the manifest; frames are memory-mapped on first access (and again in each DataLoader
    worker, since mmaps are dropped when pickled).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.manifest = self._read_manifest()
        m = self.manifest
        try:
            self.layout = get_layout(m["layout"] if isinstance(m["layout"], Mapping) else str(m["layout"]))
        except LayoutError as exc:
            raise DataFormatError(self.root / "manifest.json", "field 'layout'", str(exc)) from exc
        self.channels: list[str] = list(m["channels"])
        self.num_persons = int(m["num_persons"])
        self.classes: list[str] = list(m["classes"])
        try:
            self.preprocessing = Preprocessing.from_dict(m.get("preprocessing"))  # older manifests: unknown
        except PreprocessingError as exc:
            raise DataFormatError(self.root / "manifest.json", "field 'preprocessing'", str(exc)) from exc
        self.offsets = self._load_array("offsets.npy", (m["num_samples"] + 1,), np.int64)
        self.labels = self._load_array("labels.npy", (m["num_samples"],), np.int64)
        self._check_index_arrays()
        self._frames: np.ndarray | None = None
        self._reader: Any = None
        self._reader_pid = 0
        self._read_lock = threading.Lock()
        self._names: list[str] | None = None
        frames = self._open_frames()
        self.dtype = frames.dtype

    # -- validation -------------------------------------------------------------------
    def _read_manifest(self) -> dict[str, Any]:
        path = self.root / "manifest.json"
        if not self.root.exists() and any(".old-" in p.name or (p / "manifest.json").is_file() for p in leftovers(self.root)):
            for message in recover(self.root):  # a replacement was interrupted between its two renames
                warnings.warn(message, stacklevel=3)
        if not self.root.is_dir():
            raise DataFormatError(self.root, None, "dataset folder does not exist")
        if not path.is_file():
            partial = [p.name for p in self.root.parent.glob(f".{self.root.name}.partial-*")]
            hint = f"; an unfinished preparation left {partial[0]}" if partial else ""
            raise DataFormatError(
                self.root, None, f"no manifest.json: not a complete skelmae dataset folder{hint}",
                "a folder written by `skelmae data prepare` or `skelmae data synth`",
            )
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, exc.lineno, f"invalid JSON: {exc.msg}") from exc
        if not isinstance(manifest, dict):
            raise DataFormatError(path, None, "top level is not an object")
        if manifest.get("format") != FORMAT_NAME:
            raise DataFormatError(path, "field 'format'", f"is {manifest.get('format')!r}", repr(FORMAT_NAME))
        if manifest.get("format_version") != FORMAT_VERSION:
            raise DataFormatError(
                path, "field 'format_version'", f"is {manifest.get('format_version')!r}",
                f"{FORMAT_VERSION} (re-prepare the dataset with this skelmae version)",
            )
        schema = {
            "layout": (dict, str), "channels": list, "num_persons": int, "num_samples": int,
            "num_frames": int, "classes": list, "splits": dict, "files": dict,
        }
        for key, kinds in schema.items():
            if key not in manifest:
                raise DataFormatError(path, f"field '{key}'", "is missing")
            if not isinstance(manifest[key], kinds):
                kinds = kinds if isinstance(kinds, tuple) else (kinds,)
                raise DataFormatError(
                    path, f"field '{key}'", f"has type {type(manifest[key]).__name__}",
                    " or ".join(k.__name__ for k in kinds),
                )
        return manifest

    def _load_array(self, rel: str, shape: tuple[int, ...] | None, dtype: Any, mmap: bool = False) -> np.ndarray:
        path = self.root / rel
        if not path.is_file():
            raise DataFormatError(path, None, "file listed by the dataset layout is missing")
        try:
            arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataFormatError(path, None, f"unreadable .npy file ({exc})") from exc
        if shape is not None and arr.shape != tuple(shape):
            raise DataFormatError(path, "shape", f"is {arr.shape}", f"{tuple(shape)} from manifest.json")
        if dtype is not None and arr.dtype != np.dtype(dtype):
            raise DataFormatError(path, "dtype", f"is {arr.dtype}", str(np.dtype(dtype)))
        return arr

    def _check_index_arrays(self) -> None:
        off, m = self.offsets, self.manifest
        if off.size and (off[0] != 0 or off[-1] != m["num_frames"] or np.any(np.diff(off) < 1)):
            raise DataFormatError(
                self.root / "offsets.npy", None, "offsets are not increasing from 0 to num_frames",
                f"0 = offsets[0] < ... < offsets[-1] = {m['num_frames']}",
            )
        if self.labels.size and (self.labels.min() < -1 or self.labels.max() >= len(self.classes)):
            raise DataFormatError(
                self.root / "labels.npy", None,
                f"labels span {self.labels.min()}..{self.labels.max()}",
                f"-1..{len(self.classes) - 1} ({len(self.classes)} classes in manifest.json)",
            )

    def _open_frames(self) -> np.ndarray:
        if self._frames is None:
            m = self.manifest
            shape = (m["num_frames"], self.num_persons, self.layout.num_joints, len(self.channels))
            self._frames = self._load_array("frames.npy", shape, None, mmap=True)
            if self._frames.dtype not in (np.float32, np.float16):
                raise DataFormatError(self.root / "frames.npy", "dtype", f"is {self._frames.dtype}", "float32 or float16")
        return self._frames

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_frames"] = state["_reader"] = state["_read_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._read_lock = threading.Lock()

    # -- access -----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, index: int) -> np.ndarray:
        """Sample ``index`` as a float32 (T, M, V, C) array (a copy; the file is untouched).

        The frames are read with a positioned file read, not through the memory map:
        pages touched through a map count towards the process's resident memory until
        it exits, so one pass over NTU120 through the map would grow RSS to the size of
        the dataset; read pages stay in the kernel's (reclaimable) page cache instead.
        """
        frames = self._open_frames()
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        out = np.empty((stop - start, *frames.shape[1:]), dtype=frames.dtype)
        with self._read_lock:
            if self._reader is None or self._reader_pid != os.getpid():  # a forked worker opens its own
                self._reader, self._reader_pid = open(self.root / "frames.npy", "rb", buffering=0), os.getpid()
            self._reader.seek(frames.offset + start * (out.nbytes // len(out)))
            read = self._reader.readinto(memoryview(out).cast("B"))
        if read != out.nbytes:
            raise DataFormatError(self.root / "frames.npy", None, f"ends inside sample {index}", "the size in manifest.json")
        return out.astype(np.float32, copy=False)

    def pick(self, index: int = 0, split: str | None = None, name: str | None = None) -> int:
        """The sample named ``name``, else sample ``index`` (counted within ``split`` when given)."""
        if name is not None:
            if name not in self.names:
                raise SkelmaeError(f"{self.root}: no sample named {name!r}")
            return self.names.index(name)
        indices = self.split(split) if split else range(len(self))
        if not 0 <= index < len(indices):
            where = f"split {split!r}" if split else "the dataset"
            raise SkelmaeError(f"{self.root}: index {index} outside {where} (0..{len(indices) - 1})")
        return int(indices[index])

    def title(self, index: int) -> str:
        """``"<name>: <class>"`` of sample ``index``, for figure titles."""
        label = int(self.labels[index])
        return f"{self.names[index]}: {self.classes[label] if label >= 0 else 'unlabelled'}"

    @property
    def names(self) -> list[str]:
        if self._names is None:
            path = self.root / "names.txt"
            names = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
            if len(names) != len(self):
                raise DataFormatError(path, None, f"{len(names)} names for {len(self)} samples")
            self._names = names
        return self._names

    @property
    def split_names(self) -> list[str]:
        return list(self.manifest["splits"])

    def split(self, name: str) -> np.ndarray:
        splits = self.manifest["splits"]
        if name not in splits:
            raise DataFormatError(
                self.root / "manifest.json", "field 'splits'", f"has no split {name!r}",
                f"one of {sorted(splits)}",
            )
        idx = self._load_array(splits[name]["file"], (splits[name]["count"],), np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise DataFormatError(self.root / splits[name]["file"], None, "indices outside the dataset", f"0..{len(self) - 1}")
        return idx

    @property
    def meta_fields(self) -> list[str]:
        return list(self.manifest.get("meta_fields", []))

    def meta(self, field: str) -> np.ndarray:
        if field not in self.meta_fields:
            raise DataFormatError(self.root / "manifest.json", "field 'meta_fields'", f"has no {field!r}", f"one of {self.meta_fields}")
        return self._load_array(f"meta/{field}.npy", (len(self),), np.int64)

    def manifest_hash(self) -> str:
        """Identifies the exact data a run used (the manifest holds every file's sha256)."""
        return file_sha256(self.root / "manifest.json")

    def verify(self) -> list[str]:
        """Re-hash every file; returns the list of files whose checksum does not match."""
        bad = []
        for rel, info in self.manifest["files"].items():
            path = self.root / rel
            if not path.is_file() or file_sha256(path) != info["sha256"]:
                bad.append(rel)
        return bad

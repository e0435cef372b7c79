"""One clip as a plain ``.npy`` array, (T, V, C) or (T, M, V, C) in a dataset's coordinates:
what ``SkeletonStore.sequence(i)`` returns, so any prepared sample can be saved and predicted.

The header is checked against the file's size before the data are read, and the values come
back as finite float32 like every other reader's. The clip is returned as given
(``preprocessed=False``): prediction applies the dataset's recorded preprocessing to it, so
raw (e.g. uncentred) coordinates are accepted too."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skelmae.data.formats.base import FORMATS, DatasetFormat, PoseSample
from skelmae.data.formats.common import checked_float32, read_npy_header
from skelmae.errors import DataFormatError

__all__ = ["NpyClip", "not_numpy"]

EXPECTED = "an array (T, V, C) or (T, M, V, C)"
MAGIC = b"\x93NUMPY"
PEEK = 64  # bytes looked at to tell a text file from a damaged .npy


def not_numpy(head: bytes) -> str | None:
    """Why a file starting with ``head`` is evidently no ``.npy`` at all (a text file, e.g. a
    CSV renamed), or None: a header error says little when the file was never NumPy's."""
    if head.startswith(MAGIC):
        return None
    text = head.decode("utf-8", errors="replace").rstrip("\ufffd")  # a character cut by the peek
    if text.strip() and all(char.isprintable() or char in "\t\r\n" for char in text):
        return f"not a NumPy file (it starts with text {text[:40]!r})"
    return None


@FORMATS.register("npy")
class NpyClip(DatasetFormat):
    """A numeric .npy array of one clip (T, V, C) or (T, M, V, C)."""

    suffixes = (".npy",)
    pose_file = ".npy (T, V, C) or (T, M, V, C)"

    def read(self, path: Path) -> list[PoseSample]:
        try:
            with open(path, "rb") as fh:
                foreign = not_numpy(fh.read(PEEK))
                if foreign is None:
                    fh.seek(0)
                    shape, dtype, fortran, nbytes = read_npy_header(fh, path, None, path.stat().st_size)
                    data = fh.read(nbytes)
        except OSError as exc:
            raise DataFormatError(path, None, f"cannot read ({exc.strerror or exc})") from None
        except DataFormatError as exc:
            raise DataFormatError(path, None, f"not a plain numeric .npy array: {exc.problem}", exc.expected) from None
        if foreign is not None:
            raise DataFormatError(path, None, foreign, f"{EXPECTED} written by numpy.save")
        if len(shape) not in (3, 4) or 0 in shape:
            raise DataFormatError(path, None, f"has shape {shape}", f"{EXPECTED}, no dimension 0")
        clip = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
        sequence = checked_float32(clip, path, lambda t: f"frame {t + 1}", "a joint")
        return [PoseSample(path.stem, sequence, preprocessed=False)]

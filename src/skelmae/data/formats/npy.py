"""One clip as a plain ``.npy`` array, (T, V, C) or (T, M, V, C) in a dataset's coordinates:
what ``SkeletonStore.sequence(i)`` returns, so any prepared sample can be saved and predicted.

The header is checked against the file's size before the data are read, and the values come
back as finite float32 like every other reader's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skelmae.data.formats.base import FORMATS, DatasetFormat, PoseSample
from skelmae.data.formats.common import checked_float32, read_npy_header
from skelmae.errors import DataFormatError

__all__ = ["NpyClip"]

EXPECTED = "an array (T, V, C) or (T, M, V, C)"


@FORMATS.register("npy")
class NpyClip(DatasetFormat):
    """A numeric .npy array of one clip (T, V, C) or (T, M, V, C)."""

    suffixes = (".npy",)
    pose_file = ".npy (T, V, C) or (T, M, V, C)"

    def read(self, path: Path) -> list[PoseSample]:
        try:
            with open(path, "rb") as fh:
                shape, dtype, fortran, nbytes = read_npy_header(fh, path, None, path.stat().st_size)
                data = fh.read(nbytes)
        except OSError as exc:
            raise DataFormatError(path, None, f"cannot read ({exc.strerror or exc})") from None
        except DataFormatError as exc:
            raise DataFormatError(path, None, f"not a plain numeric .npy array: {exc.problem}", exc.expected) from None
        if len(shape) not in (3, 4) or 0 in shape:
            raise DataFormatError(path, None, f"has shape {shape}", f"{EXPECTED}, no dimension 0")
        clip = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
        return [PoseSample(path.stem, checked_float32(clip, path, lambda t: f"frame {t + 1}", "a joint"))]

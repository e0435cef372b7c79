"""One clip as a plain ``.npy`` array, (T, V, C) or (T, M, V, C) in a dataset's coordinates:
what ``SkeletonStore.sequence(i)`` returns, so any prepared sample can be saved and predicted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skelmae.data.formats.base import FORMATS, DatasetFormat, PoseSample
from skelmae.errors import DataFormatError

__all__ = ["NpyClip"]


@FORMATS.register("npy")
class NpyClip(DatasetFormat):
    """A numeric .npy array of one clip (T, V, C) or (T, M, V, C)."""

    suffixes = (".npy",)
    pose_file = ".npy (T, V, C) or (T, M, V, C)"

    def read(self, path: Path) -> list[PoseSample]:
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise DataFormatError(path, None, f"not a plain numeric .npy array ({exc})", "an array (T, V, C) or (T, M, V, C)") from exc
        except OSError as exc:
            raise DataFormatError(path, None, f"cannot read ({exc})") from exc
        return [PoseSample(path.stem, arr)]

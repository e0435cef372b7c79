"""Readers of the raw dataset formats, one module each, registered in :data:`FORMATS`.

:mod:`skelmae.data.prepare` imports datasets with them, :func:`read_pose_file` reads single
pose files with them (see :mod:`skelmae.data.formats.base`).
"""

from skelmae.data.formats.base import (
    FORMATS, DatasetFormat, FormatOptionError, PoseSample, build_format, option_help, option_names, preparable_formats,
    read_pose_file, readable_formats,
)

# importing a format module registers it; this order is the order of every listing
from skelmae.data.formats import npy, ntu, pku_mmd, nw_ucla, pyskl, ctrgcn_npz  # noqa: E402, F401, I001
from skelmae.data.formats import files, openpose, mmpose, mediapipe, alphapose  # noqa: E402, F401, I001

__all__ = [
    "FORMATS", "DatasetFormat", "FormatOptionError", "PoseSample", "build_format", "option_help", "option_names",
    "preparable_formats", "read_pose_file", "readable_formats",
]

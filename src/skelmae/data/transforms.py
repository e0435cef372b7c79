"""Composable sequence transforms, each doing one thing.

Every transform takes a float32 array of shape (C, T, V, M) and a ``numpy.random.Generator``
and returns a new array. Randomness comes only from the generator the caller passes, so a
sample's augmentation is a pure function of (seed, epoch, index): identical across worker
counts, processes and resumed runs.

The default pipelines follow the CTR-GCN/MAMP feeder: train = random crop of p in
[0.5, 1] of the valid frames (at least ``min_crop`` frames) linearly resized to the
window, then a random rotation; test = 95 % centre crop resized to the window.
``AlignView`` (optional, first in both pipelines) turns every sequence to face the same
way, as 2s-AGCN's and PYSKL's 3D pre-normalisation do.

Each transform is a dataclass registered in :data:`TRANSFORMS` (its fields are its
config), and :func:`build_transforms` assembles the pipelines from those names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skelmae.data.layouts import LayoutError, SkeletonLayout
from skelmae.errors import SkelmaeError
from skelmae.registry import Registry

__all__ = [
    "TRANSFORMS",
    "TransformError",
    "MODALITIES",
    "Compose",
    "AlignView",
    "ValidCropResize",
    "RandomRotation",
    "RandomShear",
    "Views",
    "RandomFlip",
    "ToBone",
    "ToMotion",
    "valid_length",
    "is_planar",
    "resize_time",
    "build_transforms",
]


TRANSFORMS: Registry = Registry("transform")


class TransformError(SkelmaeError, ValueError):
    """A transform cannot be built with these settings, or not for this kind of data."""


class Compose:
    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(map(repr, self.transforms)) + ")"


class Views:
    """``count`` independent draws of a random pipeline, stacked: (C, T, V, M) -> (count, C, T, V, M).

    Contrastive methods compare two augmented views of the same clip; each view consumes
    the sample's generator in turn, so the views differ and stay reproducible.
    """

    def __init__(self, transform: Compose, count: int):
        if count < 1:
            raise TransformError(f"views must be at least 1, got {count}")
        self.transform, self.count = transform, count

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.stack([self.transform(x, rng) for _ in range(self.count)])

    def __repr__(self) -> str:
        return f"Views({self.transform!r}, count={self.count})"


def is_planar(channels: Sequence[str]) -> bool:
    """2D pose (x, y[, score]) rather than 3D xyz."""
    return "z" not in channels


def valid_length(x: np.ndarray) -> int:
    """Frames up to and including the last frame with any non-zero value (>= 1)."""
    nonzero = np.flatnonzero(np.abs(x).sum(axis=(0, 2, 3)) > 0)
    return int(nonzero[-1]) + 1 if nonzero.size else x.shape[1]


def resize_time(x: np.ndarray, length: int) -> np.ndarray:
    """Linear resampling along time with half-pixel centres (torch ``interpolate``,
    ``align_corners=False``), as the reference feeder does."""
    t_in = x.shape[1]
    if t_in == length:
        return x.copy()
    pos = np.clip((np.arange(length) + 0.5) * (t_in / length) - 0.5, 0, t_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, t_in - 1)
    w = (pos - lo).astype(np.float32)[None, :, None, None]
    return (x[:, lo] * (1 - w) + x[:, hi] * w).astype(np.float32)


@TRANSFORMS.register("align_view")
@dataclass
class AlignView:
    """Rotate a 3D sequence into its first actor's body frame: in the first frame where
    both axes are defined, the layout's spine (bottom -> top) becomes +y and its shoulder
    line (left -> right) +x; +z is their cross product.

    The same rotation applies to every frame and person, so motion and the persons'
    relative placement are kept; only the camera's point of view is removed, which is
    what a cross-view split tests. Sequences without a usable frame pass unchanged.
    """

    layout: SkeletonLayout = field(repr=False)
    spine: tuple[int, ...] = field(init=False)
    shoulders: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        if len(self.layout.spine) != 2 or len(self.layout.shoulders) != 2:
            raise LayoutError(
                f"layout {self.layout.name!r} defines no 'spine' and 'shoulders' joints, which view alignment needs: "
                "add them to the layout file, or prepare the data set again if it predates them"
            )
        self.spine, self.shoulders = self.layout.spine, self.layout.shoulders

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        actor = x[:3, :, :, 0].astype(np.float64)  # (3, T, V)
        up = actor[:, :, self.spine[1]] - actor[:, :, self.spine[0]]
        across = actor[:, :, self.shoulders[1]] - actor[:, :, self.shoulders[0]]
        across = across - up * (np.einsum("ct,ct->t", across, up) / np.maximum(np.einsum("ct,ct->t", up, up), 1e-12))
        usable = np.flatnonzero((np.linalg.norm(up, axis=0) > 1e-6) & (np.linalg.norm(across, axis=0) > 1e-6))
        if usable.size == 0:
            return x
        t = usable[0]
        y_axis = up[:, t] / np.linalg.norm(up[:, t])
        x_axis = across[:, t] / np.linalg.norm(across[:, t])
        rotation = np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)]).astype(np.float32)
        out = x.copy()
        out[:3] = np.einsum("ij,jtvm->itvm", rotation, x[:3])
        return out


@TRANSFORMS.register("crop_resize")
@dataclass
class ValidCropResize:
    """Crop part of the valid frames and resize it to ``window`` frames.

    Train: ``p ~ U(p_interval)``, crop length ``clamp(floor(p * valid), min_crop, valid)``
    at a random start. Test (a single ``p``): centred crop that drops
    ``int((1 - p) * valid / 2)`` frames at each end.
    ``min_crop=64`` reproduces the reference quirk of a fixed 64-frame lower bound.
    """

    window: int
    p_interval: Sequence[float] = (0.5, 1.0)
    min_crop: int = 64

    def __post_init__(self) -> None:
        p_interval = self.p_interval
        if not p_interval or len(p_interval) > 2 or not all(0 < p <= 1 for p in p_interval):
            raise TransformError(f"p_interval must be one or two numbers in (0, 1], got {list(p_interval)}")
        self.window, self.p_interval, self.min_crop = int(self.window), tuple(p_interval), int(self.min_crop)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        valid = valid_length(x)
        if len(self.p_interval) == 1:
            start = int((1 - self.p_interval[0]) * valid / 2)
            crop = max(1, valid - 2 * start)
        else:
            p = rng.uniform(*self.p_interval)
            crop = int(np.clip(np.floor(valid * p), min(self.min_crop, valid), valid))
            crop = max(crop, 1)
            start = int(rng.integers(0, valid - crop + 1))
        return resize_time(x[:, start : start + crop], self.window)


@TRANSFORMS.register("shear")
@dataclass
class RandomShear:
    """One random shear per sample: coordinates times a matrix with unit diagonal and
    off-diagonal entries ~ U(-amplitude, amplitude) (SkeletonCLR's augmentation, 0.5 there).

    ``planar=True`` shears the first two channels only (a score channel is kept). All-zero
    joints (absent persons) stay zero.
    """

    amplitude: float = 0.5
    planar: bool = False

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        coords = 2 if self.planar else 3
        matrix = np.eye(coords) + rng.uniform(-self.amplitude, self.amplitude, (coords, coords)) * (1 - np.eye(coords))
        out = x.copy()
        out[:coords] = np.einsum("ij,jtvm->itvm", matrix.astype(np.float32), x[:coords])
        return out


def _rotation_matrix(angles: np.ndarray) -> np.ndarray:
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), np.sin(ax)], [0, -np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, -np.sin(ay)], [0, 1, 0], [np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), np.sin(az), 0], [-np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@TRANSFORMS.register("rotation")
@dataclass
class RandomRotation:
    """One random rotation per sample, angles ~ U(-theta, theta).

    With ``planar=False`` (3D xyz): rotation about each of ``axes`` (default x, y and z;
    ``"xy"``, as CTR-GCN's NW-UCLA feeder, changes the view without rolling the camera).
    With ``planar=True`` (2D pose, optional score channel): rotation in the image plane of
    the first two channels only. All-zero joints (absent persons) stay zero.
    """

    theta: float = 0.3
    planar: bool = False
    axes: str = "xyz"
    active: np.ndarray = field(init=False, repr=False, compare=False)  # which of x, y, z rotate

    def __post_init__(self) -> None:
        if not self.axes or set(self.axes) - set("xyz"):
            raise TransformError(f"rotation axes must be letters of 'xyz', got {self.axes!r}")
        self.theta = float(self.theta)
        self.active = np.array([a in self.axes for a in "xyz"])

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = x.copy()
        if self.planar:
            a = rng.uniform(-self.theta, self.theta)
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], dtype=np.float32)
            out[:2] = np.einsum("ij,jtvm->itvm", rot, x[:2])
        else:
            angles = rng.uniform(-self.theta, self.theta, size=3) * self.active
            rot = _rotation_matrix(angles).astype(np.float32)
            out[:3] = np.einsum("ij,jtvm->itvm", rot, x[:3])
        return out


@TRANSFORMS.register("flip")
@dataclass
class RandomFlip:
    """Mirror left/right with probability ``p``: negate x and swap the layout's joint pairs."""

    layout: SkeletonLayout = field(repr=False)
    p: float = 0.5
    perm: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.p, self.perm = float(self.p), self.layout.flip_permutation()

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return x
        out = x[:, :, self.perm].copy()
        out[0] = -out[0]
        return out


@TRANSFORMS.register("bone")
@dataclass
class ToBone:
    """Joint -> bone vectors (joint minus its parent; the root's bone is zero).

    Only the first ``coords`` channels change; a score channel is kept as it is.
    """

    layout: SkeletonLayout = field(repr=False)
    coords: int = 3
    parents: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.parents = np.asarray(self.layout.parents)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = x.copy()
        out[: self.coords] = x[: self.coords] - x[: self.coords, :, self.parents]
        return out


@TRANSFORMS.register("motion")
@dataclass
class ToMotion:
    """Frame differences x[t + 1] - x[t] of the first ``coords`` channels, last frame zero."""

    coords: int = 3

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = x.copy()
        out[: self.coords] = 0
        out[: self.coords, :-1] = x[: self.coords, 1:] - x[: self.coords, :-1]
        return out


MODALITIES = {"joint": (), "bone": ("bone",), "motion": ("motion",), "bone_motion": ("bone", "motion")}  # -> transforms


def build_transforms(
    layout: SkeletonLayout,
    window: int,
    train: bool,
    p_interval: Sequence[float] = (0.5, 1.0),
    test_crop: float = 0.95,
    min_crop: int = 64,
    rotation: float = 0.3,
    planar: bool = False,
    flip: float = 0.0,
    modality: str = "joint",
    rotation_axes: str = "xyz",
    align_view: bool = False,
    shear: float = 0.0,
) -> Compose:
    """The standard pipeline: (optional) view alignment, crop-resize, (train) shear, rotation
    and flip, then the transforms of the modality."""
    if modality not in MODALITIES:
        raise TransformError(f"modality must be one of {tuple(MODALITIES)}, got {modality!r}")
    if align_view and planar:
        raise TransformError("view alignment rotates 3D poses (x, y, z); 2D input has no view to align")
    coords = 2 if planar else 3
    steps: list[tuple[str, bool, dict[str, Any]]] = [  # (transform, wanted, config)
        ("align_view", align_view, {"layout": layout}),
        ("crop_resize", True, {"window": window, "p_interval": p_interval if train else (test_crop,), "min_crop": min_crop}),
        ("shear", train and shear > 0, {"amplitude": shear, "planar": planar}),
        ("rotation", train and rotation > 0, {"theta": rotation, "planar": planar, "axes": rotation_axes}),
        ("flip", train and flip > 0, {"layout": layout, "p": flip}),
        ("bone", "bone" in MODALITIES[modality], {"layout": layout, "coords": coords}),
        ("motion", "motion" in MODALITIES[modality], {"coords": coords}),
    ]
    return Compose([TRANSFORMS.build(name, config) for name, wanted, config in steps if wanted])

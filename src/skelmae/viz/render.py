"""Drawing skeleton sequences: an animated GIF or MP4 and a PNG contact sheet.

Choices (the issue leaves them open; they are what a user of NTU/PYSKL data expects):

- Bones come from the layout (``layout.bones``) only, so any layout, built-in or a user's
  YAML file, draws correctly.
- 3D data (channels x, y, z in Kinect camera space: metres, y up, persons facing the
  camera along -z) is drawn with one orthographic camera for the whole sequence. At
  azimuth 0 and elevation 0 the picture is the Kinect's own depth image (x to the right,
  y up); the default camera is turned 25 degrees about the vertical axis and raised 12
  degrees so that motion towards the camera stays visible, and a floor grid at the lowest
  joint of the sequence gives depth cues. The axis limits are fixed over the sequence
  (and shared by all panels), so only the bodies move.
- 2D data (channels x, y, optionally score) is drawn in image orientation (y down);
  joints fade with a low score (alpha 0.2 + 0.8 * score).
- A person is absent in a frame when all its numbers are zero (the dataset's padding of
  missing persons) and is then not drawn. Each person has its own colour (matplotlib's
  ``tab10``: blue, orange, green, ...); joints of masked tokens are grey, and joints
  predicted by a model are ringed in black.

Frames are drawn with matplotlib's Agg canvas (no display, no global pyplot state) by
updating the same artists for every frame; GIFs are written with Pillow and MP4s with
imageio-ffmpeg (the ``video`` extra). Every file is written under a temporary name and
renamed into place.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from skelmae.atomic import atomic_output
from skelmae.data.layouts import SkeletonLayout
from skelmae.data.storage import SkeletonStore
from skelmae.data.transforms import is_planar
from skelmae.errors import SkelmaeError

__all__ = [
    "Camera", "Panel", "SequenceRenderer", "contact_sheet", "write_gif", "write_mp4", "write_png", "save_rendering",
    "render_sample",
]

GREY = (0.74, 0.74, 0.74, 1.0)
FLOOR = (0.85, 0.85, 0.85, 1.0)
HEADER_PX = 48


def person_colors(count: int) -> np.ndarray:
    """RGBA colour of each person slot: matplotlib's tab10 cycle."""
    from matplotlib import colormaps

    cycle = np.asarray(colormaps["tab10"].colors)
    rgba = np.ones((count, 4))
    rgba[:, :3] = cycle[np.arange(count) % len(cycle)]
    return rgba


@dataclass(frozen=True)
class Camera:
    """A fixed orthographic view of 3D data: ``azimuth`` about the vertical (y) axis, then
    ``elevation`` upwards, in degrees."""

    azimuth: float = 25.0
    elevation: float = 12.0

    def rotation(self) -> np.ndarray:
        """(3, 3) matrix whose rows give screen x, screen y and depth of an (x, y, z) point."""
        a, e = math.radians(self.azimuth), math.radians(self.elevation)
        yaw = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
        pitch = np.array([[1, 0, 0], [0, math.cos(e), math.sin(e)], [0, -math.sin(e), math.cos(e)]])
        return pitch @ yaw


@dataclass
class Panel:
    """One view of a sequence. ``sequence`` is (T, M, V, C); ``greyed`` and ``predicted``
    are optional (T, M, V) boolean masks of joints drawn grey / ringed as predictions."""

    title: str
    sequence: np.ndarray
    greyed: np.ndarray | None = None
    predicted: np.ndarray | None = None


def _channel_index(channels: Sequence[str], name: str) -> int:
    if name not in channels:
        raise SkelmaeError(f"cannot draw channels {list(channels)}: no {name!r} channel (expected x, y[, z][, score])")
    return list(channels).index(name)


class SequenceRenderer:
    """Renders frame ``t`` of one or more side-by-side panels as an RGB image (H, W, 3)."""

    def __init__(
        self,
        panels: Sequence[Panel],
        layout: SkeletonLayout,
        channels: Sequence[str],
        camera: Camera = Camera(),
        title: str = "",
        panel_height: int = 320,
    ):
        if not panels:
            raise ValueError("nothing to draw: no panels")
        shape = panels[0].sequence.shape
        for panel in panels:
            seq = panel.sequence
            if seq.ndim != 4 or seq.shape != shape:
                raise SkelmaeError(f"panel {panel.title!r}: sequence of shape {seq.shape}, expected {shape} like the first panel")
        if shape[2] != layout.num_joints or shape[3] != len(channels):
            raise SkelmaeError(
                f"sequence of shape {shape} (T, M, V, C) does not match layout {layout.name} "
                f"({layout.num_joints} joints) with channels {list(channels)}"
            )
        self.panels, self.layout, self.channels, self.camera = list(panels), layout, list(channels), camera
        self.num_frames, self.num_persons = shape[0], shape[1]
        self.planar = is_planar(self.channels)
        self.bones = np.asarray(layout.bones, dtype=np.int64).reshape(-1, 2)
        self.colors = person_colors(self.num_persons)
        self._xy = [self._project(p.sequence) for p in self.panels]
        self._alpha = [self._joint_alpha(p.sequence) for p in self.panels]
        self._present = [np.any(p.sequence != 0, axis=(2, 3)) for p in self.panels]
        self._floor = None if self.planar else self._floor_grid(self.panels[0].sequence, self._present[0])
        self._build_figure(title, panel_height)

    # -- geometry ---------------------------------------------------------------------
    def _project(self, seq: np.ndarray) -> np.ndarray:
        """(T, M, V, C) -> screen coordinates (T, M, V, 2); y grows upwards on screen."""
        if self.planar:
            x, y = _channel_index(self.channels, "x"), _channel_index(self.channels, "y")
            return np.stack([seq[..., x], -seq[..., y]], axis=-1).astype(np.float64)  # image y points down
        xyz = seq[..., [_channel_index(self.channels, c) for c in "xyz"]].astype(np.float64)
        return xyz @ self.camera.rotation()[:2].T

    def _joint_alpha(self, seq: np.ndarray) -> np.ndarray:
        if "score" not in self.channels:
            return np.ones(seq.shape[:3])
        score = np.clip(np.nan_to_num(seq[..., self.channels.index("score")]), 0.0, 1.0)
        return 0.2 + 0.8 * score

    def _floor_grid(self, seq: np.ndarray, present: np.ndarray, lines: int = 7) -> np.ndarray | None:
        """Screen segments (L, 2, 2) of a square grid on the floor (lowest joint) under the persons."""
        joints = seq[present][..., [_channel_index(self.channels, c) for c in "xyz"]].reshape(-1, 3)
        joints = joints[np.isfinite(joints).all(axis=1)]
        if not len(joints):
            return None
        lo, hi = joints.min(axis=0), joints.max(axis=0)
        centre = (lo + hi) / 2
        half = max(hi[0] - lo[0], hi[2] - lo[2]) / 2 + 0.15
        ticks = np.linspace(-half, half, lines)
        segments = []
        for tick in ticks:
            segments.append([[centre[0] + tick, lo[1], centre[2] - half], [centre[0] + tick, lo[1], centre[2] + half]])
            segments.append([[centre[0] - half, lo[1], centre[2] + tick], [centre[0] + half, lo[1], centre[2] + tick]])
        return np.asarray(segments) @ self.camera.rotation()[:2].T

    def _limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Limits covering every drawn point of the sequence (all panels), with a 6 % margin."""
        points = [xy[present].reshape(-1, 2) for xy, present in zip(self._xy, self._present)]
        if self._floor is not None:
            points.append(self._floor.reshape(-1, 2))
        pts = np.concatenate(points)
        pts = pts[np.isfinite(pts).all(axis=1)]
        if not len(pts):
            return (-1.0, 1.0), (-1.0, 1.0)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-3) * 1.06
        return (centre[0] - half[0], centre[0] + half[0]), (centre[1] - half[1], centre[1] + half[1])

    # -- drawing ----------------------------------------------------------------------
    def _build_figure(self, title: str, panel_height: int) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import LineCollection
        from matplotlib.figure import Figure

        xlim, ylim = self._limits()
        aspect = np.clip((xlim[1] - xlim[0]) / (ylim[1] - ylim[0]), 0.5, 2.0)
        n, dpi, panel_w = len(self.panels), 100, int(round(panel_height * aspect / 16)) * 16
        width, height = n * panel_w, panel_height + HEADER_PX
        self.figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="white")
        self.canvas = FigureCanvasAgg(self.figure)
        if title:
            self.figure.text(4 / width, 1 - 4 / height, title, fontsize=9, va="top")
        self._artists = []
        for i, panel in enumerate(self.panels):
            ax = self.figure.add_axes((i / n, 0.0, 1 / n, panel_height / height))
            ax.set_xlim(*xlim)
            ax.set_ylim(*ylim)
            ax.set_aspect("equal", adjustable="box")
            ax.set_axis_off()
            ax.set_title(panel.title, fontsize=9, pad=2)
            if self._floor is not None:
                ax.add_collection(LineCollection(self._floor, colors=[FLOOR], linewidths=0.8, zorder=0))
            bones = LineCollection([], linewidths=2.2, capstyle="round", zorder=1)
            ax.add_collection(bones)
            joints = ax.scatter(np.zeros(0), np.zeros(0), s=12, zorder=2, linewidths=0)
            rings = ax.scatter(np.zeros(0), np.zeros(0), s=40, zorder=3, facecolors="none", edgecolors="black", linewidths=0.9)
            self._artists.append((bones, joints, rings))
        self._counter = self.figure.text(1 - 4 / width, 1 - 4 / height, "", fontsize=8, color="0.35", va="top", ha="right")

    def _panel_frame(self, i: int, t: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Bone segments and colours, joint positions and colours, predicted-joint positions."""
        panel, xy, alpha, present = self.panels[i], self._xy[i][t], self._alpha[i][t], self._present[i][t]
        greyed = panel.greyed[t] if panel.greyed is not None else np.zeros(xy.shape[:2], bool)
        predicted = panel.predicted[t] if panel.predicted is not None else np.zeros(xy.shape[:2], bool)
        rgba = np.broadcast_to(self.colors[:, None], xy.shape[:2] + (4,)).copy()
        rgba[greyed] = GREY
        rgba[..., 3] = alpha
        child, parent = self.bones[:, 0], self.bones[:, 1]
        bone_rgba = rgba[:, child].copy()
        bone_rgba[greyed[:, child] | greyed[:, parent], :3] = GREY[:3]
        bone_rgba[..., 3] = np.minimum(alpha[:, child], alpha[:, parent])
        segments = np.stack([xy[:, child], xy[:, parent]], axis=2)  # (M, B, 2, 2)
        m = np.flatnonzero(present)
        return (
            list(segments[m].reshape(-1, 2, 2)), bone_rgba[m].reshape(-1, 4),
            xy[m].reshape(-1, 2), rgba[m].reshape(-1, 4), xy[m][predicted[m]].reshape(-1, 2),
        )

    def pixel_positions(self, t: int, panel: int = 0) -> np.ndarray:
        """Where the joints of frame ``t`` land in the image: (M, V, 2) as (column, row)."""
        ax = self.figure.axes[panel]
        height = self.canvas.get_width_height()[1]
        display = ax.transData.transform(self._xy[panel][t].reshape(-1, 2)).reshape(self._xy[panel][t].shape)
        return np.stack([display[..., 0], height - display[..., 1]], axis=-1)

    def frame(self, t: int, label: str | None = None) -> np.ndarray:
        """Frame ``t`` as an RGB uint8 image (H, W, 3)."""
        if not 0 <= t < self.num_frames:
            raise IndexError(f"frame {t} outside 0..{self.num_frames - 1}")
        for i, (bones, joints, rings) in enumerate(self._artists):
            segments, bone_rgba, points, rgba, ringed = self._panel_frame(i, t)
            bones.set_segments(segments)
            bones.set_color(bone_rgba)
            joints.set_offsets(points)
            joints.set_facecolor(rgba)
            rings.set_offsets(ringed)
        self._counter.set_text(label if label is not None else f"frame {t + 1}/{self.num_frames}")
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()

    def close(self) -> None:
        self.figure.clear()


def contact_sheet(images: Sequence[np.ndarray], columns: int | None = None, gap: int = 4) -> np.ndarray:
    """Tiles equally sized RGB images row by row on white; by default the column count that
    makes the sheet closest to 4:3."""
    if not images:
        raise ValueError("a contact sheet needs at least one image")
    h, w = images[0].shape[:2]
    n = len(images)
    if columns is None:
        columns = min(range(1, n + 1), key=lambda c: abs(math.log((c * w) / (math.ceil(n / c) * h) / (4 / 3))))
    rows = math.ceil(n / columns)
    sheet = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, 3), 255, dtype=np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        sheet[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = image
    return sheet


def write_png(image: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    path = Path(path)
    with atomic_output(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


def _gif_frame(image: np.ndarray):
    """Line art on white needs few colours: a 64-colour octree palette without dithering
    encodes about 4x faster and a third smaller than Pillow's default median cut."""
    from PIL import Image

    return Image.fromarray(image).quantize(64, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)


def write_gif(frames: Iterable[np.ndarray], path: str | Path, fps: float) -> Path:
    """An endlessly looping GIF (Pillow; a 64-colour palette per frame)."""
    path, frames = Path(path), iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("a GIF needs at least one frame")
    with atomic_output(path) as tmp:
        _gif_frame(first).save(
            tmp, format="GIF", save_all=True, append_images=(_gif_frame(f) for f in frames),
            duration=round(1000 / fps), loop=0,
        )
    return path


def _even(image: np.ndarray) -> np.ndarray:
    """Pads with white to even width and height (H.264 in yuv420p needs them)."""
    h, w = image.shape[:2]
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=255) if h % 2 or w % 2 else image


def write_mp4(frames: Iterable[np.ndarray], path: str | Path, fps: float) -> Path:
    """H.264 MP4 through the ffmpeg binary shipped with imageio-ffmpeg."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise SkelmaeError("MP4 output needs imageio-ffmpeg: pip install 'skelmae[video]' (or write a .gif)") from exc
    path, frames = Path(path), iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("a video needs at least one frame")
    first = _even(first)
    h, w = first.shape[:2]
    with atomic_output(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (w, h), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            macro_block_size=1, ffmpeg_log_level="error",
        )
        writer.send(None)
        try:
            for image in itertools.chain([first], (_even(f) for f in frames)):
                writer.send(np.ascontiguousarray(image))
        finally:
            writer.close()
    return path


ANIMATION_WRITERS = {".gif": write_gif, ".mp4": write_mp4}


def sheet_indices(num_frames: int, count: int) -> list[int]:
    """``count`` frames spread evenly from the first to the last."""
    return sorted({int(round(i)) for i in np.linspace(0, num_frames - 1, min(count, num_frames))})


def save_rendering(
    renderer: SequenceRenderer,
    out: str | Path,
    fps: float = 30.0,
    sheet_frames: int = 8,
    stride: int = 1,
    progress: bool = True,
) -> list[Path]:
    """Writes ``out`` (.gif or .mp4: the animation, plus a contact sheet beside it with the
    same name and .png; .png: only the contact sheet). Returns the files written."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (*ANIMATION_WRITERS, ".png"):
        raise SkelmaeError(f"{out}: unknown output type {out.suffix!r}; expected .gif, .mp4 or .png")
    if stride < 1 or fps <= 0:
        raise SkelmaeError(f"stride must be >= 1 and fps > 0, got stride {stride}, fps {fps}")
    frames = list(range(0, renderer.num_frames, stride))
    sheet_at = {frames[k] for k in sheet_indices(len(frames), sheet_frames)} if sheet_frames > 0 else set()
    if suffix == ".png":
        sheet_at = sheet_at or {frames[0]}
        images = [renderer.frame(t) for t in tqdm(sorted(sheet_at), desc="rendering", disable=not progress, leave=False)]
        return [write_png(contact_sheet(images), out)]
    sheet: list[np.ndarray] = []

    def animation() -> Iterator[np.ndarray]:
        for t in tqdm(frames, desc=f"rendering {out.name}", disable=not progress, leave=False):
            image = renderer.frame(t)
            if t in sheet_at:
                sheet.append(image)
            yield image

    written = [ANIMATION_WRITERS[suffix](animation(), out, fps)]
    if sheet:
        written.append(write_png(contact_sheet(sheet), out.with_suffix(".png")))
    return written


def render_sample(
    store: SkeletonStore,
    index: int,
    out: str | Path,
    camera: Camera = Camera(),
    fps: float = 30.0,
    sheet_frames: int = 8,
    stride: int = 1,
) -> list[Path]:
    """Draws stored sample ``index`` (``skelmae data show``); returns the files written."""
    seq = store.sequence(index)
    renderer = SequenceRenderer([Panel(f"{len(seq)} frames", seq)], store.layout, store.channels, camera, title=store.title(index))
    return save_rendering(renderer, out, fps=fps, sheet_frames=sheet_frames, stride=stride)

"""``skelmae data export``: a dataset folder -> CTR-GCN/MAMP ``.npz`` or a PYSKL annotation pickle.

Both are the inverses of the importers, so a round trip reproduces the stored data:

- ``.npz``: the two splits of one protocol become ``x_train``/``x_test`` (N, T, M*V*C)
  float32 zero-padded to T frames (default: the longest sample; 300 for the reference
  feeders) and one-hot ``y_train``/``y_test``. Rows are streamed into the archive.
- PYSKL: one annotation per sample (``frame_dir`` = sample name, 0-based ``label``,
  ``keypoint`` (M, T, V, C)), ``split`` = every split of the dataset. 2D data imported
  from PYSKL get their pixel coordinates back from the recorded image sizes; 3D data are
  written as stored (centred).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from skelmae.atomic import atomic_output
from skelmae.data.formats.ctrgcn_npz import write_npz
from skelmae.data.storage import SkeletonStore
from skelmae.errors import SkelmaeError

__all__ = ["export_npz", "export_pyskl", "EXPORT_FORMATS"]

EXPORT_FORMATS = ("npz", "pyskl")


def _output_file(out: str | Path) -> Path:
    """``out`` as a file to create (its missing folders are created), or a clear error."""
    out = Path(out)
    if out.is_dir():
        raise SkelmaeError(f"--out {out} is a folder; give the file to write, e.g. {out / 'data.npz'}")
    blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise SkelmaeError(f"--out {out}: {blocking} is a file, so it cannot hold {out.name}")
    return out


def _protocol_parts(store: SkeletonStore, protocol: str | None) -> dict[str, str]:
    """{"train": split name, "test": split name} of the chosen protocol."""
    names = store.split_names
    if protocol is None:
        prefixes = sorted({n.rsplit("_", 1)[0] for n in names if n.endswith(("_train", "_test"))})
        prefixes += [""] if {"train", "test"} & set(names) else []
        if len(prefixes) != 1:
            raise SkelmaeError(f"choose a protocol with --protocol: the dataset has splits {names}")
        protocol = prefixes[0]
    parts = {part: f"{protocol}_{part}" if protocol else part for part in ("train", "test")}
    parts = {part: name for part, name in parts.items() if name in names}
    if not parts:
        raise SkelmaeError(f"no splits {protocol}_train/{protocol}_test in the dataset (it has {names})")
    return parts


def export_npz(
    root: str | Path, out: str | Path, protocol: str | None = None, frames: int | None = None,
    compress: bool = False, progress: bool = True,
) -> Path:
    out = _output_file(out)
    store = SkeletonStore(root)
    parts = _protocol_parts(store, protocol)
    indices = {part: store.split(name) for part, name in parts.items()}
    everything = np.concatenate(list(indices.values()))
    if (store.labels[everything] < 0).any():
        raise SkelmaeError("the .npz format needs a label for every sample; this dataset has unlabelled ones")
    length = int(frames or store.lengths[everything].max())
    width = store.num_persons * store.layout.num_joints * len(store.channels)
    bar = tqdm(total=everything.size, unit="sample", desc="exporting npz", disable=not progress)

    def rows(idx: np.ndarray) -> Iterator[np.ndarray]:
        for i in idx:
            seq = store.sequence(int(i))[:length].reshape(-1, width)
            row = np.zeros((length, width), np.float32)
            row[: len(seq)] = seq
            bar.update()
            yield row

    def one_hot(idx: np.ndarray) -> Iterator[np.ndarray]:
        yield from np.eye(store.num_classes)[store.labels[idx]]

    arrays = {}
    for part, idx in indices.items():
        arrays[f"x_{part}"] = ((idx.size, length, width), np.float32, rows(idx))
        arrays[f"y_{part}"] = ((idx.size, store.num_classes), np.float64, one_hot(idx))
    with bar:
        return write_npz(out, arrays, compress=compress)


def export_pyskl(root: str | Path, out: str | Path, progress: bool = True) -> Path:
    out = _output_file(out)
    store = SkeletonStore(root)
    names = store.names
    if len(set(names)) != len(names):
        raise SkelmaeError("PYSKL identifies samples by name (frame_dir); this dataset has repeated names")
    planar = store.channels == ["x", "y", "score"]
    if not planar and store.channels != ["x", "y", "z"]:
        raise SkelmaeError(f"PYSKL holds x, y, score or x, y, z channels; this dataset has {store.channels}")
    sizes = None
    if planar:
        if not {"img_h", "img_w"} <= set(store.meta_fields):
            raise SkelmaeError("a 2D dataset needs the image sizes (img_h, img_w) to give PYSKL pixel coordinates")
        sizes = np.stack([store.meta("img_h"), store.meta("img_w")], axis=1).astype(np.float32)
    annotations = []
    for i in tqdm(range(len(store)), unit="sample", desc="exporting pyskl", disable=not progress):
        seq = store.sequence(i).transpose(1, 0, 2, 3)  # (M, T, V, C)
        ann = {"frame_dir": names[i], "label": int(store.labels[i]), "total_frames": int(seq.shape[1])}
        if planar:
            h, w = sizes[i]
            xy, score = seq[..., :2], seq[..., 2]
            undetected = (xy == 0).all(axis=-1) & (score == 0)
            scale = np.array([w / 2, h / 2], dtype=np.float32)
            xy = xy * scale + scale
            xy[undetected] = 0
            ann.update(keypoint=xy, keypoint_score=score, img_shape=(int(h), int(w)), original_shape=(int(h), int(w)))
        else:
            ann["keypoint"] = seq
        annotations.append(ann)
    content = {"split": {name: [names[i] for i in store.split(name)] for name in store.split_names},
               "annotations": annotations}
    with atomic_output(out) as tmp, open(tmp, "wb") as fh:
        pickle.dump(content, fh, protocol=4)
    return Path(out)

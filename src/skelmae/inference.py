"""Using a trained model on new poses: the notebook API and ``skelmae predict``.

::

    import skelmae
    model = skelmae.load("runs/linear/last.pt")
    model.predict(np.load("clip.npy"))[0].top(3)   # [("wave", 0.91), ("clap", 0.05), ...]
    model.encode([seq_a, seq_b])                     # (2, D) frozen clip features

Everything the preprocessing needs (layout, channels, persons, window, test crop,
modality) is read from the checkpoint's ``data`` entry, so new input goes through exactly
the test-time pipeline of training: zero-padding of missing persons, the centred crop of
``test_crop`` of the valid frames resized to ``window`` frames, then the modality.

Raw sequences are float arrays (T, V, C) or (T, M, V, C) in the dataset's coordinates,
i.e. what ``SkeletonStore.sequence(i)`` returns; the file readers of
``skelmae.data.formats`` produce them from NTU ``.skeleton``, NW-UCLA ``.json`` and
PYSKL annotations. A torch tensor (N, C, T, V, M) is taken as an already preprocessed
batch (what a ``SkeletonDataset`` with the checkpoint's test transform yields).

Pickles (PYSKL) are read only when the caller asks for them by name (``fmt="pyskl"``):
unpickling runs code from the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from skelmae.data.dataset import SkeletonDataset
from skelmae.data.layouts import SkeletonLayout, get_layout
from skelmae.data.storage import SkeletonStore
from skelmae.data.transforms import build_transforms, is_planar
from skelmae.engine.checkpoint import load_checkpoint
from skelmae.engine.common import check_compatible, classifier_from_checkpoint
from skelmae.errors import CheckpointError, DataFormatError, SkelmaeError
from skelmae.models.build import build_mae
from skelmae.models.st_mae import SkeletonEncoder, SkeletonMAE
from skelmae.viz.reconstruct import Reconstruction, reconstruct

__all__ = ["SkeletonModel", "Prediction", "PoseSample", "load", "dataset_features", "read_pose_file", "POSE_FORMATS"]

Input = Union[np.ndarray, torch.Tensor, Sequence[np.ndarray]]
POSE_FORMATS = ("auto", "npy", "skeleton", "nw-ucla", "pyskl")
_SUFFIX_FORMATS = {".npy": "npy", ".skeleton": "skeleton", ".json": "nw-ucla"}


@dataclass
class Prediction:
    """Class probabilities of one sample."""

    probabilities: np.ndarray
    classes: list[str]

    @property
    def index(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def label(self) -> str:
        return self.classes[self.index]

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable classes as (name, probability), best first."""
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(self.classes[i], float(self.probabilities[i])) for i in order]

    def to_dict(self, k: int = 5) -> dict[str, Any]:
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return {
            "label": self.label,
            "top": [{"class": self.classes[i], "index": int(i), "probability": float(self.probabilities[i])} for i in order],
        }


@dataclass
class PoseSample:
    """One sequence read from a pose file; ``layout`` is the reader's layout name, if it knows it."""

    name: str
    sequence: np.ndarray
    layout: str | None = None


class SkeletonModel:
    """A trained encoder (MAE checkpoint) or classifier, with the preprocessing it was trained with."""

    def __init__(self, state: dict[str, Any], source: str = "<checkpoint>", device: str | torch.device = "cpu"):
        self.source, self.kind = source, state["kind"]
        self.device = torch.device(device)
        self.data = data = state["data"]
        self.layout = get_layout(data["layout"])
        self.channels: list[str] = list(data["channels"])
        self.num_persons = int(data["num_persons"])
        self.classes: list[str] = list(data["classes"])
        self.window = int(data["window"])
        self.modality = str(data.get("modality", "joint"))
        self.transform = build_transforms(
            self.layout, self.window, train=False, test_crop=data["test_crop"], min_crop=data["min_crop"],
            planar=is_planar(self.channels), modality=self.modality, align_view=bool(data.get("align_view", False)),
        )
        self.mae: SkeletonMAE | None = None
        self.classifier = None
        if self.kind == "mae":
            self.mae = build_mae(state["model_args"])
            try:
                self.mae.load_state_dict(state["model"])
            except RuntimeError as exc:
                raise CheckpointError(f"{source}: weights do not fit the masked autoencoder: {exc}") from exc
            self.encoder: SkeletonEncoder = self.mae.encoder
        elif self.kind == "classifier":
            self.classifier = classifier_from_checkpoint(state, source)
            self.encoder = self.classifier.encoder
            if len(self.classes) != state["num_classes"]:
                raise CheckpointError(f"{source}: {state['num_classes']} outputs but {len(self.classes)} class names")
        else:
            raise CheckpointError(f"{source}: unknown checkpoint kind {self.kind!r}; expected 'mae' or 'classifier'")
        self.network = (self.mae if self.mae is not None else self.classifier).to(self.device).eval()

    # -- description ------------------------------------------------------------------
    def expects(self) -> str:
        """What input this model takes, in words (used in every shape error)."""
        return (
            f"layout {self.layout.name} with {self.layout.num_joints} joints, channels ({', '.join(self.channels)}), "
            f"at most {self.num_persons} person{'s' if self.num_persons > 1 else ''}: "
            f"an array (T, {self.layout.num_joints}, {len(self.channels)}) or "
            f"(T, M<={self.num_persons}, {self.layout.num_joints}, {len(self.channels)})"
        )

    def __repr__(self) -> str:
        head = f"{len(self.classes)} classes" if self.classifier is not None else "encoder only"
        return f"SkeletonModel({self.source!r}, {self.kind}, {head}; {self.expects()}; window {self.window})"

    def check_layout(self, layout: str, source: str) -> None:
        if layout != self.layout.name:
            raise DataFormatError(source, "layout", f"holds {layout} skeletons", self.expects())

    # -- preprocessing ----------------------------------------------------------------
    def preprocess(self, sequence: np.ndarray, source: str = "input") -> torch.Tensor:
        """A raw (T, V, C) or (T, M, V, C) sequence -> the model input (C, window, V, M)."""
        arr = np.asarray(sequence)
        if arr.ndim == 3:
            arr = arr[:, None]
        if arr.ndim == 4 and arr.shape[1] > self.num_persons and not np.any(arr[:, self.num_persons :]):
            arr = arr[:, : self.num_persons]  # empty person slots beyond the model's (e.g. NTU's second actor)
        v, c = self.layout.num_joints, len(self.channels)
        if arr.ndim != 4 or arr.shape[0] == 0 or arr.shape[2:] != (v, c) or arr.shape[1] > self.num_persons:
            raise DataFormatError(
                source, "shape", f"an array of shape {tuple(np.shape(sequence))} does not fit the model", self.expects()
            )
        if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
            raise DataFormatError(source, "values", "non-numeric, NaN or infinite values", "finite numbers")
        padded = np.zeros((arr.shape[0], self.num_persons, v, c), dtype=np.float32)
        padded[:, : arr.shape[1]] = arr
        x = self.transform(padded.transpose(3, 0, 2, 1), np.random.default_rng(0))  # test pipeline: no randomness
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def batch(self, x: Input) -> torch.Tensor:
        """Any accepted input -> a preprocessed batch (N, C, window, V, M) on the model's device."""
        if isinstance(x, torch.Tensor):
            want = (len(self.channels), self.window, self.layout.num_joints, self.num_persons)
            if x.ndim != 5 or tuple(x.shape[1:]) != want:
                raise SkelmaeError(
                    f"a preprocessed batch must have shape (N, {', '.join(map(str, want))}) = (N, C, window, V, M), "
                    f"got {tuple(x.shape)}; pass raw sequences as numpy arrays to have them preprocessed"
                )
            return x.float().to(self.device)
        sequences = [x] if isinstance(x, np.ndarray) else list(x)
        if not sequences:
            raise SkelmaeError("no sequences given")
        items = [self.preprocess(s, f"sequence {i}") for i, s in enumerate(sequences)]
        return torch.stack(items).to(self.device)

    # -- inference --------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: Input, batch_size: int = 64) -> np.ndarray:
        """Frozen clip features (N, D): encoder tokens averaged over persons, time and joints."""
        batch = self.batch(x)
        return torch.cat(
            [self.encoder(chunk).mean(dim=(1, 2, 3)).float().cpu() for chunk in batch.split(batch_size)]
        ).numpy()

    @torch.no_grad()
    def probabilities(self, x: Input, batch_size: int = 64) -> np.ndarray:
        """Softmax class probabilities (N, K)."""
        if self.classifier is None:
            raise SkelmaeError(
                f"{self.source}: a pre-training (MAE) checkpoint has no classifier head; use the checkpoint of a "
                "linear probe or fine-tuning run to predict classes (encode() works on both)"
            )
        batch = self.batch(x)
        logits = torch.cat([self.classifier(chunk).float().cpu() for chunk in batch.split(batch_size)])
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, x: Input, batch_size: int = 64) -> list[Prediction]:
        """One :class:`Prediction` per sample."""
        return [Prediction(p, self.classes) for p in self.probabilities(x, batch_size)]

    def read_pose_file(self, path: str | Path, fmt: str = "auto") -> list[PoseSample]:
        """The sequences of a pose file, read with this checkpoint's dataset-preparation options
        (persons kept, layout, NTU second-actor rule) and checked against its layout."""
        preparation = self.data.get("preparation") or {}
        samples = read_pose_file(
            path, fmt, num_persons=self.num_persons, layout=self.layout,
            second_actor=preparation.get("second_actor", "zeros"),
        )
        for sample in samples:
            if sample.layout is not None:
                self.check_layout(sample.layout, str(path))
        return samples

    def reconstruct(self, sequence: np.ndarray, seed: int = 0) -> Reconstruction:
        """Masks and reconstructs one raw sequence with the MAE (see ``skelmae.viz.reconstruct``)."""
        if self.mae is None:
            raise SkelmaeError(f"{self.source}: reconstruction needs a pre-training (MAE) checkpoint, this is a {self.kind!r} one")
        if not isinstance(self.mae, SkeletonMAE):
            raise SkelmaeError(f"{self.source}: reconstructions are drawn for the transformer MAE (model.arch=st_mae)")
        if self.modality != "joint":
            raise SkelmaeError(
                f"{self.source}: the MAE was trained on the {self.modality!r} modality; reconstructions can be drawn "
                "as skeletons only for the 'joint' modality"
            )
        x = self.preprocess(sequence)[None].to(self.device)
        score = self.channels.index("score") if "score" in self.channels else None
        return reconstruct(self.mae, x, torch.Generator(device=self.device).manual_seed(seed), score_channel=score)


def dataset_features(
    model: SkeletonModel, store: SkeletonStore, indices: np.ndarray, batch_size: int = 64, progress: bool = True
) -> np.ndarray:
    """Frozen features (N, D) of dataset samples ``indices``, preprocessed as the checkpoint was trained."""
    check_compatible(model.data, store, model.source)
    loader = DataLoader(SkeletonDataset(store, indices=indices, transform=model.transform), batch_size=batch_size)
    batches = tqdm(loader, desc="features", disable=not progress, leave=False)
    return np.concatenate([model.encode(x, batch_size) for x, _ in batches])


def load(checkpoint: str | Path, device: str | torch.device = "cpu") -> SkeletonModel:
    """Load an MAE or classifier checkpoint for inference (eval mode, no gradients)."""
    return SkeletonModel(load_checkpoint(checkpoint), str(checkpoint), device)


# -- pose files -------------------------------------------------------------------------
def _read_npy(path: Path) -> list[PoseSample]:
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataFormatError(path, None, f"not a plain numeric .npy array ({exc})", "an array (T, V, C) or (T, M, V, C)") from exc
    except OSError as exc:
        raise DataFormatError(path, None, f"cannot read ({exc})") from exc
    return [PoseSample(path.stem, arr)]


def _annotations(obj: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(obj, dict) and "annotations" in obj:
        obj = obj["annotations"]
    if isinstance(obj, dict):
        obj = [obj]
    if not isinstance(obj, list) or not obj or not all(isinstance(a, dict) for a in obj):
        raise DataFormatError(
            path, None, f"a pickled {type(obj).__name__} is not PYSKL annotations",
            "one annotation dict, a list of them, or a dict with 'annotations'",
        )
    return obj


def _read_pyskl(path: Path, num_persons: int, layout: SkeletonLayout | None) -> list[PoseSample]:
    from skelmae.data.formats.pyskl import annotation_to_sequence, unpickle_arrays

    samples = []
    for i, ann in enumerate(_annotations(unpickle_arrays(path), path)):
        sequence, found = annotation_to_sequence(ann, num_persons, layout, path, f"annotation {i}")
        samples.append(PoseSample(str(ann.get("frame_dir", f"{path.stem}[{i}]")), sequence, found))
    return samples


def read_pose_file(
    path: str | Path,
    fmt: str = "auto",
    num_persons: int = 2,
    layout: SkeletonLayout | None = None,
    second_actor: str = "zeros",
) -> list[PoseSample]:
    """The sequences in one pose file. ``fmt`` ``auto`` goes by the suffix (.npy, .skeleton,
    .json); pickles need ``fmt="pyskl"``, said explicitly. ``num_persons`` and ``layout``
    (PYSKL: persons kept, layout instead of guessing it from the joint count) and
    ``second_actor`` (NTU) are the dataset-preparation options; ``SkeletonModel.read_pose_file``
    takes them from a checkpoint."""
    path = Path(path)
    if fmt not in POSE_FORMATS:
        raise SkelmaeError(f"unknown pose format {fmt!r}; expected one of {', '.join(POSE_FORMATS)}")
    if not path.is_file():
        raise DataFormatError(path, None, "file not found")
    if fmt == "auto":
        suffix = path.suffix.lower()
        if suffix in (".pkl", ".pickle"):
            raise DataFormatError(
                path, None, "is a pickle, and unpickling runs code from the file",
                "--format pyskl (fmt='pyskl') if you trust this file",
            )
        if suffix not in _SUFFIX_FORMATS:
            raise DataFormatError(path, None, f"unknown pose file type {path.suffix!r}", ".npy, .skeleton, .json or --format pyskl")
        fmt = _SUFFIX_FORMATS[suffix]
    if fmt == "npy":
        return _read_npy(path)
    if fmt == "pyskl":
        return _read_pyskl(path, num_persons, layout)
    if fmt == "skeleton":
        from skelmae.data.formats.ntu import load_sequence

        return [PoseSample(path.name.split(".")[0], load_sequence(path, second_actor), "ntu25")]
    from skelmae.data.formats.nw_ucla import load_sequence

    return [PoseSample(path.stem, load_sequence(path), "kinect20")]

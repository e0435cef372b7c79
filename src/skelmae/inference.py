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

Raw sequences are float arrays (T, V, C) or (T, M, V, C): what ``SkeletonStore.sequence(i)``
returns, or the same clip in raw coordinates. The dataset's import-time preprocessing,
recorded in the checkpoint (``data["preprocessing"]``, see
:class:`~skelmae.data.preprocessing.Preprocessing`: centring, 2D image normalisation, the
persons kept), is applied to every array first; it leaves a stored clip unchanged, so an
uncentred clip and the stored one give the same prediction. The registered dataset formats
of ``skelmae.data.formats`` read clips from pose files (``read_pose_file``: ``.npy``, NTU
``.skeleton``, NW-UCLA ``.json``, PYSKL annotations) with the options the dataset was
prepared with; the recorded preprocessing is applied to the clips a reader returns as given
(``PoseSample.preprocessed`` False, e.g. ``.npy``). A torch tensor (N, C, T, V, M) is taken
as an already preprocessed batch (what a ``SkeletonDataset`` with the checkpoint's test
transform yields).

Pickles (PYSKL) are read only when the caller asks for them by name (``fmt="pyskl"``):
unpickling runs code from the file.

The commands ``predict``, ``embed`` and ``visualize`` are :func:`predict_files`,
:func:`embed_split` and :func:`visualize_reconstruction`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from skelmae.data.dataset import SkeletonDataset
from skelmae.data.formats import PoseSample, read_pose_file
from skelmae.data.layouts import get_layout
from skelmae.data.preprocessing import Preprocessing, PreprocessingError
from skelmae.data.storage import SkeletonStore
from skelmae.data.transforms import build_transforms, is_planar
from skelmae.engine.checkpoint import load_checkpoint
from skelmae.engine.common import check_compatible, classifier_from_checkpoint, method_from_checkpoint
from skelmae.errors import CheckpointError, DataFormatError, SkelmaeError
from skelmae.models.common import Encoder, PretrainMethod
from skelmae.models.st_mae import SkeletonMAE
from skelmae.viz.plots import plot_embedding, tsne, write_embedding_csv
from skelmae.viz.reconstruct import Reconstruction, reconstruct, render_reconstruction
from skelmae.viz.render import Camera

__all__ = [
    "SkeletonModel", "Prediction", "PoseSample", "load", "dataset_features", "read_pose_file", "predict_files",
    "embed_split", "visualize_reconstruction",
]

Input = Union[np.ndarray, torch.Tensor, Sequence[np.ndarray]]


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


class SkeletonModel:
    """A pre-trained encoder (with its pre-training method) or a classifier, with the preprocessing it was trained with."""

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
        try:
            self.preprocessing = Preprocessing.from_dict(data.get("preprocessing"))  # older checkpoints: unknown
        except PreprocessingError as exc:
            raise CheckpointError(f"{source}: data.preprocessing: {exc}") from exc
        self.transform = build_transforms(
            self.layout, self.window, train=False, test_crop=data["test_crop"], min_crop=data["min_crop"],
            planar=is_planar(self.channels), modality=self.modality, align_view=bool(data.get("align_view", False)),
        )
        self.mae: PretrainMethod | None = None
        self.classifier = None
        if self.kind == "pretrain":
            self.mae = method_from_checkpoint(state, source)
            self.encoder: Encoder = self.mae.encoder
        else:
            self.classifier = classifier_from_checkpoint(state, source)
            self.encoder = self.classifier.encoder
            if len(self.classes) != state["num_classes"]:
                raise CheckpointError(f"{source}: {state['num_classes']} outputs but {len(self.classes)} class names")
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
    def preprocess(self, sequence: np.ndarray, source: str = "input", raw: bool = True) -> torch.Tensor:
        """A (T, V, C) or (T, M, V, C) sequence -> the model input (C, window, V, M).

        ``raw``: first apply the dataset's recorded import preprocessing
        (:meth:`Preprocessing.apply <skelmae.data.preprocessing.Preprocessing.apply>`), which
        leaves a clip already in the dataset's coordinates unchanged; 2D image normalisation
        is skipped for a clip whose x, y already lie within +-1.5, so it is never applied twice.
        """
        arr = np.asarray(sequence)
        if arr.ndim == 3:
            arr = arr[:, None]
        v, c = self.layout.num_joints, len(self.channels)
        wrong_shape = DataFormatError(
            source, "shape", f"an array of shape {tuple(np.shape(sequence))} does not fit the model", self.expects()
        )
        if arr.ndim != 4 or arr.shape[0] == 0 or arr.shape[2:] != (v, c):
            raise wrong_shape
        if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
            raise DataFormatError(source, "values", "non-numeric, NaN or infinite values", "finite numbers")
        if raw:
            try:
                arr = self.preprocessing.apply(arr)
            except PreprocessingError as exc:
                raise DataFormatError(source, "preprocessing", str(exc), self.preprocessing.describe()) from exc
        if arr.shape[1] > self.num_persons and not np.any(arr[:, self.num_persons :]):
            arr = arr[:, : self.num_persons]  # empty person slots beyond the model's (e.g. NTU's second actor)
        if arr.shape[1] > self.num_persons:
            raise wrong_shape
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
            [self.encoder.pooled(chunk).float().cpu() for chunk in batch.split(batch_size)]
        ).numpy()

    @torch.no_grad()
    def probabilities(self, x: Input, batch_size: int = 64) -> np.ndarray:
        """Softmax class probabilities (N, K)."""
        if self.classifier is None:
            raise SkelmaeError(
                f"{self.source}: a pre-training checkpoint has no classifier head; use the checkpoint of a "
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
        (persons kept, layout, NTU second-actor rule; every option the dataset recorded when its
        format reads the file) and checked against its layout.

        Warns when the file names joints other than the layout's (a mismatch the shape cannot
        show), and when clips come as given but the checkpoint does not record the dataset's
        preprocessing."""
        preparation = self.data.get("preparation") or {}
        samples = read_pose_file(
            path, fmt, preparation=preparation, max_persons=self.num_persons, layout=self.layout,
            second_actor=preparation.get("second_actor", "zeros"),
        )
        for sample in samples:
            if sample.layout is not None:
                self.check_layout(sample.layout, str(path))
            if sample.joint_names is not None and tuple(sample.joint_names) != self.layout.joint_names:
                warnings.warn(self._joint_mismatch(sample.joint_names, str(path)), stacklevel=2)
        if not self.preprocessing.known and any(not sample.preprocessed for sample in samples):
            warnings.warn(
                f"{path}: {self.source} does not know how its dataset's coordinates were preprocessed "
                f"({self.preprocessing.describe()}), so the clip is taken as given: it must already be in the "
                "dataset's coordinates (e.g. centred as the dataset was)", stacklevel=2,
            )
        return samples

    def _joint_mismatch(self, joint_names: Sequence[str], source: str) -> str:
        expected = self.layout.joint_names
        if len(joint_names) != len(expected):
            difference = f"{len(joint_names)} joints, not {len(expected)}"
        else:
            index = next(i for i, (a, b) in enumerate(zip(joint_names, expected)) if a != b)
            difference = f"joint {index} is {joint_names[index]!r}, not {expected[index]!r}"
        return (
            f"{source}: the file names joints other than the checkpoint's layout {self.layout.name} ({difference}); "
            "predictions on joints in another order are meaningless"
        )

    def reconstruct(self, sequence: np.ndarray, seed: int = 0, raw: bool = True) -> Reconstruction:
        """Masks and reconstructs one sequence with the MAE (see ``skelmae.viz.reconstruct``;
        ``raw`` as in :meth:`preprocess`)."""
        if self.mae is None:
            raise SkelmaeError(f"{self.source}: reconstruction needs a pre-training (MAE) checkpoint, this is a {self.kind!r} one")
        if not isinstance(self.mae, SkeletonMAE):
            raise SkelmaeError(f"{self.source}: reconstructions are drawn for the masked autoencoder (method.name=mae)")
        if self.modality != "joint":
            raise SkelmaeError(
                f"{self.source}: the MAE was trained on the {self.modality!r} modality; reconstructions can be drawn "
                "as skeletons only for the 'joint' modality"
            )
        x = self.preprocess(sequence, raw=raw)[None].to(self.device)
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


# -- the commands predict, embed and visualize -------------------------------------------
def predict_files(model: SkeletonModel, files: Sequence[str | Path], fmt: str = "auto", top_k: int = 5) -> list[dict[str, Any]]:
    """Top-``top_k`` classes of every sequence in every pose file: one result dict per
    sequence (``file``, ``sample``, ``label``, ``top``, and ``warnings`` when reading the file
    warned), or ``{"file", "error"}`` for a file that cannot be read or does not fit the
    model, so one bad file does not stop the rest. Warnings are also issued again as Python
    warnings, so that the command line shows them."""
    if model.classifier is None:
        raise SkelmaeError(
            f"{model.source}: a pre-training checkpoint has no classifier head; use a linear-probe or fine-tuned checkpoint"
        )
    results: list[dict[str, Any]] = []
    for path in files:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                samples = model.read_pose_file(path, fmt)
            for warning in caught:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
            batch = [
                model.preprocess(s.sequence, str(path) if len(samples) == 1 else f"{path} [{s.name}]", raw=not s.preprocessed)
                for s in samples
            ]
            predictions = model.predict(torch.stack(batch))
        except SkelmaeError as exc:
            results.append({"file": str(path), "error": str(exc)})
            continue
        notes = {"warnings": [str(w.message) for w in caught]} if caught else {}
        results.extend({"file": str(path), "sample": s.name, **p.to_dict(top_k), **notes} for s, p in zip(samples, predictions))
    return results


def embed_split(
    model: SkeletonModel,
    data: str | Path,
    split: str = "test",
    out: str | Path = "embedding.png",
    max_samples: int = 2000,
    perplexity: float = 30.0,
    seed: int = 0,
    batch_size: int = 64,
) -> list[Path]:
    """2-D t-SNE of the frozen clip features of a split (a seeded random subset of at most
    ``max_samples``): the scatter ``out`` (PNG) and its points in ``out`` with suffix .csv.
    Returns the files written."""
    store = SkeletonStore(data)
    indices = store.split(split)
    if len(indices) > max_samples:
        indices = np.sort(np.random.default_rng(seed).choice(indices, max_samples, replace=False))
    if len(indices) < 4:
        raise SkelmaeError(f"{data}: split {split!r} has {len(indices)} samples; t-SNE needs at least 4")
    points = tsne(dataset_features(model, store, indices, batch_size), seed=seed, perplexity=perplexity)
    labels = store.labels[indices]
    name = store.manifest.get("name") or Path(data).name
    title = f"t-SNE of frozen features: {Path(model.source).name} on {name} {split} ({len(indices)})"
    out = Path(out)
    return [
        plot_embedding(points, labels, store.classes, out, title),
        write_embedding_csv(out.with_suffix(".csv"), [store.names[i] for i in indices], labels, store.classes, points),
    ]


def visualize_reconstruction(
    model: SkeletonModel,
    out: str | Path,
    data: str | Path | None = None,
    file: str | Path | None = None,
    fmt: str = "auto",
    index: int = 0,
    split: str | None = None,
    name: str | None = None,
    seed: int = 0,
    camera: Camera = Camera(),
    fps: float = 30.0,
    sheet_frames: int = 8,
    stride: int = 1,
) -> list[Path]:
    """Input, masked tokens and the MAE's reconstruction of one sample, drawn side by side.

    The sample is sample ``index`` (within ``split``) or ``name`` of the dataset ``data``,
    or sequence ``index`` of the pose file ``file``. Returns the files written.
    """
    if (data is None) == (file is None):
        raise SkelmaeError("give exactly one of data (a dataset folder) or file (a pose file)")
    if data is not None:
        store = SkeletonStore(data)
        i = store.pick(index, split, name)
        sequence, title, raw = store.sequence(i), store.title(i), False
    else:
        samples = model.read_pose_file(file, fmt)
        if not 0 <= index < len(samples):
            raise SkelmaeError(f"{file}: holds {len(samples)} sequence(s); index {index} is outside")
        sequence, title, raw = samples[index].sequence, samples[index].name, not samples[index].preprocessed
    rec = model.reconstruct(sequence, seed=seed, raw=raw)
    return render_reconstruction(
        model.mae, rec, model.layout, model.channels, out, title, camera, fps=fps, sheet_frames=sheet_frames, stride=stride,
    )

"""Multi-stream ensembles: the class scores of several evaluations of the same clips, fused.

The supervised papers (CTR-GCN, InfoGCN, FreqMixFormer) train one network per input stream
(joint, bone, joint motion, bone motion; InfoGCN and FreqMixFormer also k = 1, 2, 8 of the
relative-joint transform) and report the accuracy of the weighted sum of the streams' test
scores. Their ``ensemble.py`` scripts add the *raw* scores, the networks' logits (CTR-GCN
with weights 0.6, 0.6, 0.4, 0.4 on NTU; FreqMixFormer searches the weights on the test set),
so that is the default here; ``softmax=True`` adds class probabilities instead, which keeps
one over-confident stream from dominating.

Each input is a folder written by ``skelmae evaluate``: ``logits.npy`` (samples x classes, in
the order of the evaluated split), ``metrics.json`` (the data folder and split) and
``data.json`` (the manifest hash, which identifies the data wherever it lies). The streams
must have evaluated the same clips: the same data, split, number of samples and of classes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skelmae.atomic import atomic_output, write_json_atomic
from skelmae.errors import SkelmaeError
from skelmae.eval.metrics import classification_metrics

__all__ = [
    "StreamScores", "load_stream", "check_same_clips", "parse_weights", "fuse", "ensemble", "default_output",
    "write_ensemble",
]

ENSEMBLE_FILE = "ensemble.json"
FUSED_LOGITS_FILE = "logits.npy"


@dataclass(frozen=True)
class StreamScores:
    """One evaluated stream: its scores and what they were computed on."""

    folder: Path
    logits: np.ndarray  # (samples, classes)
    data: str  # the evaluated data folder
    split: str
    manifest: str | None  # sha256 of the data's manifest.json (data.json), None if the folder has none
    checkpoint: str | None

    @property
    def name(self) -> str:
        return str(self.folder)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SkelmaeError(f"{path}: cannot be read as JSON ({exc})") from exc


def load_stream(folder: str | Path) -> StreamScores:
    """The scores of a ``skelmae evaluate`` output folder."""
    folder = Path(folder)
    logits_path, metrics_path = folder / "logits.npy", folder / "metrics.json"
    for path in (logits_path, metrics_path):
        if not path.is_file():
            raise SkelmaeError(f"{path} not found: pass folders written by `skelmae evaluate` (logits.npy + metrics.json)")
    try:
        logits = np.load(logits_path)
    except (OSError, ValueError) as exc:
        raise SkelmaeError(f"{logits_path}: not a readable .npy array ({exc})") from exc
    if logits.ndim != 2 or not np.issubdtype(logits.dtype, np.floating):
        raise SkelmaeError(f"{logits_path}: expected a float (samples, classes) array, got {logits.dtype} {logits.shape}")
    metrics = _read_json(metrics_path)
    missing = sorted({"data", "split"} - set(metrics))
    if missing:
        raise SkelmaeError(f"{metrics_path}: has no {missing} (written by an older skelmae evaluate? evaluate again)")
    provenance = _read_json(folder / "data.json") if (folder / "data.json").is_file() else {}
    return StreamScores(folder, logits, str(metrics["data"]), str(metrics["split"]), provenance.get("manifest_sha256"),
                        metrics.get("checkpoint"))


def check_same_clips(streams: Sequence[StreamScores]) -> None:
    """Refuses streams that did not score the same clips, naming the stream and what differs."""
    if not streams:
        raise SkelmaeError("an ensemble needs at least one evaluation folder")
    first = streams[0]
    for other in streams[1:]:
        where = f"{other.folder} and {first.folder}"
        if first.manifest and other.manifest:
            if other.manifest != first.manifest:
                raise SkelmaeError(f"{where} evaluated different data: manifest sha256 {other.manifest[:12]}… vs "
                                   f"{first.manifest[:12]}… ({other.data} vs {first.data})")
        elif os.path.abspath(other.data) != os.path.abspath(first.data):
            raise SkelmaeError(f"{where} evaluated different data folders: {other.data} vs {first.data}")
        if other.split != first.split:
            raise SkelmaeError(f"{where} evaluated different splits: {other.split!r} vs {first.split!r}")
        if other.logits.shape != first.logits.shape:
            (n, c), (n0, c0) = other.logits.shape, first.logits.shape
            raise SkelmaeError(f"{where} have scores of different shapes: {n} samples x {c} classes vs "
                               f"{n0} samples x {c0} classes")


def parse_weights(text: str | None, count: int) -> list[float]:
    """``"w1,w2,..."`` -> one non-negative weight per stream (not all zero); None: all 1."""
    if text is None:
        return [1.0] * count
    try:
        weights = [float(item) for item in text.split(",")]
    except ValueError:
        raise SkelmaeError(f"--weights {text!r}: expected comma-separated numbers such as 0.6,0.6,0.4,0.4") from None
    if len(weights) != count:
        raise SkelmaeError(f"--weights {text!r}: {len(weights)} weight(s) for {count} evaluation folder(s); give one each")
    if not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights):
        raise SkelmaeError(f"--weights {text!r}: expected finite, non-negative weights, not all zero")
    return weights


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def fuse(scores: Sequence[np.ndarray], weights: Sequence[float], softmax: bool = False) -> np.ndarray:
    """The weighted sum of (samples, classes) scores, of their softmax when ``softmax``."""
    terms = [_softmax(s.astype(np.float64)) if softmax else s.astype(np.float64) for s in scores]
    return sum(w * t for w, t in zip(weights, terms))


def _metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1, top-5, mean-class accuracy and samples, as ``skelmae evaluate`` reports them."""
    return classification_metrics(torch.from_numpy(scores), torch.from_numpy(labels), scores.shape[1])


def ensemble(
    streams: Sequence[StreamScores], labels: np.ndarray, weights: Sequence[float] | None = None, softmax: bool = False
) -> tuple[dict[str, Any], np.ndarray]:
    """(report, fused scores): each stream's and the fusion's accuracy against ``labels`` (the
    evaluated split's labels from the data store, in its order)."""
    check_same_clips(streams)
    weights = [1.0] * len(streams) if weights is None else [float(w) for w in weights]
    if len(weights) != len(streams):
        raise SkelmaeError(f"{len(weights)} weight(s) for {len(streams)} stream(s); give one each")
    samples, classes = streams[0].logits.shape
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (samples,):
        raise SkelmaeError(f"{streams[0].folder}: {samples} scored samples, but split {streams[0].split!r} of "
                           f"{streams[0].data} has {labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise SkelmaeError(f"split {streams[0].split!r} of {streams[0].data} has labels outside the {classes} scored classes")
    fused = fuse([s.logits for s in streams], weights, softmax)
    report = {
        "data": streams[0].data, "split": streams[0].split, "samples": samples, "classes": classes,
        "scores": "softmax" if softmax else "logits",
        "streams": [{"folder": s.name, "checkpoint": s.checkpoint, "weight": w, **_metrics(s.logits, labels)}
                    for s, w in zip(streams, weights)],
        "fusion": _metrics(fused, labels),
    }
    return report, fused


def default_output(streams: Sequence[StreamScores]) -> Path:
    """``ensemble-<split>`` in the folder that holds all the streams' runs (e.g. runs/nwucla for
    runs/nwucla/joint/eval-xview_test and runs/nwucla/bone/eval-xview_test)."""
    runs = os.path.commonpath([str(s.folder.resolve().parent) for s in streams])
    return Path(runs) / f"ensemble-{streams[0].split}"


def write_ensemble(out: str | Path, report: dict[str, Any], fused: np.ndarray) -> Path:
    """``ensemble.json`` and the fused scores (``logits.npy``) in ``out``, each written atomically."""
    out = Path(out)
    with atomic_output(out / FUSED_LOGITS_FILE) as tmp:
        np.save(tmp, fused.astype(np.float32))
    return write_json_atomic(out / ENSEMBLE_FILE, report)

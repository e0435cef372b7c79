"""Figures every run writes, and the embedding scatter of ``skelmae embed``.

- ``plot_training_curves``: ``curves.png`` from a run's ``metrics.jsonl`` with one panel
  per kind of figure found there: losses, learning rate, accuracies (top-1, top-5,
  mean-class). The x axis is the epoch when every record has one, else the step. When a
  resumed run logged an epoch twice, the later record wins.
- ``write_confusion_matrix``: ``<stem>.csv`` (raw counts, rows = true class, columns =
  predicted class, class names as headers) and ``<stem>.png`` (colour = share of the
  true class, i.e. row-normalised recall, so rare classes are as visible as common
  ones; counts are printed in the cells when there are at most 30 classes).
- ``tsne`` + ``plot_embedding`` + ``write_embedding_csv``: scikit-learn's t-SNE of frozen
  features to 2-D, PCA initialised and seeded (so a figure is reproducible), perplexity
  capped below a third of the sample count as t-SNE requires, exact gradients up to 500
  samples and the Barnes-Hut approximation above; a scatter coloured by class and the
  points as CSV.

All figures use matplotlib's Agg canvas directly (no pyplot state) and are written under
a temporary name, then renamed.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skelmae.atomic import atomic_output, write_text_atomic

__all__ = ["read_metrics", "plot_training_curves", "write_confusion_matrix", "tsne", "plot_embedding", "write_embedding_csv"]

EXACT_TSNE_MAX = 500  # below this many samples exact t-SNE is both faster and exact; above, Barnes-Hut

CURVE_PANELS = {  # panel title -> predicate on a metric key
    "loss": lambda key: key.endswith("loss"),
    "learning rate": lambda key: key.endswith("/lr") or key == "lr",
    "accuracy (%)": lambda key: key.rsplit("/", 1)[-1] in ("top1", "top5", "mean_class", "accuracy"),
}


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path) -> Path:
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return path


def _write_csv(path: Path, rows: Iterable[Sequence[Any]]) -> Path:
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    return write_text_atomic(path, text.getvalue())


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``; a torn last line (a killed run) is skipped."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def plot_training_curves(metrics_path: str | Path, out_path: str | Path) -> Path | None:
    """Writes ``out_path`` (PNG); returns None when the file holds no plottable figure."""
    records = read_metrics(metrics_path) if Path(metrics_path).is_file() else []
    x_key = "epoch" if records and all("epoch" in r for r in records) else "step"
    by_x: dict[float, dict[str, float]] = {}
    for record in records:
        if x_key in record:
            by_x.setdefault(record[x_key], {}).update(
                {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            )
    xs = sorted(by_x)
    panels = {
        title: sorted({k for row in by_x.values() for k in row if match(k)}) for title, match in CURVE_PANELS.items()
    }
    panels = {title: keys for title, keys in panels.items() if keys}
    if not panels:
        return None
    from matplotlib.ticker import MaxNLocator

    figure = _new_figure(4.2 * len(panels), 3.2)
    for i, (title, keys) in enumerate(panels.items()):
        ax = figure.add_subplot(1, len(panels), i + 1)
        for key in keys:
            points = [(x, by_x[x][key]) for x in xs if key in by_x[x] and math.isfinite(by_x[x][key])]
            if points:
                px, py = zip(*points)
                ax.plot(px, py, marker="o" if len(points) < 30 else None, markersize=3, label=key)
        values = [row[k] for row in by_x.values() for k in keys if k in row]
        if title == "loss" and min(values) > 0 and max(values) > 10 * min(values):
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(x_key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figure.tight_layout()
    return _save(figure, Path(out_path))


def write_confusion_matrix(
    cm: np.ndarray, classes: Sequence[str], stem: str | Path, title: str = "confusion matrix"
) -> tuple[Path, Path]:
    """Writes ``<stem>.csv`` and ``<stem>.png`` for a (K, K) count matrix (rows: true class)."""
    cm = np.asarray(cm, dtype=np.int64)
    k = len(classes)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix of shape {cm.shape} for {k} classes")
    stem = Path(stem)
    csv_path, png_path = stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + ".png")
    _write_csv(csv_path, [["true \\ predicted", *classes], *([name, *row.tolist()] for name, row in zip(classes, cm))])

    support = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, support, out=np.zeros(cm.shape, dtype=np.float64), where=support > 0)
    side = min(max(4.0, 0.32 * k + 2.5), 24.0)
    figure = _new_figure(side + 1.0, side)
    ax = figure.add_subplot(1, 1, 1)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    labelled = k <= 30
    ticks = np.arange(k) if labelled else np.arange(0, k, max(1, k // 20))
    ax.set_xticks(ticks, [classes[i] for i in ticks] if labelled else ticks, rotation=90, fontsize=7)
    ax.set_yticks(ticks, [classes[i] for i in ticks] if labelled else ticks, fontsize=7)
    if labelled:
        for (r, c), count in np.ndenumerate(cm):
            if count:
                ax.text(c, r, str(count), ha="center", va="center", fontsize=6,
                        color="white" if share[r, c] > 0.5 else "black")
    total = int(cm.sum())
    accuracy = 100 * np.trace(cm) / total if total else 0.0
    ax.set_title(f"{title} (top-1 {accuracy:.1f} %, {total} samples)", fontsize=10)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    figure.tight_layout()
    _save(figure, png_path)
    return png_path, csv_path


def tsne(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """(N, D) features -> (N, 2) t-SNE coordinates (N >= 4)."""
    from sklearn.manifold import TSNE

    n = len(features)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 samples, got {n}")
    perplexity = min(perplexity, (n - 1) / 3)
    method = "exact" if n <= EXACT_TSNE_MAX else "barnes_hut"
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, method=method).fit_transform(
        np.asarray(features, dtype=np.float32)
    )


def plot_embedding(
    points: np.ndarray, labels: np.ndarray, classes: Sequence[str], out_path: str | Path, title: str = ""
) -> Path:
    """A 2-D scatter coloured by class; the legend names the classes when there are at most 20."""
    from matplotlib import colormaps

    labels = np.asarray(labels)
    present = np.unique(labels)
    cmap = colormaps["tab20" if len(classes) <= 20 else "turbo"]
    figure = _new_figure(7.5 if len(present) <= 20 else 6.0, 6.0)
    ax = figure.add_subplot(1, 1, 1)
    for label in present:
        color = cmap(label % 20) if len(classes) <= 20 else cmap(label / max(1, len(classes) - 1))
        pts = points[labels == label]
        name = classes[label] if 0 <= label < len(classes) else "unlabelled"
        ax.scatter(pts[:, 0], pts[:, 1], s=10, color=color, label=name, linewidths=0)
    if len(present) <= 20:
        ax.legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, Path(out_path))


def write_embedding_csv(
    path: str | Path, names: Sequence[str], labels: np.ndarray, classes: Sequence[str], points: np.ndarray
) -> Path:
    """The 2-D points, one row per sample: ``name,label,class,x,y`` (class empty when unlabelled)."""
    rows = (
        [name, int(label), classes[label] if label >= 0 else "", f"{x:.4f}", f"{y:.4f}"]
        for name, label, (x, y) in zip(names, labels, points)
    )
    return _write_csv(Path(path), [["name", "label", "class", "x", "y"], *rows])

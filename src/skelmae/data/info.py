"""Summary of a dataset folder: splits, classes, lengths, layout (``skelmae data info``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table

from skelmae.data.storage import SkeletonStore, leftovers


def summarize(store: SkeletonStore) -> dict[str, Any]:
    lengths = store.lengths
    splits = {name: store.split(name) for name in store.split_names}
    per_class = {
        name: np.bincount(store.labels[idx][store.labels[idx] >= 0], minlength=store.num_classes).tolist()
        for name, idx in splits.items()
    }
    return {
        "name": store.manifest.get("name"),
        "layout": store.layout.name,
        "joints": store.layout.num_joints,
        "channels": store.channels,
        "persons": store.num_persons,
        "samples": len(store),
        "frames": int(lengths.sum()),
        "length": {
            "min": int(lengths.min()), "median": float(np.median(lengths)),
            "mean": round(float(lengths.mean()), 1), "max": int(lengths.max()),
        } if len(store) else {},
        "splits": {name: int(idx.size) for name, idx in splits.items()},
        "classes": store.classes,
        "per_class": per_class,
        "meta_fields": store.meta_fields,
        "dtype": str(store.dtype),
        "source": _source_summary(store.manifest.get("source", {})),
        "leftovers": [p.name for p in leftovers(store.root)],  # hidden folders of interrupted runs
    }


def _source_summary(source: dict[str, Any]) -> dict[str, Any]:
    """Provenance worth a glance: scalar entries, and lists of paths joined (long lists are counted)."""
    out: dict[str, Any] = {}
    for key, value in source.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value) and len(value) <= 4:
            out[key] = " ".join(value)
    return out


def describe(root: str | Path) -> Group:
    info = summarize(SkeletonStore(root))
    head = Table(show_header=False, title=f"dataset {root}")
    length = info["length"]
    for key, value in (
        ("name", info["name"]), ("layout", f"{info['layout']} ({info['joints']} joints)"),
        ("channels", ", ".join(info["channels"])), ("persons", info["persons"]), ("samples", info["samples"]),
        ("frames", info["frames"]), ("dtype", info["dtype"]),
        ("length min/median/mean/max", f"{length.get('min')}/{length.get('median')}/{length.get('mean')}/{length.get('max')}"),
        ("splits", ", ".join(f"{k} {v}" for k, v in info["splits"].items())),
        ("per-sample fields", ", ".join(info["meta_fields"]) or "-"),
        *((f"source: {key}", value) for key, value in info["source"].items()),
        *(("left by an interrupted run", f"{name} (the next `skelmae data prepare --out {root}` removes it)")
          for name in info["leftovers"]),
    ):
        head.add_row(key, str(value))
    classes = Table(title="samples per class and split")
    classes.add_column("#", justify="right")
    classes.add_column("class")
    for split in info["per_class"]:
        classes.add_column(split, justify="right")
    for c, name in enumerate(info["classes"]):
        classes.add_row(str(c), name, *(str(info["per_class"][s][c]) for s in info["per_class"]))
    return Group(head, classes)

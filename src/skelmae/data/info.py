"""Summary of a dataset folder: splits, classes, lengths, layout and its joints, preprocessing
(``skelmae data info``)."""

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
        "joint_tree": [
            {"index": j, "name": name, "parent": None if parent == j else store.layout.joint_names[parent]}
            for j, (name, parent) in enumerate(zip(store.layout.joint_names, store.layout.parents))
        ],
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
        "preprocessing": store.preprocessing.to_dict(),
        "source": _source_summary(store.manifest.get("source", {})),
        "leftovers": [p.name for p in leftovers(store.root)],  # hidden folders of interrupted runs
    }


def _source_summary(source: dict[str, Any]) -> dict[str, Any]:
    """Provenance worth a glance: scalar entries, short lists of paths joined, and the options
    (``key=value``, those of plain values)."""
    out: dict[str, Any] = {}
    for key, value in source.items():
        if _scalar(value):
            out[key] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value) and len(value) <= 4:
            out[key] = " ".join(value)
        elif isinstance(value, dict) and value:
            out[key] = ", ".join(f"{k}={v}" for k, v in value.items() if _scalar(v))
    return out


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def describe(root: str | Path) -> Group:
    store = SkeletonStore(root)
    info = summarize(store)
    head = Table(show_header=False, title=f"dataset {root}")
    length = info["length"]
    for key, value in (
        ("name", info["name"]), ("layout", f"{info['layout']} ({info['joints']} joints)"),
        ("channels", ", ".join(info["channels"])), ("persons", info["persons"]), ("samples", info["samples"]),
        ("frames", info["frames"]), ("dtype", info["dtype"]),
        ("length min/median/mean/max", f"{length.get('min')}/{length.get('median')}/{length.get('mean')}/{length.get('max')}"),
        ("splits", ", ".join(f"{k} {v}" for k, v in info["splits"].items())),
        ("per-sample fields", ", ".join(info["meta_fields"]) or "-"),
        ("preprocessing", store.preprocessing.describe()),
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
    joints = Table(title=f"joints of layout {info['layout']}")
    joints.add_column("#", justify="right")
    joints.add_column("joint")
    joints.add_column("parent")
    for joint in info["joint_tree"]:
        joints.add_row(str(joint["index"]), joint["name"], joint["parent"] or "- (root)")
    return Group(head, joints, classes)

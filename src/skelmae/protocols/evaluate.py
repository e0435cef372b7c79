"""Metrics of a trained classifier on one split: a protocol without training.

Preprocessing (window, test crop, modality, view alignment) is read from the checkpoint;
the data must have the checkpoint's joints and channels. Writes ``logits.npy`` and
``metrics.json`` beside the usual run files (default folder: ``eval-<split>`` beside the
checkpoint); the confusion matrix comes from the plotting callback.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skelmae.atomic import atomic_output, write_json_atomic
from skelmae.config import DataConfig, EvaluateConfig, TrainConfig
from skelmae.data.storage import SkeletonStore
from skelmae.engine.common import check_compatible, load_classifier, make_dataset, make_loader
from skelmae.engine.evaluation import evaluate_classifier
from skelmae.engine.trainer import Callback, Protocol, Trainer
from skelmae.errors import CheckpointError, ConfigError


class Evaluate(Protocol):
    name = "evaluate"

    def __init__(self, cfg: EvaluateConfig):
        self.config, self.train_cfg, self.optim_cfg = cfg, cfg.train, None

    def setup(self, trainer: Trainer) -> None:
        cfg, info = self.config, trainer.info
        self.model, ckpt = load_classifier(cfg.checkpoint)
        self.model.to(info.device)
        saved = ckpt["data"]
        store = SkeletonStore(cfg.data_root or saved["root"])
        check_compatible(saved, store, cfg.checkpoint)
        if list(saved["classes"]) != store.classes:
            raise CheckpointError(f"{cfg.checkpoint}: trained on {len(saved['classes'])} classes that differ from {store.root}'s")
        self.split = cfg.split or ckpt.get("config", {}).get("data", {}).get("test_split", "test")
        if not self.train_cfg.output_dir:
            self.train_cfg.output_dir = str(Path(cfg.checkpoint).parent / f"eval-{self.split}")
        data = DataConfig(root=str(store.root), window=saved["window"], test_crop=saved["test_crop"], min_crop=saved["min_crop"],
                          modality=saved["modality"], batch_size=cfg.batch_size, align_view=bool(saved.get("align_view", False)),
                          num_workers=cfg.num_workers)
        loader = make_loader(make_dataset(store, data, self.split, train=False), data, info, train=False, seed=0)
        self.metrics, self.logits, self.labels = evaluate_classifier(self.model, loader, info, self.train_cfg, store.num_classes, desc=self.split)
        self.store = store

    def model_description(self) -> dict[str, Any]:
        return {}

    def provenance(self) -> dict[str, Any]:
        return {"checkpoint": self.config.checkpoint, "root": str(self.store.root), "manifest_sha256": self.store.manifest_hash()}

    def summary(self, trainer: Trainer) -> dict[str, Any]:
        if trainer.info.is_main:
            with atomic_output(trainer.path / "logits.npy") as tmp:
                np.save(tmp, self.logits.numpy())
            write_json_atomic(trainer.path / "metrics.json", {"checkpoint": self.config.checkpoint, "data": str(self.store.root),
                                                              "split": self.split, **self.metrics})
        trainer.emit("evaluation", split=self.split, logits=self.logits, labels=self.labels, classes=self.store.classes)
        return {"split": self.split, "out_dir": str(trainer.path), **self.metrics}


def data_and_split(data_root: str | None, split: str, overrides: Sequence[str]) -> tuple[str | None, str]:
    """The data folder and split to evaluate: ``--data`` / ``--split``, or the keys the training
    commands use for them, ``data.root=DIR`` / ``data.test_split=NAME``."""
    given = {"data.root": data_root or "", "data.test_split": split}
    for item in overrides:
        key, has_value, value = item.partition("=")
        if not has_value or key not in given:
            raise ConfigError(
                f"evaluate takes only data.root=DIR and data.test_split=NAME as key=value (or --data, --split), got {item!r}"
            )
        if given[key] and given[key] != value:
            raise ConfigError(f"{key} is given twice: {given[key]!r} and {value!r}")
        given[key] = value
    return given["data.root"] or None, given["data.test_split"]


def run_evaluate(
    checkpoint: str, data_root: str | None = None, split: str = "", out_dir: str | None = None,
    device: str = "auto", batch_size: int = 128, num_workers: int = 2, callbacks: list[Callback] = (),
) -> dict[str, Any]:
    train = TrainConfig(epochs=0, device=device, output_dir=out_dir or "", progress=False)
    cfg = EvaluateConfig(checkpoint=str(checkpoint), data_root=data_root or "", split=split, batch_size=batch_size,
                         num_workers=num_workers, train=train)
    return Trainer(Evaluate(cfg), callbacks).run()

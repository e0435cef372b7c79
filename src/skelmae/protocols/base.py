"""What the protocols that train on a data-set folder share (data description, loader, best epoch)."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from skelmae.config import DataConfig, SemiConfig
from skelmae.data.storage import SkeletonStore
from skelmae.engine.common import data_description, input_spec
from skelmae.engine.trainer import Protocol, Trainer
from skelmae.errors import ConfigError
from skelmae.eval.subsets import carve_validation, labelled_subset, subset_path


def labelled_indices(
    store: SkeletonStore, data: DataConfig, semi: SemiConfig | None = None
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(train, validation) sample indices and, with ``semi``, the label-subset file used.

    The validation split is carved from the labelled training samples, so no extra labels are
    used; with ``data.val_group`` it holds whole groups (subjects) that training never sees.
    """
    train_idx = store.split(data.train_split)
    subset_file = None
    if semi is not None:
        if not 0 < semi.fraction < 1:
            raise ConfigError(f"semi needs 0 < semi.fraction < 1 (e.g. 0.01 or 0.1), got {semi.fraction}")
        path = Path(semi.subset_file) if semi.subset_file else subset_path(store.root, data.train_split, semi.fraction, semi.seed)
        train_idx = labelled_subset(train_idx, store.labels[train_idx], semi.fraction, semi.seed, path)
        subset_file = str(path)
    if data.val_group and data.val_group not in store.meta_fields:
        raise ConfigError(f"data.val_group={data.val_group}: {store.root} has no such field; it has {store.meta_fields}")
    groups = store.meta(data.val_group)[train_idx] if data.val_group and data.val_fraction > 0 else None
    try:
        train_idx, val_idx = carve_validation(train_idx, store.labels[train_idx], data.val_fraction, data.val_seed, groups)
    except ValueError as exc:
        raise ConfigError(f"data.val_group={data.val_group}: {exc}") from None
    return train_idx, val_idx, subset_file


class DatasetProtocol(Protocol):
    """Trains from ``self.loader`` over the data set ``self.store`` (both set in ``setup``)."""

    def steps_per_epoch(self) -> int:
        return len(self.loader)

    def batches(self, epoch: int):
        self.loader.sampler.set_epoch(epoch)
        return self.loader

    def data_description(self) -> dict[str, Any]:
        return data_description(self.store, self.config.data)

    def provenance(self) -> dict[str, Any]:
        return {"root": str(self.store.root), "manifest_sha256": self.store.manifest_hash()}


class ClassifierProtocol(DatasetProtocol):
    """Trains a classifier and picks the epoch best on validation; the test split never chooses.

    A subclass sets ``backbone``, ``head``, ``train_idx``, ``val_idx`` in ``setup`` and says
    how to score the validation and test splits.
    """

    best: dict[str, Any] | None = None
    best_test: dict[str, Any] | None = None  # only with train.report_best_test
    test: dict[str, Any] | None = None
    untrained_init = "none"  # what the summary says for ``init`` when no checkpoint was given
    save_best = True  # keep ``best.pt`` (the weights of the epoch best on validation)

    @abstractmethod
    def evaluate_validation(self) -> dict[str, Any]:
        """Metrics on the validation split (called only when it is not empty)."""

    @abstractmethod
    def evaluate_test(self, last: bool) -> dict[str, Any]:
        """Metrics on the test split; ``last`` when they are the final ones of the run."""

    def end_of_epoch(self, trainer: Trainer, epoch: int, last: bool) -> dict[str, Any]:
        if (epoch + 1) % self.train_cfg.eval_every and not last:
            return {}
        val = self.evaluate_validation() if self.val_idx.size else None
        improved = val is not None and (self.best is None or val["top1"] > self.best["val"]["top1"])
        record = {f"val/{k}": v for k, v in (val or {}).items()}
        if improved or last or val is None or self.train_cfg.report_best_test:
            self.test = self.evaluate_test(last)
            record.update({f"test/{k}": v for k, v in self.test.items()})
            if self.train_cfg.report_best_test and (self.best_test is None
                                                    or self.test["top1"] > self.best_test["test"]["top1"]):
                self.best_test = {"epoch": epoch + 1, "test": self.test}
        if improved:
            self.best = {"epoch": epoch + 1, "val": val, "test": self.test}
            if self.save_best:
                trainer.save("best.pt")
        return record

    def model_description(self) -> dict[str, Any]:
        return {
            "kind": "classifier", "input": input_spec(self.store, self.config.data.window).to_dict(),
            "backbone": self.backbone, "head": self.head, "num_classes": self.store.num_classes,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_test": self.best_test}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.best_test = state.get("best_test")

    def summary(self, trainer: Trainer) -> dict[str, Any]:
        if self.test is None:  # resumed after the last epoch had finished
            self.test = self.evaluate_test(last=True)
        cfg = self.config
        return {
            "protocol": self.name, "init": cfg.init or self.untrained_init, "head": self.head["name"],
            "epochs": cfg.train.epochs, "train_samples": int(self.train_idx.size), "val_samples": int(self.val_idx.size),
            **self.provenance(), "test": self.test, "best_on_val": self.best, "checkpoint": str(trainer.path / "last.pt"),
            **({"best_test_epoch": self.best_test} if cfg.train.report_best_test else {}),
        }

"""What the protocols that train on a data-set folder share (data description, loader, best epoch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skelmae.config import DataConfig, SemiConfig
from skelmae.data.storage import SkeletonStore
from skelmae.engine.common import data_description, input_spec
from skelmae.engine.trainer import Protocol
from skelmae.errors import ConfigError
from skelmae.eval.subsets import carve_validation, labelled_subset, subset_path


def labelled_indices(
    store: SkeletonStore, data: DataConfig, semi: SemiConfig | None = None
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(train, validation) sample indices and, with ``semi``, the label-subset file used.

    The validation split is carved from the labelled training samples, so no extra labels are used.
    """
    train_idx = store.split(data.train_split)
    subset_file = None
    if semi is not None:
        if not 0 < semi.fraction < 1:
            raise ConfigError(f"semi needs 0 < semi.fraction < 1 (e.g. 0.01 or 0.1), got {semi.fraction}")
        path = Path(semi.subset_file) if semi.subset_file else subset_path(store.root, data.train_split, semi.fraction, semi.seed)
        train_idx = labelled_subset(train_idx, store.labels[train_idx], semi.fraction, semi.seed, path)
        subset_file = str(path)
    train_idx, val_idx = carve_validation(train_idx, store.labels[train_idx], data.val_fraction, data.val_seed)
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
    """Trains a classifier (``self.backbone``, ``self.head`` descriptions) and keeps the epoch best on validation."""

    best: dict[str, Any] | None = None
    test: dict[str, Any] | None = None

    def model_description(self) -> dict[str, Any]:
        return {
            "kind": "classifier", "input": input_spec(self.store, self.config.data.window).to_dict(),
            "backbone": self.backbone, "head": self.head, "num_classes": self.store.num_classes,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]

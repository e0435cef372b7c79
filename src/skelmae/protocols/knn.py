"""k-nearest-neighbour retrieval on frozen features: a protocol without training.

Training and test features come from the frozen encoder with the deterministic test
transform; see :func:`skelmae.eval.knn.knn_predict` for the voting rule.
"""

from __future__ import annotations

from typing import Any

import torch

from skelmae.config import KnnConfig
from skelmae.engine.common import downstream_model, open_store
from skelmae.engine.evaluation import encode_samples
from skelmae.engine.trainer import Callback, Protocol, Trainer
from skelmae.errors import ConfigError
from skelmae.eval.knn import knn_predict
from skelmae.protocols.linear import HEAD as LINEAR_HEAD


class Knn(Protocol):
    name = "knn"

    def __init__(self, cfg: KnnConfig):
        if not cfg.init:
            raise ConfigError("knn evaluates a pre-trained encoder: set init=PATH")
        self.config, self.train_cfg, self.optim_cfg = cfg, cfg.train, None

    def setup(self, trainer: Trainer) -> None:
        cfg, info = self.config, trainer.info
        self.store = open_store(cfg.data)
        self.model, _ = downstream_model(cfg.init, None, LINEAR_HEAD, self.store, cfg.data.window)
        self.model.to(info.device).eval()

        def features(split: str) -> tuple[torch.Tensor, torch.Tensor]:
            indices = self.store.split(split)
            return encode_samples(self.model.features, self.store, cfg.data, info, cfg.train, indices, desc=f"{split} features")

        self.train_x, self.train_y = features(cfg.data.train_split)
        self.test_x, self.test_y = features(cfg.data.test_split)

    def model_description(self) -> dict[str, Any]:
        return {}

    def provenance(self) -> dict[str, Any]:
        return {"root": str(self.store.root), "manifest_sha256": self.store.manifest_hash()}

    def summary(self, trainer: Trainer) -> dict[str, Any]:
        results = {}
        for k in self.config.k:
            pred = knn_predict(self.train_x, self.train_y, self.test_x, k, self.store.num_classes, self.config.temperature)
            results[f"k{k}"] = (pred == self.test_y).float().mean().item() * 100
        trainer.run_dir.log(0, **{f"knn/{k}": v for k, v in results.items()})
        return {"protocol": "knn", "init": self.config.init, "top1": results, "train_samples": int(self.train_y.numel()),
                "test_samples": int(self.test_y.numel())}


def run_knn(cfg: KnnConfig, callbacks: list[Callback] = ()) -> dict[str, Any]:
    return Trainer(Knn(cfg), callbacks).run()

"""Linear probe: a BatchNorm + linear head on the frozen encoder's pooled features.

The encoder stays in eval mode and receives no gradients, so validation and test features
are computed once. Train features are recomputed every epoch when augmentation is on (the
MAMP recipe), or computed once when it is off (``augment=false``), which makes a probe of
100 epochs cost little more than one pass over the data. The epoch reported as "best" is
chosen on the validation split carved from the training split, never on the test split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from skelmae.config import LinearConfig
from skelmae.engine.common import autocast, downstream_model, make_dataset, make_loader, open_store
from skelmae.engine.evaluation import collect
from skelmae.engine.optim import param_groups
from skelmae.engine.trainer import Callback, StepContext, Trainer
from skelmae.eval.metrics import classification_metrics
from skelmae.protocols.base import ClassifierProtocol, labelled_indices

HEAD = {"name": "linear", "config": {}}


class Linear(ClassifierProtocol):
    name = "linear"

    def __init__(self, cfg: LinearConfig):
        self.config, self.train_cfg, self.optim_cfg = cfg, cfg.train, cfg.optim

    def setup(self, trainer: Trainer) -> None:
        cfg, info = self.config, trainer.info
        self.info, self.trainer = info, trainer
        self.store = store = open_store(cfg.data)
        self.train_idx, self.val_idx, _ = labelled_indices(store, cfg.data)
        self.head = HEAD
        self.model, self.backbone = downstream_model(cfg.init, cfg.model, HEAD, store, cfg.data.window)
        self.model.to(info.device)
        self.model.encoder.requires_grad_(False)
        self.model.encoder.eval()
        self.encode = torch.compile(self.model.features) if cfg.train.compile else self.model.features
        self.test_set = self.features(store.split(cfg.data.test_split), gather=True)
        self.val_set = self.features(self.val_idx, gather=True) if self.val_idx.size else None
        self.loader = make_loader(make_dataset(store, cfg.data, "", train=cfg.augment, indices=self.train_idx),
                                  cfg.data, info, train=True, seed=cfg.train.seed)
        self.cached = None if cfg.augment else self.features(self.train_idx, gather=False)
        self.per_rank = cfg.data.batch_size // info.world_size

    def features(self, indices: np.ndarray, gather: bool) -> tuple[torch.Tensor, torch.Tensor]:
        loader = make_loader(make_dataset(self.store, self.config.data, "", train=False, indices=indices),
                             self.config.data, self.info, train=False, seed=self.train_cfg.seed)
        return collect(self.encode, loader, self.info, self.train_cfg, "features", gather=gather)

    def trained_module(self) -> torch.nn.Module:
        return self.model.head

    def param_groups(self) -> list[dict]:
        return param_groups(self.model.head, self.optim_cfg.weight_decay)

    def steps_per_epoch(self) -> int:
        return super().steps_per_epoch() if self.cached is None else max(1, self.cached[0].shape[0] // self.per_rank)

    def batches(self, epoch: int):
        if self.cached is None:
            return ((self.frozen_features(x), y.to(self.info.device)) for x, y in super().batches(epoch))
        feats, labels = self.cached
        order = np.random.default_rng([self.train_cfg.seed, self.info.rank, epoch]).permutation(feats.shape[0])
        chosen = torch.from_numpy(order[: self.steps_per_epoch() * self.per_rank]).split(self.per_rank)
        return ((feats[i], labels[i]) for i in chosen)

    @torch.no_grad()
    def frozen_features(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.train_cfg, self.info.device):
            return self.encode(x.to(self.info.device, non_blocking=True)).float()

    def training_step(self, batch: Any, ctx: StepContext) -> torch.Tensor:
        feats, y = batch
        return F.cross_entropy(ctx.net(feats), y)

    @torch.no_grad()
    def end_of_epoch(self, trainer: Trainer, epoch: int, last: bool) -> dict[str, Any]:
        head, classes = self.model.head.eval(), self.store.num_classes
        test_logits = head(self.test_set[0]).cpu()
        self.test = classification_metrics(test_logits, self.test_set[1].cpu(), classes)
        record = {f"test/{k}": v for k, v in self.test.items()}
        if self.val_set is not None:
            val = classification_metrics(head(self.val_set[0]).cpu(), self.val_set[1].cpu(), classes)
            record.update({f"val/{k}": v for k, v in val.items()})
            if self.best is None or val["top1"] > self.best["val"]["top1"]:
                self.best = {"epoch": epoch + 1, "val": val, "test": self.test}
        if last:
            trainer.emit("evaluation", split=self.config.data.test_split, logits=test_logits,
                         labels=self.test_set[1].cpu(), classes=self.store.classes)
        return record

    def summary(self, trainer: Trainer) -> dict[str, Any]:
        cfg = self.config
        return {
            "protocol": "linear", "init": cfg.init or "random", "epochs": cfg.train.epochs,
            "train_samples": int(self.train_idx.size), "val_samples": int(self.val_idx.size),
            "test": self.test, "best_on_val": self.best, "checkpoint": str(trainer.path / "last.pt"),
        }


def run_linear(cfg: LinearConfig, resume: bool = False, callbacks: list[Callback] = ()) -> dict[str, Any]:
    return Trainer(Linear(cfg), callbacks).run(resume)

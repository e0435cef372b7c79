"""Linear probe: a BatchNorm + linear head on the frozen encoder's pooled features (``pool``:
their mean over steps, joints and persons, or the per-joint or per-step means concatenated;
``layers``: of the last layer, or of the last few concatenated).

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
from skelmae.engine.common import downstream_model, make_dataset, make_loader, open_store
from skelmae.engine.evaluation import encode_samples
from skelmae.engine.optim import param_groups
from skelmae.engine.trainer import Callback, StepContext, Trainer
from skelmae.eval.metrics import classification_metrics
from skelmae.protocols.base import ClassifierProtocol, labelled_indices

HEAD = {"name": "linear", "config": {}}


class Linear(ClassifierProtocol):
    name, untrained_init, save_best = "linear", "random", False

    def __init__(self, cfg: LinearConfig):
        self.config, self.train_cfg, self.optim_cfg = cfg, cfg.train, cfg.optim

    def setup(self, trainer: Trainer) -> None:
        cfg, info = self.config, trainer.info
        self.info, self.trainer = info, trainer
        self.store = store = open_store(cfg.data)
        self.train_idx, self.val_idx, _ = labelled_indices(store, cfg.data, cfg.semi if cfg.semi.fraction != 1.0 else None)
        self.head = {"name": "linear", "config": {"pool": cfg.pool, "layers": cfg.layers}}
        self.model, self.backbone = downstream_model(cfg.init, cfg.model, self.head, store, cfg.data.window)
        self.model.to(info.device).encoder.requires_grad_(False).eval()
        self.encode = encode = torch.compile(self.model.features) if cfg.train.compile else self.model.features
        self.test_set = encode_samples(encode, store, cfg.data, info, cfg.train, store.split(cfg.data.test_split))
        self.val_set = encode_samples(encode, store, cfg.data, info, cfg.train, self.val_idx) if self.val_idx.size else None
        self.loader = make_loader(make_dataset(store, cfg.data, "", train=cfg.augment, indices=self.train_idx),
                                  cfg.data, info, train=True, seed=cfg.train.seed)
        self.cached = None if cfg.augment else encode_samples(encode, store, cfg.data, info, cfg.train, self.train_idx, gather=False)
        self.per_rank = cfg.data.batch_size // info.world_size

    def trained_module(self) -> torch.nn.Module:
        return self.model.head

    def param_groups(self) -> list[dict]:
        return param_groups(self.model.head, self.optim_cfg.weight_decay)

    def steps_per_epoch(self) -> int:
        return super().steps_per_epoch() if self.cached is None else max(1, self.cached[0].shape[0] // self.per_rank)

    def batches(self, epoch: int):
        if self.cached is None:
            return super().batches(epoch)
        feats, labels = self.cached
        order = np.random.default_rng([self.train_cfg.seed, self.info.rank, epoch]).permutation(feats.shape[0])
        chosen = torch.from_numpy(order[: self.steps_per_epoch() * self.per_rank]).split(self.per_rank)
        return ((feats[i], labels[i]) for i in chosen)

    def training_step(self, batch: Any, ctx: StepContext) -> torch.Tensor:
        x, y = batch
        if self.cached is None:  # an augmented clip: encode it with the frozen encoder
            with torch.no_grad():
                x = self.encode(x.to(self.info.device, non_blocking=True)).float()
        return F.cross_entropy(ctx.net(x), y.to(self.info.device))

    @torch.no_grad()
    def evaluate_validation(self) -> dict[str, Any]:
        return classification_metrics(self.model.head.eval()(self.val_set[0]).cpu(), self.val_set[1].cpu(), self.store.num_classes)

    @torch.no_grad()
    def evaluate_test(self, last: bool) -> dict[str, Any]:
        logits, labels = self.model.head.eval()(self.test_set[0]).cpu(), self.test_set[1].cpu()
        if last:
            self.trainer.emit("evaluation", split=self.config.data.test_split, logits=logits, labels=labels, classes=self.store.classes)
        return classification_metrics(logits, labels, self.store.num_classes)


def run_linear(cfg: LinearConfig, resume: bool = False, callbacks: list[Callback] = ()) -> dict[str, Any]:
    return Trainer(Linear(cfg), callbacks).run(resume)

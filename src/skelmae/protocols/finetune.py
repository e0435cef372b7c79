"""End-to-end training of a classifier: fine-tune, semi-supervised, transfer and from scratch.

The four protocols differ only in where the encoder comes from (``init``: a pre-trained
checkpoint, possibly of another dataset, or nothing) and which training labels are used
(all, or a fixed class-stratified subset for ``semi``). Model selection uses the validation
split carved from the labelled training samples: the summary reports the last epoch and
the epoch best on validation, with its test accuracy. The test split never chooses anything.
"""

from __future__ import annotations

from typing import Any

import torch

from skelmae.config import FinetuneConfig, chosen
from skelmae.engine.common import downstream_model, make_dataset, make_loader, open_store
from skelmae.engine.evaluation import evaluate_classifier
from skelmae.engine.optim import classifier_param_groups
from skelmae.engine.trainer import Callback, StepContext, Trainer
from skelmae.errors import ConfigError
from skelmae.models.raw import RAW_INIT
from skelmae.protocols.base import ClassifierProtocol, labelled_indices

RECIPES = {  # protocol -> its recipe preset (see config.load_config)
    "finetune": "recipes/finetune", "semi": "recipes/semi", "transfer": "recipes/finetune", "scratch": "recipes/scratch",
}
PROTOCOLS = tuple(RECIPES)


def check_protocol(cfg: FinetuneConfig, protocol: str) -> None:
    if protocol not in ("semi", "scratch") and cfg.semi.fraction != 1.0:
        raise ConfigError(f"semi.fraction={cfg.semi.fraction} only applies to the semi and scratch protocols")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if cfg.init == RAW_INIT:
        raise ConfigError("init=raw has no encoder to fine-tune: raw features are a baseline of linear and knn")
    if protocol == "scratch" and cfg.init:
        raise ConfigError("scratch trains without pre-training: leave init empty (use finetune with init=...)")
    if protocol in ("transfer", "semi") and not cfg.init:
        raise ConfigError(f"{protocol} starts from a pre-trained checkpoint: set init=PATH")


class Finetune(ClassifierProtocol):
    def __init__(self, cfg: FinetuneConfig, protocol: str = "finetune"):
        check_protocol(cfg, protocol)
        self.name, self.config, self.train_cfg, self.optim_cfg = protocol, cfg, cfg.train, cfg.optim

    def setup(self, trainer: Trainer) -> None:
        cfg, info = self.config, trainer.info
        self.trainer, self.device = trainer, info.device
        self.store = store = open_store(cfg.data)
        # scratch on a share of the labels (semi.fraction < 1) is the semi protocol's baseline: the same subset
        labelled_share = self.name == "semi" or (self.name == "scratch" and cfg.semi.fraction != 1.0)
        self.train_idx, self.val_idx, self.subset_file = labelled_indices(store, cfg.data, cfg.semi if labelled_share else None)
        self.head = chosen(cfg.head)
        self.model, self.backbone = downstream_model(cfg.init, cfg.model, self.head, store, cfg.data.window)
        self.model.to(info.device)
        self.loader = make_loader(make_dataset(store, cfg.data, "", True, self.train_idx), cfg.data, info, True, cfg.train.seed)
        self.test_loader = make_loader(make_dataset(store, cfg.data, cfg.data.test_split, False), cfg.data, info, False, 0)
        if self.val_idx.size:
            self.val_loader = make_loader(make_dataset(store, cfg.data, "", False, self.val_idx), cfg.data, info, False, 0)
        self.criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def param_groups(self) -> list[dict]:
        return classifier_param_groups(self.model, self.optim_cfg.weight_decay, self.optim_cfg.layer_decay)

    def training_step(self, batch: Any, ctx: StepContext) -> torch.Tensor:
        x, y = batch
        y = y.to(self.device)
        loss = self.criterion(ctx.net(x.to(self.device, non_blocking=True)).float(), y)
        auxiliary = self.model.auxiliary_loss(y)
        return loss if auxiliary is None else loss + auxiliary.float()

    def evaluate(self, loader, split: str) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
        return evaluate_classifier(self.model, loader, self.trainer.info, self.train_cfg, self.store.num_classes, desc=split)

    def evaluate_validation(self) -> dict[str, Any]:
        return self.evaluate(self.val_loader, "validation")[0]

    def evaluate_test(self, last: bool) -> dict[str, Any]:
        metrics, logits, labels = self.evaluate(self.test_loader, "test")
        self.trainer.emit("evaluation", split=self.config.data.test_split, logits=logits, labels=labels, classes=self.store.classes)
        return metrics

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "subset_file": self.subset_file}


def run_finetune(
    cfg: FinetuneConfig, protocol: str = "finetune", resume: bool = False, callbacks: list[Callback] = ()
) -> dict[str, Any]:
    return Trainer(Finetune(cfg, protocol), callbacks).run(resume)

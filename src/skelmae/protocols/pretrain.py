"""Self-supervised pre-training of a backbone with a registered method (SkeletonMAE, MAMP, SkeletonMAE-G)."""

from __future__ import annotations

from typing import Any

import torch

from skelmae.config import PretrainConfig, chosen
from skelmae.engine.common import input_spec, make_dataset, make_loader, open_store
from skelmae.engine.optim import param_groups
from skelmae.engine.trainer import Callback, StepContext, Trainer
from skelmae.models.build import build_method
from skelmae.protocols.base import DatasetProtocol


def step_generator(seed: int, epoch: int, step: int, device: torch.device) -> torch.Generator:
    """Masking noise of one step: a function of (seed, epoch, step) only, so masks do not
    depend on the number of processes or on where a resumed run restarted."""
    return torch.Generator(device).manual_seed(((seed * 100_003 + epoch) * 1_000_003 + step) % 2**63)


class Pretrain(DatasetProtocol):
    name = "pretrain"

    def __init__(self, cfg: PretrainConfig):
        self.config, self.train_cfg, self.optim_cfg = cfg, cfg.train, cfg.optim

    def setup(self, trainer: Trainer) -> None:
        cfg, info = self.config, trainer.info
        self.device, self.shard = info.device, (info.rank, info.world_size)
        self.store = open_store(cfg.data)
        self.spec = input_spec(self.store, cfg.data.window)
        self.backbone, self.method = chosen(cfg.model), chosen(cfg.method)
        self.model = build_method(self.method, self.backbone, self.spec).to(info.device)
        self.train_set = make_dataset(self.store, cfg.data, cfg.data.train_split, train=True, views=self.model.views)
        self.loader = make_loader(self.train_set, cfg.data, info, train=True, seed=cfg.train.seed)

    def param_groups(self) -> list[dict]:
        return param_groups(self.model, self.optim_cfg.weight_decay)

    def training_step(self, batch: Any, ctx: StepContext) -> torch.Tensor:
        x, _ = batch
        generator = step_generator(self.train_cfg.seed, ctx.epoch, ctx.step, self.device)
        return ctx.net(x.to(self.device, non_blocking=True), generator=generator, shard=self.shard).loss

    def after_optimizer_step(self, progress: float) -> None:
        self.model.after_optimizer_step(progress)

    def model_description(self) -> dict[str, Any]:
        return {"kind": "pretrain", "input": self.spec.to_dict(), "backbone": self.backbone, "method": self.method}

    def summary(self, trainer: Trainer) -> dict[str, Any]:
        return {
            "protocol": "pretrain", "epochs": self.train_cfg.epochs, "final_loss": trainer.record.get("train/loss", float("nan")),
            "train_samples": len(self.train_set), "checkpoint": str(trainer.path / "last.pt"),
        }


def run_pretrain(cfg: PretrainConfig, resume: bool = False, callbacks: list[Callback] = ()) -> dict[str, Any]:
    return Trainer(Pretrain(cfg), callbacks).run(resume)

"""The one training engine: every protocol is a :class:`Protocol` run by :class:`Trainer`.

The Trainer owns what all protocols share: distributed set-up and teardown, seeding, the
run directory, resume from ``last.pt`` (model, optimiser, epoch, RNG states, protocol
state), the per-iteration lr schedule, bf16 autocast, gradient accumulation, the stop on
a non-finite loss, atomic checkpoints, metrics and the summary. A protocol supplies what
is its own: the model, one training step, evaluation, its summary, and optional hooks.

One optimiser step covers ``train.accum_steps`` loader batches, so the global batch of a
step is ``data.batch_size * train.accum_steps`` (each loader batch is split over ranks).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from skelmae.config import OptimConfig, TrainConfig, to_dict
from skelmae.engine.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from skelmae.engine.common import autocast, resolve_output_dir, seed_everything
from skelmae.engine.distributed import DistInfo, all_reduce_sum, cleanup, gather_objects, init_distributed
from skelmae.engine.optim import build_optimizer, lr_at, set_lr
from skelmae.engine.runs import RunDir
from skelmae.errors import CheckpointError, SkelmaeError

__all__ = ["Protocol", "Callback", "Trainer", "TrainingDiverged", "StepContext"]

FINITE_CHECK_EVERY = 16  # steps between host syncs that check the loss is finite


class TrainingDiverged(SkelmaeError):
    """The loss became NaN or infinite; the last checkpoint written before is kept."""


@dataclass
class StepContext:
    epoch: int  # 0-based
    step: int  # loader batch within the epoch, 0-based
    net: nn.Module  # the module to call: DDP-wrapped and/or compiled ``protocol.trained_module()``


class Callback:
    """Observes a run (drawing plots, say) without being part of the loop."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None: ...

    def on_evaluation(
        self, trainer: Trainer, split: str, logits: torch.Tensor, labels: torch.Tensor, classes: list[str]
    ) -> None: ...

    def on_run_end(self, trainer: Trainer, summary: dict[str, Any]) -> None: ...


class Protocol(ABC):
    """What one protocol brings to the Trainer. ``setup`` runs after seeding, on every rank."""

    name: str
    model: nn.Module
    train_cfg: TrainConfig
    optim_cfg: OptimConfig
    config: Any  # the protocol's whole resolved configuration (stored in checkpoints)

    @abstractmethod
    def setup(self, trainer: Trainer) -> None:
        """Build the model (on ``trainer.info.device``) and the data."""

    def trained_module(self) -> nn.Module:
        """The module whose parameters the optimiser updates and whose state is checkpointed."""
        return self.model

    def param_groups(self) -> list[dict]:
        raise NotImplementedError(f"{self.name} does not train")

    def steps_per_epoch(self) -> int:
        return 0

    def batches(self, epoch: int) -> Iterable[Any]:
        return ()

    def training_step(self, batch: Any, ctx: StepContext) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} does not train")

    def after_optimizer_step(self, progress: float) -> None:
        """E.g. a momentum-encoder update; ``progress`` is the fraction of the run's optimiser steps done, in (0, 1]."""

    def end_of_epoch(self, trainer: Trainer, epoch: int, last: bool) -> dict[str, Any]:
        """Metrics to log for this epoch (evaluation, for example)."""
        return {}

    @abstractmethod
    def model_description(self) -> dict[str, Any]:
        """kind, input, backbone and method or head (see engine/checkpoint.py)."""

    def data_description(self) -> dict[str, Any]:
        return {}

    def provenance(self) -> dict[str, Any]:
        """What data.json records about the data."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Protocol state that resuming must restore (e.g. the best epoch on validation)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    @abstractmethod
    def summary(self, trainer: Trainer) -> dict[str, Any]: ...


class Trainer:
    def __init__(self, protocol: Protocol, callbacks: Sequence[Callback] = ()):
        self.protocol = protocol
        self.train_cfg, self.optim_cfg = protocol.train_cfg, protocol.optim_cfg
        self.callbacks = list(callbacks)
        self.info = DistInfo()
        self.run_dir: RunDir | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.epoch = -1  # last finished epoch
        self.record: dict[str, Any] = {}  # the last epoch's metrics

    @property
    def path(self) -> Path:
        return self.run_dir.path

    def emit(self, event: str, **kwargs: Any) -> None:
        if self.info.is_main:
            for callback in self.callbacks:
                getattr(callback, f"on_{event}")(self, **kwargs)

    def run(self, resume: bool = False) -> dict[str, Any]:
        """Train (if the protocol does), then summarise; teardown happens even on errors."""
        self.info = init_distributed(self.train_cfg.device)
        if self.train_cfg.threads > 0:  # before any work, so environment.json records what the run used
            torch.set_num_threads(self.train_cfg.threads)
        try:
            seed_everything(self.train_cfg.seed + self.info.rank, self.train_cfg.deterministic)
            started = time.perf_counter()
            self.protocol.setup(self)
            trains = self.train_cfg.epochs > 0 and self.protocol.steps_per_epoch() > 0
            if trains:
                self.optimizer = build_optimizer(self.optim_cfg, self.protocol.param_groups(), self.info.device)
            self.run_dir = RunDir(resolve_output_dir(self.train_cfg, self.protocol.name, self.info), active=self.info.is_main)
            if resume:
                self._resume()
            self.run_dir.write_provenance(self.protocol.config, self.info.device, self.info.world_size, self.protocol.provenance())
            if trains:
                self._fit()
            summary = {**self.protocol.summary(self), "seconds": round(time.perf_counter() - started, 2),
                       "run_dir": str(self.path)}
            self.run_dir.summary(summary)
            self.emit("run_end", summary=summary)
            return summary
        finally:
            if self.run_dir is not None:
                self.run_dir.close()
            cleanup(self.info)

    # -- the loop -----------------------------------------------------------------------
    def _network(self) -> nn.Module:
        module = self.protocol.trained_module()
        net = DistributedDataParallel(module) if self.info.distributed else module
        return torch.compile(net) if self.train_cfg.compile else net

    def _fit(self) -> None:
        cfg, protocol, optimizer = self.train_cfg, self.protocol, self.optimizer
        net = self._network()
        module = protocol.trained_module()
        steps = protocol.steps_per_epoch()
        accum = max(1, cfg.accum_steps)
        updates = math.ceil(steps / accum)
        for epoch in range(self.epoch + 1, cfg.epochs):
            net.train()
            loss_sum = torch.zeros((), device=self.info.device)
            finite = torch.ones((), dtype=torch.bool, device=self.info.device)
            first_bad = torch.full((), -1, dtype=torch.long, device=self.info.device)
            bar = tqdm(protocol.batches(epoch), total=steps, desc=f"{protocol.name} {epoch + 1}/{cfg.epochs}",
                       disable=not (self.info.is_main and cfg.progress), leave=False)
            for it, batch in enumerate(bar):
                group_start = it - it % accum
                lr = lr_at(epoch + (it // accum) / updates, self.optim_cfg, cfg.epochs)
                set_lr(optimizer, lr)
                with autocast(cfg, self.info.device):
                    loss = protocol.training_step(batch, StepContext(epoch, it, net))
                (loss / min(accum, steps - group_start)).backward()
                if (it + 1) % accum == 0 or it + 1 == steps:
                    if self.optim_cfg.clip_grad > 0:
                        torch.nn.utils.clip_grad_norm_(module.parameters(), self.optim_cfg.clip_grad)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    protocol.after_optimizer_step((epoch + (it // accum + 1) / updates) / cfg.epochs)
                detached = loss.detach()
                ok = torch.isfinite(detached)
                first_bad = torch.where(finite & ~ok, torch.full_like(first_bad, it), first_bad)
                finite &= ok
                loss_sum += detached
                if (it + 1) % FINITE_CHECK_EVERY == 0 or it + 1 == steps:
                    self._check_finite(finite, first_bad, epoch)
            record: dict[str, Any] = {
                "epoch": epoch + 1, "train/loss": (all_reduce_sum(loss_sum, self.info) / (steps * self.info.world_size)).item(),
                "train/lr": lr,
            }
            self.epoch = epoch
            record.update(protocol.end_of_epoch(self, epoch, last=epoch + 1 == cfg.epochs))
            self.record = record
            self.save("last.pt", resumable=True)
            self.run_dir.log((epoch + 1) * steps, **record)
            self.emit("epoch_end", record=record)

    def _check_finite(self, finite: torch.Tensor, first_bad: torch.Tensor, epoch: int) -> None:
        if all_reduce_sum((~finite).to(torch.int32), self.info).item():
            step = int(first_bad.item()) + 1
            where = f"epoch {epoch + 1}, step {step}" if step > 0 else f"epoch {epoch + 1} (on another process)"
            kept = f"{self.path / 'last.pt'} (epoch {self.epoch + 1}) is kept" if self.epoch >= 0 else "no checkpoint was written"
            raise TrainingDiverged(
                f"the training loss became NaN or infinite at {where}; {kept}. Lower optim.lr, set optim.clip_grad "
                "or check the data (skelmae data info)"
            )

    # -- checkpoints --------------------------------------------------------------------
    def save(self, name: str, resumable: bool = False) -> Path:
        """Write ``name`` in the run directory (rank 0); ``resumable`` adds the trainer state."""
        protocol = self.protocol
        state = {
            **protocol.model_description(), "model": protocol.model.state_dict(), "protocol": protocol.name,
            "epoch": self.epoch, "data": protocol.data_description(), "config": to_dict(protocol.config),
        }
        if resumable:
            rng = gather_objects(rng_state(), self.info)
            state["trainer"] = {
                "epoch": self.epoch, "optimizer": self.optimizer.state_dict(), "rng": rng,
                "protocol": protocol.state_dict(),
            }
        path = self.path / name
        if self.info.is_main:
            save_checkpoint(path, state)
        return path

    def _resume(self) -> None:
        path = self.path / "last.pt"
        ckpt = load_checkpoint(path)
        description = self.protocol.model_description()
        if any(ckpt.get(key) != value for key, value in description.items()) or ckpt.get("protocol") != self.protocol.name:
            raise CheckpointError(f"{path}: the run's model or protocol differs from the configuration")
        if "trainer" not in ckpt:
            raise CheckpointError(f"{path}: holds no trainer state to resume from")
        state = ckpt["trainer"]
        self.protocol.model.load_state_dict(ckpt["model"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.protocol.load_state_dict(state["protocol"])
        self.epoch = state["epoch"]
        if len(state["rng"]) == self.info.world_size:
            restore_rng(state["rng"][self.info.rank])
        self.run_dir.drop_records_after(self.epoch + 1)

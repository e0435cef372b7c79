"""Masked-autoencoder pre-training: one loop, one epoch at a time (the MAE/MAMP engine)."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from skelmae.config import PretrainConfig, to_dict
from skelmae.engine.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from skelmae.engine.common import (
    autocast, data_description, make_dataset, make_loader, open_store, resolve_output_dir, seed_everything,
)
from skelmae.engine.distributed import all_reduce_sum, cleanup, gather_objects, init_distributed
from skelmae.engine.optim import build_optimizer, lr_at, param_groups, set_lr
from skelmae.engine.runs import RunDir
from skelmae.errors import CheckpointError
from skelmae.models.build import mae_args
from skelmae.models.st_mae import SkeletonMAE


def step_generator(seed: int, epoch: int, step: int, device: torch.device) -> torch.Generator:
    """Masking noise of one step: a function of (seed, epoch, step) only, so masks do not
    depend on the number of processes or on where a resumed run restarted."""
    return torch.Generator(device).manual_seed(((seed * 100_003 + epoch) * 1_000_003 + step) % 2**63)


def run_pretrain(cfg: PretrainConfig, resume: bool = False) -> dict[str, Any]:
    info = init_distributed(cfg.train.device)
    seed_everything(cfg.train.seed + info.rank, cfg.train.deterministic)
    store = open_store(cfg.data)
    train_set = make_dataset(store, cfg.data, cfg.data.train_split, train=True)
    loader = make_loader(train_set, cfg.data, info, train=True, seed=cfg.train.seed)

    args = mae_args(cfg.model, cfg.mask, store.layout, len(store.channels), cfg.data.window)
    model = SkeletonMAE(**args).to(info.device)
    optimizer = build_optimizer(cfg.optim, param_groups(model, cfg.optim.weight_decay), info.device)
    run = RunDir(resolve_output_dir(cfg.train, "pretrain", info), active=info.is_main)
    start_epoch = 0
    if resume:
        state = load_checkpoint(run.path / "last.pt", kind="mae")
        if state["model_args"] != args:
            raise CheckpointError(f"{run.path / 'last.pt'}: the run's model differs from the configuration")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = state["epoch"] + 1
        if len(state["rng"]) == info.world_size:
            restore_rng(state["rng"][info.rank])
        run.drop_records_after(start_epoch)
    run.write_provenance(cfg, info.device, info.world_size, {"root": str(store.root), "manifest_sha256": store.manifest_hash()})
    net = DistributedDataParallel(model) if info.distributed else model
    if cfg.train.compile:
        net = torch.compile(net)

    steps = len(loader)
    started = time.perf_counter()
    loss_value = float("nan")
    for epoch in range(start_epoch, cfg.train.epochs):
        loader.sampler.set_epoch(epoch)
        net.train()
        loss_sum = torch.zeros((), device=info.device)
        bar = tqdm(loader, desc=f"pretrain {epoch + 1}/{cfg.train.epochs}", disable=not (info.is_main and cfg.train.progress), leave=False)
        for it, (x, _) in enumerate(bar):
            lr = lr_at(epoch + it / steps, cfg.optim, cfg.train.epochs)
            set_lr(optimizer, lr)
            x = x.to(info.device, non_blocking=True)
            with autocast(cfg.train, info.device):
                loss = net(x, generator=step_generator(cfg.train.seed, epoch, it, info.device),
                           shard=(info.rank, info.world_size)).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
            optimizer.step()
            loss_sum += loss.detach()
        loss_value = (all_reduce_sum(loss_sum, info) / (steps * info.world_size)).item()
        rng = gather_objects(rng_state(), info)
        if info.is_main:
            save_checkpoint(run.path / "last.pt", {
                "kind": "mae", "model_args": args, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "epoch": epoch, "rng": rng, "data": data_description(store, cfg.data), "config": to_dict(cfg),
            })
        run.log((epoch + 1) * steps, **{"epoch": epoch + 1, "train/loss": loss_value, "train/lr": lr})
    summary = {
        "protocol": "pretrain", "epochs": cfg.train.epochs, "final_loss": loss_value,
        "train_samples": len(train_set), "seconds": round(time.perf_counter() - started, 2),
        "checkpoint": str(run.path / "last.pt"), "run_dir": str(run.path),
    }
    run.summary(summary)
    run.close()
    cleanup(info)
    return summary

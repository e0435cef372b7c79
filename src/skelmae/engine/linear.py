"""Linear probe: a BatchNorm + linear head on the frozen encoder's pooled features.

The encoder stays in eval mode and receives no gradients, so validation and test features
are computed once. Train features are recomputed every epoch when augmentation is on (the
MAMP recipe), or computed once when it is off (``augment=false``), which makes a probe of
100 epochs cost little more than one pass over the data. The epoch reported as "best" is
chosen on the validation split carved from the training split, never on the test split.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from skelmae.config import LinearConfig, to_dict
from skelmae.engine.checkpoint import save_checkpoint
from skelmae.engine.common import (
    autocast, data_description, downstream_model, make_dataset, make_loader, open_store, resolve_output_dir, seed_everything,
)
from skelmae.engine.distributed import all_reduce_sum, cleanup, init_distributed
from skelmae.engine.optim import build_optimizer, lr_at, param_groups, set_lr
from skelmae.engine.runs import RunDir
from skelmae.eval.evaluate import collect
from skelmae.eval.metrics import classification_metrics, confusion_matrix
from skelmae.eval.subsets import carve_validation
from skelmae.viz.plots import write_confusion_matrix


def run_linear(cfg: LinearConfig) -> dict[str, Any]:
    info = init_distributed(cfg.train.device)
    seed_everything(cfg.train.seed + info.rank, cfg.train.deterministic)
    store = open_store(cfg.data)
    train_idx = store.split(cfg.data.train_split)
    train_idx, val_idx = carve_validation(train_idx, store.labels[train_idx], cfg.data.val_fraction, cfg.data.val_seed)

    model = downstream_model(cfg.init, cfg.model, store, cfg.data.window, "linear").to(info.device)
    model.encoder.requires_grad_(False)
    model.encoder.eval()
    head = DistributedDataParallel(model.head) if info.distributed else model.head
    optimizer = build_optimizer(cfg.optim, param_groups(model.head, cfg.optim.weight_decay), info.device)
    run = RunDir(resolve_output_dir(cfg.train, "linear", info), active=info.is_main)
    run.write_provenance(cfg, info.device, info.world_size, {"root": str(store.root), "manifest_sha256": store.manifest_hash()})

    encode = torch.compile(model.features) if cfg.train.compile else model.features

    def features(indices: np.ndarray, gather: bool) -> tuple[torch.Tensor, torch.Tensor]:
        dataset = make_dataset(store, cfg.data, "", train=False, indices=indices)
        loader = make_loader(dataset, cfg.data, info, train=False, seed=cfg.train.seed)
        return collect(encode, loader, info, cfg.train, "features", gather=gather)

    started = time.perf_counter()
    test_x, test_y = features(store.split(cfg.data.test_split), gather=True)
    val = features(val_idx, gather=True) if val_idx.size else None
    train_set = make_dataset(store, cfg.data, "", train=cfg.augment, indices=train_idx)
    train_loader = make_loader(train_set, cfg.data, info, train=True, seed=cfg.train.seed)
    cached = None if cfg.augment else features(train_idx, gather=False)

    per_rank = cfg.data.batch_size // info.world_size
    steps = len(train_loader) if cached is None else max(1, cached[0].shape[0] // per_rank)
    best: dict[str, Any] | None = None
    for epoch in range(cfg.train.epochs):
        head.train()
        loss_sum = torch.zeros((), device=info.device)
        if cached is None:
            train_loader.sampler.set_epoch(epoch)
            batches = ((_frozen_features(encode, x, info, cfg), y.to(info.device)) for x, y in train_loader)
        else:
            order = np.random.default_rng([cfg.train.seed, info.rank, epoch]).permutation(cached[0].shape[0])
            batches = ((cached[0][i], cached[1][i]) for i in torch.from_numpy(order[: steps * per_rank]).split(per_rank))
        for it, (feats, y) in enumerate(batches):
            lr = lr_at(epoch + it / steps, cfg.optim, cfg.train.epochs)
            set_lr(optimizer, lr)
            loss = F.cross_entropy(head(feats), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
        record: dict[str, Any] = {
            "epoch": epoch + 1, "train/loss": (all_reduce_sum(loss_sum, info) / (steps * info.world_size)).item(),
            "train/lr": lr,
        }
        model.head.eval()
        with torch.no_grad():
            test = classification_metrics(model.head(test_x).cpu(), test_y.cpu(), store.num_classes)
            record.update({f"test/{k}": v for k, v in test.items()})
            if val is not None:
                val_metrics = classification_metrics(model.head(val[0]).cpu(), val[1].cpu(), store.num_classes)
                record.update({f"val/{k}": v for k, v in val_metrics.items()})
                if best is None or val_metrics["top1"] > best["val"]["top1"]:
                    best = {"epoch": epoch + 1, "val": val_metrics, "test": test}
        run.log((epoch + 1) * steps, **record)

    summary = {
        "protocol": "linear", "init": cfg.init or "random", "epochs": cfg.train.epochs,
        "train_samples": int(train_idx.size), "val_samples": int(val_idx.size),
        "test": test, "best_on_val": best, "seconds": round(time.perf_counter() - started, 2),
        "checkpoint": str(run.path / "last.pt"), "run_dir": str(run.path),
    }
    if info.is_main:
        with torch.no_grad():
            cm = confusion_matrix(model.head(test_x).argmax(1).cpu().numpy(), test_y.cpu().numpy(), store.num_classes)
        write_confusion_matrix(cm, store.classes, run.path / "confusion", title=f"linear probe, {cfg.data.test_split}")
        save_checkpoint(run.path / "last.pt", {
            "kind": "classifier", "head": "linear", "model_args": model.encoder.args,
            "num_classes": store.num_classes, "model": model.state_dict(), "epoch": cfg.train.epochs - 1,
            "data": data_description(store, cfg.data), "config": to_dict(cfg),
        })
    run.summary(summary)
    run.close()
    cleanup(info)
    return summary


@torch.no_grad()
def _frozen_features(encode, x: torch.Tensor, info, cfg: LinearConfig) -> torch.Tensor:
    with autocast(cfg.train, info.device):
        return encode(x.to(info.device, non_blocking=True)).float()

"""Linear probe: a BatchNorm + linear head on the frozen encoder's pooled features.

The encoder stays in eval mode and receives no gradients, so test features are computed
once. Train features are recomputed every epoch when augmentation is on (the MAMP
recipe), or computed once when it is off (``augment=false``), which makes a probe of
100 epochs cost little more than one pass over the data.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from skelmae.config import LinearConfig, MaskConfig, to_dict
from skelmae.engine.checkpoint import load_checkpoint, save_checkpoint
from skelmae.engine.common import (
    autocast, data_description, make_dataset, make_loader, open_store, resolve_output_dir, seed_everything,
)
from skelmae.engine.distributed import DistInfo, all_gather_variable, all_reduce_sum, cleanup, init_distributed
from skelmae.engine.optim import build_optimizer, lr_at, param_groups, set_lr
from skelmae.engine.runs import RunDir
from skelmae.errors import CheckpointError
from skelmae.eval.metrics import classification_metrics, confusion_matrix
from skelmae.models.build import build_classifier, encoder_args, encoder_state_from, load_encoder_weights, mae_args
from skelmae.models.heads import SkeletonClassifier
from skelmae.viz.plots import write_confusion_matrix


@torch.no_grad()
def extract_features(
    model: SkeletonClassifier, loader: torch.utils.data.DataLoader, info: DistInfo, train_cfg, desc: str, gather: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features and labels of a loader's samples (this rank's, or all ranks' if ``gather``)."""
    model.encoder.eval()
    feats, labels = [], []
    for x, y in tqdm(loader, desc=desc, disable=not (info.is_main and train_cfg.progress), leave=False):
        with autocast(train_cfg, info.device):
            feats.append(model.features(x.to(info.device, non_blocking=True)).float())
        labels.append(y.to(info.device))
    f, y = torch.cat(feats), torch.cat(labels)
    if gather:
        f, y = all_gather_variable(f, info), all_gather_variable(y, info)
    return f, y


@torch.no_grad()
def _frozen_features(model: SkeletonClassifier, x: torch.Tensor, info: DistInfo, cfg: LinearConfig) -> tuple[torch.Tensor]:
    with autocast(cfg.train, info.device):
        return (model.features(x.to(info.device, non_blocking=True)).float(),)


def check_compatible(data: dict[str, Any], store, window: int, source: str) -> None:
    """A pre-trained encoder only fits data with the same joints and channels."""
    joints = data["layout"]["joints"]
    if len(joints) != store.layout.num_joints or list(data["channels"]) != store.channels:
        raise CheckpointError(
            f"{source}: pre-trained on {len(joints)} joints x channels {data['channels']}, "
            f"but {store.root} has {store.layout.num_joints} joints x channels {store.channels}"
        )


def run_linear(cfg: LinearConfig) -> dict[str, Any]:
    info = init_distributed(cfg.train.device)
    seed_everything(cfg.train.seed + info.rank, cfg.train.deterministic)
    store = open_store(cfg.data)
    num_classes = store.num_classes

    if cfg.init:
        ckpt = load_checkpoint(cfg.init)
        check_compatible(ckpt["data"], store, cfg.data.window, cfg.init)
        model = build_classifier(encoder_args(ckpt["model_args"]), "linear", num_classes)
        load_encoder_weights(model.encoder, encoder_state_from(ckpt, cfg.init), cfg.init)
    else:
        args = mae_args(cfg.model, MaskConfig(), store.layout, len(store.channels), cfg.data.window)
        model = build_classifier(encoder_args(args), "linear", num_classes)
    model.to(info.device)
    model.encoder.requires_grad_(False)
    model.encoder.eval()
    head = DistributedDataParallel(model.head) if info.distributed else model.head
    optimizer = build_optimizer(cfg.optim, param_groups(model.head, cfg.optim.weight_decay), info.device)
    run = RunDir(resolve_output_dir(cfg.train, "linear", info), active=info.is_main)
    run.write_provenance(cfg, info.device, info.world_size, {"root": str(store.root), "manifest_sha256": store.manifest_hash()})

    train_set = make_dataset(store, cfg.data, cfg.data.train_split, train=cfg.augment)
    test_set = make_dataset(store, cfg.data, cfg.data.test_split, train=False)
    train_loader = make_loader(train_set, cfg.data, info, train=True, seed=cfg.train.seed)
    test_loader = make_loader(test_set, cfg.data, info, train=False, seed=cfg.train.seed)
    started = time.perf_counter()
    test_x, test_y = extract_features(model, test_loader, info, cfg.train, "test features", gather=True)
    cached = None
    if not cfg.augment:
        cached = extract_features(model, train_loader, info, cfg.train, "train features", gather=False)

    per_rank = cfg.data.batch_size // info.world_size
    steps = len(train_loader) if cached is None else max(1, cached[0].shape[0] // per_rank)
    history = []
    for epoch in range(cfg.train.epochs):
        head.train()
        loss_sum = torch.zeros((), device=info.device)
        if cached is None:
            train_loader.sampler.set_epoch(epoch)
            batches = (_frozen_features(model, x, info, cfg) + (y.to(info.device),) for x, y in train_loader)
        else:
            order = torch.from_numpy(np.random.default_rng([cfg.train.seed, info.rank, epoch]).permutation(cached[0].shape[0]))
            batches = ((cached[0][i], cached[1][i]) for i in order[: steps * per_rank].split(per_rank))
        for it, (feats, y) in enumerate(batches):
            lr = lr_at(epoch + it / steps, cfg.optim, cfg.train.epochs)
            set_lr(optimizer, lr)
            loss = F.cross_entropy(head(feats), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
        loss_value = (all_reduce_sum(loss_sum, info) / (steps * info.world_size)).item()
        record = {"epoch": epoch + 1, "train/loss": loss_value, "train/lr": lr}
        if (epoch + 1) % cfg.train.eval_every == 0 or epoch + 1 == cfg.train.epochs:
            model.head.eval()
            with torch.no_grad():
                metrics = classification_metrics(model.head(test_x).cpu(), test_y.cpu(), num_classes)
            record.update({f"test/{k}": v for k, v in metrics.items()})
        history.append(record)
        run.log((epoch + 1) * steps, **record)

    logits = model.head(test_x).detach().cpu()
    final = classification_metrics(logits, test_y.cpu(), num_classes)
    if info.is_main:
        cm = confusion_matrix(logits.argmax(1).numpy(), test_y.cpu().numpy(), num_classes)
        write_confusion_matrix(cm, store.classes, run.path / "confusion", title=f"linear probe, {cfg.data.test_split}")
        save_checkpoint(run.path / "last.pt", {
            "kind": "classifier", "head": "linear", "model_args": model.encoder.args,
            "num_classes": num_classes, "model": model.state_dict(), "epoch": cfg.train.epochs - 1,
            "data": data_description(store, cfg.data), "config": to_dict(cfg),
        })
    summary = {
        "protocol": "linear", "init": cfg.init or "random", "epochs": cfg.train.epochs,
        "test": final, "seconds": round(time.perf_counter() - started, 2), "run_dir": str(run.path),
    }
    run.summary(summary)
    run.close()
    cleanup(info)
    return summary


"""End-to-end training of a classifier: fine-tune, semi-supervised, transfer and from scratch.

All four protocols are this one loop; they differ only in where the encoder comes from
(``init``: a pre-trained checkpoint, possibly of another dataset, or nothing) and which
training labels are used (all, or a fixed class-stratified subset for ``semi``).

Model selection uses the validation split carved from the (labelled) training samples:
the summary reports the last epoch and the epoch that was best on validation, with its
test accuracy. The test split never chooses anything.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from skelmae.config import FinetuneConfig, to_dict
from skelmae.engine.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from skelmae.engine.common import (
    autocast, data_description, downstream_model, make_dataset, make_loader, open_store, resolve_output_dir,
    seed_everything,
)
from skelmae.engine.distributed import all_reduce_sum, cleanup, gather_objects, init_distributed
from skelmae.engine.optim import build_optimizer, lr_at, param_groups, set_lr
from skelmae.engine.runs import RunDir
from skelmae.errors import CheckpointError, ConfigError
from skelmae.eval.evaluate import evaluate_classifier
from skelmae.eval.metrics import confusion_matrix
from skelmae.eval.subsets import carve_validation, labelled_subset, subset_path
from skelmae.viz.plots import write_confusion_matrix

PROTOCOLS = ("finetune", "semi", "transfer", "scratch")


def training_indices(cfg: FinetuneConfig, store, protocol: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(train, validation) sample indices and, for ``semi``, the subset file used."""
    train_idx = store.split(cfg.data.train_split)
    subset_file = None
    if protocol == "semi":
        if not 0 < cfg.semi.fraction < 1:
            raise ConfigError(f"semi needs 0 < semi.fraction < 1 (e.g. 0.01 or 0.1), got {cfg.semi.fraction}")
        path = subset_path(store.root, cfg.data.train_split, cfg.semi.fraction, cfg.semi.seed)
        path = path if not cfg.semi.subset_file else type(path)(cfg.semi.subset_file)
        train_idx = labelled_subset(train_idx, store.labels[train_idx], cfg.semi.fraction, cfg.semi.seed, path)
        subset_file = str(path)
    elif cfg.semi.fraction != 1.0:
        raise ConfigError(f"semi.fraction={cfg.semi.fraction} only applies to the semi protocol")
    train_idx, val_idx = carve_validation(train_idx, store.labels[train_idx], cfg.data.val_fraction, cfg.data.val_seed)
    return train_idx, val_idx, subset_file


def check_protocol(cfg: FinetuneConfig, protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if protocol == "scratch" and cfg.init:
        raise ConfigError("scratch trains without pre-training: leave init empty (use finetune with init=...)")
    if protocol in ("transfer", "semi") and not cfg.init:
        raise ConfigError(f"{protocol} starts from a pre-trained checkpoint: set init=PATH")


def run_finetune(cfg: FinetuneConfig, protocol: str = "finetune", resume: bool = False) -> dict[str, Any]:
    check_protocol(cfg, protocol)
    info = init_distributed(cfg.train.device)
    seed_everything(cfg.train.seed + info.rank, cfg.train.deterministic)
    store = open_store(cfg.data)
    train_idx, val_idx, subset_file = training_indices(cfg, store, protocol)

    model = downstream_model(
        cfg.init, cfg.model, store, cfg.data.window, cfg.head, cfg.model.drop_path, cfg.head_dropout
    ).to(info.device)
    layer_of = getattr(model.encoder, "layer_id", None)
    groups = param_groups(
        model, cfg.optim.weight_decay, layer_of=layer_of, num_layers=getattr(model.encoder, "num_layers", 0),
        layer_decay=cfg.optim.layer_decay if layer_of else 1.0,
    )
    optimizer = build_optimizer(cfg.optim, groups, info.device)
    run = RunDir(resolve_output_dir(cfg.train, protocol, info), active=info.is_main)
    state: dict[str, Any] = {"epoch": -1, "best": None}
    if resume:
        ckpt = load_checkpoint(run.path / "last.pt", kind="classifier")
        if ckpt["model_args"] != model.encoder.args or ckpt.get("protocol") != protocol:
            raise CheckpointError(f"{run.path / 'last.pt'}: the run's model or protocol differs from the configuration")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        if len(ckpt["rng"]) == info.world_size:
            restore_rng(ckpt["rng"][info.rank])
        run.drop_records_after(state["epoch"] + 1)
    run.write_provenance(cfg, info.device, info.world_size, {
        "root": str(store.root), "manifest_sha256": store.manifest_hash(), "subset_file": subset_file,
    })
    net = DistributedDataParallel(model) if info.distributed else model
    if cfg.train.compile:
        net = torch.compile(net)

    train_loader = make_loader(make_dataset(store, cfg.data, "", True, train_idx), cfg.data, info, True, cfg.train.seed)
    test_loader = make_loader(make_dataset(store, cfg.data, cfg.data.test_split, False), cfg.data, info, False, 0)
    val_loader = make_loader(make_dataset(store, cfg.data, "", False, val_idx), cfg.data, info, False, 0) if val_idx.size else None
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    steps = len(train_loader)
    started = time.perf_counter()

    def evaluate(loader, name: str) -> dict[str, Any]:
        metrics, logits, labels = evaluate_classifier(model, loader, info, cfg.train, store.num_classes, desc=name)
        if name == "test" and info.is_main:  # the last test pass (the last epoch's model) is the one kept
            cm = confusion_matrix(logits.argmax(1).numpy(), labels.numpy(), store.num_classes)
            write_confusion_matrix(cm, store.classes, run.path / "confusion", title=f"{protocol}, {cfg.data.test_split}")
        return metrics

    test = None
    for epoch in range(state["epoch"] + 1, cfg.train.epochs):
        train_loader.sampler.set_epoch(epoch)
        net.train()
        loss_sum = torch.zeros((), device=info.device)
        bar = tqdm(train_loader, desc=f"{protocol} {epoch + 1}/{cfg.train.epochs}",
                   disable=not (info.is_main and cfg.train.progress), leave=False)
        for it, (x, y) in enumerate(bar):
            lr = lr_at(epoch + it / steps, cfg.optim, cfg.train.epochs)
            set_lr(optimizer, lr)
            with autocast(cfg.train, info.device):
                loss = criterion(net(x.to(info.device, non_blocking=True)).float(), y.to(info.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
            optimizer.step()
            loss_sum += loss.detach()
        record: dict[str, Any] = {
            "epoch": epoch + 1, "train/loss": (all_reduce_sum(loss_sum, info) / (steps * info.world_size)).item(),
            "train/lr": lr,
        }
        last = epoch + 1 == cfg.train.epochs
        if (epoch + 1) % cfg.train.eval_every == 0 or last:
            improved = False
            if val_loader is not None:
                val = evaluate(val_loader, "validation")
                record.update({f"val/{k}": v for k, v in val.items()})
                improved = state["best"] is None or val["top1"] > state["best"]["val"]["top1"]
            if improved or last or val_loader is None:
                test = evaluate(test_loader, "test")
                record.update({f"test/{k}": v for k, v in test.items()})
            if improved:
                state["best"] = {"epoch": epoch + 1, "val": val, "test": test}
                if info.is_main:
                    save_checkpoint(run.path / "best.pt", _checkpoint(model, None, epoch, None, state, store, cfg, protocol))
        state["epoch"] = epoch
        rng = gather_objects(rng_state(), info)
        if info.is_main:
            save_checkpoint(run.path / "last.pt", _checkpoint(model, optimizer, epoch, rng, state, store, cfg, protocol))
        run.log((epoch + 1) * steps, **record)

    if test is None:  # resumed after the last epoch had finished
        test = evaluate(test_loader, "test")
    summary = {
        "protocol": protocol, "init": cfg.init or "none", "head": cfg.head, "epochs": cfg.train.epochs,
        "train_samples": int(train_idx.size), "val_samples": int(val_idx.size), "subset_file": subset_file,
        "test": test, "best_on_val": state["best"], "seconds": round(time.perf_counter() - started, 2),
        "checkpoint": str(run.path / "last.pt"), "run_dir": str(run.path),
    }
    run.summary(summary)
    run.close()
    cleanup(info)
    return summary


def _checkpoint(model, optimizer, epoch: int, rng, state, store, cfg: FinetuneConfig, protocol: str) -> dict[str, Any]:
    ckpt = {
        "kind": "classifier", "head": cfg.head, "protocol": protocol, "model_args": model.encoder.args,
        "num_classes": store.num_classes, "head_dropout": cfg.head_dropout, "strl_layers": cfg.model.graph.strl_layers,
        "model": model.state_dict(),
        "epoch": epoch, "state": state, "data": data_description(store, cfg.data), "config": to_dict(cfg),
    }
    if optimizer is not None:
        ckpt.update({"optimizer": optimizer.state_dict(), "rng": rng})
    return ckpt

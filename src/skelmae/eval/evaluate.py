"""Evaluation passes that see every sample exactly once, on one process or many."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from skelmae.config import DataConfig, TrainConfig
from skelmae.data.storage import SkeletonStore
from skelmae.engine.common import autocast, check_compatible, load_classifier, make_dataset, make_loader
from skelmae.engine.distributed import DistInfo, all_gather_variable, cleanup, init_distributed
from skelmae.engine.runs import write_json_atomic
from skelmae.errors import CheckpointError
from skelmae.eval.metrics import classification_metrics, confusion_matrix
from skelmae.viz.plots import write_confusion_matrix


@torch.no_grad()
def collect(
    fn: Callable[[torch.Tensor], torch.Tensor],
    loader: torch.utils.data.DataLoader,
    info: DistInfo,
    train: TrainConfig,
    desc: str,
    gather: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``fn(x)`` and labels for every batch; with ``gather`` concatenated over ranks.

    The evaluation sampler gives each rank a disjoint share without padding, so the
    gathered result holds each sample once (no duplicates from padding to equal shares).
    """
    outputs, labels = [], []
    for x, y in tqdm(loader, desc=desc, disable=not (info.is_main and train.progress), leave=False):
        with autocast(train, info.device):
            outputs.append(fn(x.to(info.device, non_blocking=True)).float())
        labels.append(y.to(info.device))
    if outputs:
        out, lab = torch.cat(outputs), torch.cat(labels)
    else:
        out, lab = torch.zeros(0, 0, device=info.device), torch.zeros(0, dtype=torch.long, device=info.device)
    if gather:
        out, lab = all_gather_variable(out, info), all_gather_variable(lab, info)
    return out, lab


def evaluate_classifier(
    model: torch.nn.Module, loader: torch.utils.data.DataLoader, info: DistInfo, train: TrainConfig,
    num_classes: int, desc: str = "evaluating",
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """Top-1, top-5 and mean-class accuracy of ``model`` over the loader; also the logits."""
    was_training = model.training
    model.eval()
    logits, labels = collect(model, loader, info, train, desc)
    model.train(was_training)
    return classification_metrics(logits.cpu(), labels.cpu(), num_classes), logits.cpu(), labels.cpu()


def run_evaluate(
    checkpoint: str, data_root: str | None = None, split: str = "", out_dir: str | None = None,
    device: str = "auto", batch_size: int = 128, num_workers: int = 2,
) -> dict[str, Any]:
    """Metrics and confusion matrix of a trained classifier on one split of a dataset.

    Preprocessing (window, test crop, modality) is read from the checkpoint; the data
    must have the checkpoint's joints and channels.
    """
    info = init_distributed(device)
    model, ckpt = load_classifier(checkpoint)
    model.to(info.device)
    saved = ckpt["data"]
    store = SkeletonStore(data_root or saved["root"])
    check_compatible(saved, store, checkpoint)
    if list(saved["classes"]) != store.classes:
        raise CheckpointError(f"{checkpoint}: trained on {len(saved['classes'])} classes that differ from {store.root}'s")
    split = split or ckpt.get("config", {}).get("data", {}).get("test_split", "test")
    data = DataConfig(root=str(store.root), window=saved["window"], test_crop=saved["test_crop"],
                      min_crop=saved["min_crop"], modality=saved["modality"], batch_size=batch_size,
                      align_view=bool(saved.get("align_view", False)),
                      num_workers=num_workers)
    loader = make_loader(make_dataset(store, data, split, train=False), data, info, train=False, seed=0)
    metrics, logits, labels = evaluate_classifier(model, loader, info, TrainConfig(), store.num_classes, desc=split)
    out = Path(out_dir) if out_dir else Path(checkpoint).parent / f"eval-{split}"
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        cm = confusion_matrix(logits.argmax(1).numpy(), labels.numpy(), store.num_classes)
        write_confusion_matrix(cm, store.classes, out / "confusion", title=f"{Path(checkpoint).name}, {split}")
        np.save(out / "logits.npy", logits.numpy())
        write_json_atomic(out / "metrics.json", {"checkpoint": checkpoint, "data": str(store.root), "split": split, **metrics})
    cleanup(info)
    return {"split": split, "out_dir": str(out), **metrics}

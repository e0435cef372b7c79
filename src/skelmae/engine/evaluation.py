"""Evaluation passes that see every sample exactly once, on one process or many."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from skelmae.data.storage import SkeletonStore
from skelmae.config import DataConfig, TrainConfig
from skelmae.engine.common import autocast, make_dataset, make_loader
from skelmae.engine.distributed import DistInfo, all_gather_variable
from skelmae.eval.metrics import classification_metrics


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


def encode_samples(
    encode: Callable[[torch.Tensor], torch.Tensor], store: SkeletonStore, data: DataConfig, info: DistInfo,
    train: TrainConfig, indices: np.ndarray, gather: bool = True, desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``encode`` of the given samples under the deterministic test transform, with their labels."""
    loader = make_loader(make_dataset(store, data, "", train=False, indices=indices), data, info, train=False, seed=0)
    return collect(encode, loader, info, train, desc, gather=gather)


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

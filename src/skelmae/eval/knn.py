"""k-nearest-neighbour retrieval on frozen features (cosine similarity, weighted votes).

Training and test features come from the frozen encoder with the deterministic test
transform. Each test sample votes with its ``k`` most similar training samples, weighted
by ``exp(cosine / temperature)`` (k = 1 is plain nearest-neighbour retrieval).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F

from skelmae.config import KnnConfig
from skelmae.engine.common import downstream_model, make_dataset, make_loader, open_store, resolve_output_dir, seed_everything
from skelmae.engine.distributed import cleanup, init_distributed
from skelmae.engine.runs import RunDir
from skelmae.errors import ConfigError
from skelmae.eval.evaluate import collect


def knn_predict(
    train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor, k: int,
    num_classes: int, temperature: float, chunk: int = 1024,
) -> torch.Tensor:
    """Predicted class of each test feature; features need not be normalised."""
    train_n = F.normalize(train_feats, dim=1)
    preds = []
    for block in F.normalize(test_feats, dim=1).split(chunk):
        sims, idx = (block @ train_n.T).topk(min(k, train_n.shape[0]), dim=1)
        votes = torch.zeros(block.shape[0], num_classes, device=block.device)
        votes.scatter_add_(1, train_labels[idx], torch.exp(sims / temperature))
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def run_knn(cfg: KnnConfig) -> dict[str, Any]:
    if not cfg.init:
        raise ConfigError("knn evaluates a pre-trained encoder: set init=PATH")
    info = init_distributed(cfg.train.device)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    store = open_store(cfg.data)
    model = downstream_model(cfg.init, None, store, cfg.data.window, "linear").to(info.device).eval()
    run = RunDir(resolve_output_dir(cfg.train, "knn", info), active=info.is_main)
    run.write_provenance(cfg, info.device, info.world_size, {"root": str(store.root), "manifest_sha256": store.manifest_hash()})
    started = time.perf_counter()

    def features(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        loader = make_loader(make_dataset(store, cfg.data, split, train=False), cfg.data, info, False, 0)
        return collect(model.features, loader, info, cfg.train, f"{split} features")

    train_x, train_y = features(cfg.data.train_split)
    test_x, test_y = features(cfg.data.test_split)
    results = {}
    for k in cfg.k:
        pred = knn_predict(train_x, train_y, test_x, k, store.num_classes, cfg.temperature)
        results[f"k{k}"] = (pred == test_y).float().mean().item() * 100
    summary = {"protocol": "knn", "init": cfg.init, "top1": results, "train_samples": int(train_y.numel()),
               "test_samples": int(test_y.numel()), "seconds": round(time.perf_counter() - started, 2),
               "run_dir": str(run.path)}
    run.log(0, **{f"knn/{k}": v for k, v in results.items()})
    run.summary(summary)
    run.close()
    cleanup(info)
    return summary

"""Pieces every protocol shares: seeding, datasets, loaders, autocast, run directory."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from skelmae.config import DataConfig, TrainConfig
from skelmae.data.dataset import SeededSampler, SkeletonDataset
from skelmae.data.storage import SkeletonStore
from skelmae.data.transforms import build_transforms, is_planar
from skelmae.config import MaskConfig, ModelConfig
from skelmae.engine.checkpoint import load_checkpoint
from skelmae.engine.distributed import DistInfo
from skelmae.engine.runs import default_run_dir
from skelmae.errors import CheckpointError, ConfigError
from skelmae.models.build import build_classifier, encoder_args, encoder_state_from, load_encoder_weights, mae_args
from skelmae.models.heads import SkeletonClassifier


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def open_store(data: DataConfig) -> SkeletonStore:
    if not data.root:
        raise ConfigError("data.root is empty: set it to a dataset folder (e.g. data.root=data/ntu60)")
    return SkeletonStore(data.root)


def make_dataset(
    store: SkeletonStore, data: DataConfig, split: str, train: bool, indices: np.ndarray | None = None
) -> SkeletonDataset:
    transform = build_transforms(
        store.layout, data.window, train=train, p_interval=data.p_interval, test_crop=data.test_crop,
        min_crop=data.min_crop, rotation=data.rotation, rotation_axes=data.rotation_axes,
        planar=is_planar(store.channels), flip=data.flip, modality=data.modality, align_view=data.align_view,
    )
    return SkeletonDataset(store, split=split if indices is None else None, transform=transform, indices=indices)


def make_loader(
    dataset: torch.utils.data.Dataset, data: DataConfig, info: DistInfo, train: bool, seed: int,
    batch_size: int | None = None,
) -> DataLoader:
    """Training: shuffled, rank-sharded, padded; evaluation: every sample exactly once."""
    global_batch = batch_size or data.batch_size
    if global_batch % info.world_size:
        raise ConfigError(f"batch size {global_batch} is not divisible by the {info.world_size} processes")
    per_rank = global_batch // info.world_size
    sampler = SeededSampler(
        len(dataset), shuffle=train, seed=seed, rank=info.rank, world_size=info.world_size, pad=train
    )
    workers = data.num_workers
    return DataLoader(
        dataset,
        batch_size=per_rank,
        sampler=sampler,
        num_workers=workers,
        pin_memory=info.device.type == "cuda",
        persistent_workers=workers > 0,
        drop_last=train and len(sampler) >= per_rank,
        generator=torch.Generator().manual_seed(seed),
        prefetch_factor=4 if workers > 0 else None,
    )


def autocast(train: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    if train.bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_output_dir(train: TrainConfig, protocol: str, info: DistInfo) -> Path:
    """The run directory; ranks agree on the default (timestamped) name."""
    path = [str(train.output_dir or default_run_dir(protocol))]
    if info.distributed:
        dist.broadcast_object_list(path, src=0)
    return Path(path[0])


def data_description(store: SkeletonStore, data: DataConfig) -> dict[str, Any]:
    """What a checkpoint must remember to preprocess new input exactly as in training."""
    return {
        "layout": store.layout.to_dict(),
        "channels": store.channels,
        "num_persons": store.num_persons,
        "classes": store.classes,
        "window": data.window,
        "test_crop": data.test_crop,
        "min_crop": data.min_crop,
        "modality": data.modality,
        "align_view": data.align_view,
        "dataset": store.manifest.get("name"),
        "preparation": store.manifest.get("source", {}),  # import options (e.g. NTU second actor) for new raw files
        "manifest_sha256": store.manifest_hash(),
        "root": str(store.root),
    }


def check_compatible(data: dict[str, Any], store: SkeletonStore, source: str) -> None:
    """A pre-trained encoder only transfers to data with the same joints (in order) and channels."""
    joints = list(data["layout"]["joints"])
    if joints != list(store.layout.joint_names) or list(data["channels"]) != store.channels:
        raise CheckpointError(
            f"{source}: pre-trained on layout {data['layout']['name']!r} ({len(joints)} joints) with channels "
            f"{data['channels']}, but {store.root} has layout {store.layout.name!r} ({store.layout.num_joints} "
            f"joints) with channels {store.channels}; the joints and channels must match in order"
        )


def downstream_model(
    init: str, model: ModelConfig | None, store: SkeletonStore, window: int, head: str,
    drop_path: float = 0.0, head_dropout: float = 0.3,
) -> SkeletonClassifier:
    """Encoder + ``head`` for ``store``; the encoder comes from ``init`` or, if empty, ``model``.

    The encoder is built for ``window`` frames; a pre-trained temporal embedding of
    another length is resampled.
    """
    model = model or ModelConfig()
    strl_layers = model.graph.strl_layers
    if init:
        ckpt = load_checkpoint(init)
        check_compatible(ckpt["data"], store, init)
        args = {**encoder_args(ckpt["model_args"], drop_path), "num_frames": window}
        classifier = build_classifier(args, head, store.num_classes, head_dropout, strl_layers=strl_layers)
        load_encoder_weights(classifier.encoder, encoder_state_from(ckpt, init), init)
        return classifier
    args = mae_args(model, MaskConfig(), store.layout, store.channels, window)
    return build_classifier(encoder_args(args, drop_path), head, store.num_classes, head_dropout, strl_layers=strl_layers)


def load_classifier(path: str) -> tuple[SkeletonClassifier, dict[str, Any]]:
    """A trained classifier (probe or fine-tuned) and its checkpoint, ready for inference."""
    ckpt = load_checkpoint(path, kind="classifier")
    return classifier_from_checkpoint(ckpt, path), ckpt


def classifier_from_checkpoint(ckpt: dict[str, Any], source: str) -> SkeletonClassifier:
    """The classifier of an already loaded ``kind == "classifier"`` checkpoint, in eval mode."""
    missing = [key for key in ("head", "num_classes") if key not in ckpt]
    if missing:
        raise CheckpointError(f"{source}: classifier checkpoint lacks field(s) {missing}")
    model = build_classifier(
        encoder_args(ckpt["model_args"]), ckpt["head"], ckpt["num_classes"], ckpt.get("head_dropout", 0.3),
        strl_layers=ckpt.get("strl_layers", 3),
    )
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: weights do not fit the {ckpt['head']!r} classifier: {exc}") from exc
    return model.eval()

"""Pieces every protocol shares: seeding, datasets and loaders, autocast, run directory,
and the models a downstream protocol starts from."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from skelmae.config import DataConfig, TrainConfig, chosen
from skelmae.data.dataset import SeededSampler, SkeletonDataset
from skelmae.data.storage import SkeletonStore
from skelmae.data.transforms import Views, build_transforms, is_planar
from skelmae.engine.checkpoint import check_fields, load_checkpoint
from skelmae.engine.distributed import DistInfo
from skelmae.engine.runs import default_run_dir
from skelmae.errors import CheckpointError, ConfigError
from skelmae.models.build import build_classifier, build_method, encoder_state, load_encoder_weights
from skelmae.models.common import BACKBONES, Classifier, InputSpec, PretrainMethod
from skelmae.models.raw import RAW_INIT


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
    store: SkeletonStore, data: DataConfig, split: str, train: bool, indices: np.ndarray | None = None,
    views: int = 1,
) -> SkeletonDataset:
    """``views`` > 1: each item is that many augmented draws of the clip, (views, C, T, V, M)."""
    try:
        transform = build_transforms(
            store.layout, data.window, train=train, p_interval=data.p_interval, test_crop=data.test_crop,
            min_crop=data.min_crop, rotation=data.rotation, rotation_axes=data.rotation_axes,
            planar=is_planar(store.channels), flip=data.flip, modality=data.modality, align_view=data.align_view,
            shear=data.shear,
        )
        if views > 1:
            transform = Views(transform, views)
    except ValueError as exc:
        raise ConfigError(f"data: {exc}") from exc
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
        "preprocessing": store.preprocessing.to_dict(),  # what the import did to the coordinates, for raw clips
        "manifest_sha256": store.manifest_hash(),
        "root": str(store.root),
    }


def input_spec(store: SkeletonStore, window: int) -> InputSpec:
    return InputSpec.of(store.layout, store.channels, window)


def check_compatible(data: dict[str, Any], store: SkeletonStore, source: str) -> None:
    """A pre-trained encoder only transfers to data with the same joints (in order) and channels."""
    joints = list(data["layout"]["joints"])
    if joints != list(store.layout.joint_names) or list(data["channels"]) != store.channels:
        raise CheckpointError(
            f"{source}: pre-trained on layout {data['layout']['name']!r} ({len(joints)} joints) with channels "
            f"{data['channels']}, but {store.root} has layout {store.layout.name!r} ({store.layout.num_joints} "
            f"joints) with channels {store.channels}; the joints and channels must match in order"
        )


def pretrained_backbone(ckpt: dict[str, Any], model: Any | None) -> dict[str, Any]:
    """The checkpoint's backbone, with the options a downstream run may change (``TUNABLE``,
    e.g. drop path) taken from the run's ``model.<backbone>`` section, if one is given."""
    name, config = ckpt["backbone"]["name"], dict(ckpt["backbone"]["config"])
    if model is not None:
        schema = BACKBONES.get(name).config
        for key in getattr(schema, "TUNABLE", ()):
            config[key] = getattr(getattr(model, name), key)
    return {"name": name, "config": config}


def downstream_model(
    init: str, model: Any, head: dict[str, Any], store: SkeletonStore, window: int
) -> tuple[Classifier, dict[str, Any]]:
    """Backbone + ``head`` for ``store``, and the backbone's description; the backbone comes
    from ``init`` (a checkpoint, or ``raw``: the clip itself as the feature) or, if empty, ``model``.

    The backbone is built for ``window`` frames; pre-trained weights of another clip length
    are adapted by the backbone (the transformer resamples its temporal embedding).
    """
    spec = input_spec(store, window)
    if not init or init == RAW_INIT:
        backbone = BACKBONES.describe(RAW_INIT, None) if init else chosen(model)
        return build_classifier(backbone, head, spec, store.num_classes), backbone
    ckpt = load_checkpoint(init)
    check_compatible(ckpt["data"], store, init)
    backbone = pretrained_backbone(ckpt, model)
    classifier = build_classifier(backbone, head, spec, store.num_classes)
    load_encoder_weights(classifier.encoder, encoder_state(ckpt["model"], init), init)
    return classifier, backbone


def classifier_from_checkpoint(ckpt: dict[str, Any], source: str) -> Classifier:
    """The classifier of an already loaded ``kind == "classifier"`` checkpoint, in eval mode."""
    check_fields(ckpt, source)
    model = build_classifier(ckpt["backbone"], ckpt["head"], InputSpec.from_dict(ckpt["input"]), ckpt["num_classes"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: weights do not fit the {ckpt['head']['name']!r} classifier: {exc}") from exc
    return model.eval()


def method_from_checkpoint(ckpt: dict[str, Any], source: str) -> PretrainMethod:
    """The pre-training method (with its backbone) of a ``kind == "pretrain"`` checkpoint, in eval mode."""
    check_fields(ckpt, source)
    model = build_method(ckpt["method"], ckpt["backbone"], InputSpec.from_dict(ckpt["input"]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: weights do not fit the {ckpt['method']['name']!r} model: {exc}") from exc
    return model.eval()


def load_classifier(path: str) -> tuple[Classifier, dict[str, Any]]:
    """A trained classifier (probe or fine-tuned) and its checkpoint, ready for inference."""
    ckpt = load_checkpoint(path, kind="classifier")
    return classifier_from_checkpoint(ckpt, path), ckpt

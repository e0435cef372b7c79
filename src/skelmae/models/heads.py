"""Classification heads on encoder features (N, M, S, V, D) and the (N, M) mask of present
persons, whom they average; each registered head is a
:class:`~skelmae.models.common.Classifier` (the encoder plus its head)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from skelmae.models.common import HEADS, Classifier, Encoder, person_mean


PROBE_POOLS = ("mean", "joints", "steps")


def pool_features(feats: torch.Tensor, present: torch.Tensor | None, pool: str = "mean") -> torch.Tensor:
    """(N, M, S, V, D) features -> one vector per clip: ``mean`` over steps, joints and present
    persons (N, D), MAMP's probe; ``joints`` over steps and present persons, the joints
    concatenated (N, V * D), which keeps where on the body a feature is; ``steps`` over joints
    and present persons, the steps concatenated (N, S * D), which keeps when."""
    if pool == "mean":
        return person_mean(feats.mean(dim=(2, 3)), present)
    if pool == "joints":
        return person_mean(feats.mean(dim=2).flatten(2), present)
    return person_mean(feats.mean(dim=3).flatten(2), present)


class LinearProbeHead(nn.Module):
    """Pooled features (:func:`pool_features`) -> BatchNorm (no affine) -> Linear (MAE/MAMP
    probe); it also takes pooled features directly."""

    def __init__(self, dim: int, num_classes: int, pool: str = "mean"):
        super().__init__()
        self.pool = pool
        self.norm = nn.BatchNorm1d(dim, affine=False, eps=1e-6)
        self.fc = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, feats: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        if feats.ndim == 5:
            feats = pool_features(feats, present, self.pool)
        return self.fc(self.norm(feats))


class FinetuneHead(nn.Module):
    """Per-joint temporal mean -> concatenated joints -> mean over present persons -> MLP (MAMP)."""

    def __init__(self, dim: int, num_joints: int, num_classes: int, hidden: int = 2048, dropout: float = 0.3):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.mlp = nn.Sequential(
            nn.Linear(dim * num_joints, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, feats: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        n, m, _, v, d = feats.shape
        return self.mlp(person_mean(self.dropout(feats).mean(dim=2).reshape(n, m, v * d), present))


class SkeletonClassifier(Classifier):
    """Encoder + a head on its token features; ``features`` is the pooled clip embedding."""

    def __init__(self, encoder: Encoder, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.pooled(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x), self.encoder.present(x))


@dataclass
class LinearHeadConfig:
    pool: str = "mean"  # mean | joints | steps: see pool_features
    layers: int = 1  # the last blocks whose features are concatenated (Encoder.layer_features)


@HEADS.register("linear", config=LinearHeadConfig)
class LinearClassifier(SkeletonClassifier):
    """The linear probe: BatchNorm + linear map of the pooled features (the head also takes them directly)."""

    def __init__(self, encoder: Encoder, num_classes: int, cfg: LinearHeadConfig | None = None):
        cfg = cfg or LinearHeadConfig()
        if cfg.pool not in PROBE_POOLS:
            raise ValueError(f"pool must be one of {PROBE_POOLS}, got {cfg.pool!r}")
        if not 1 <= cfg.layers <= encoder.feature_layers:
            raise ValueError(f"layers must be between 1 and {encoder.feature_layers} for {type(encoder).__name__}, "
                             f"got {cfg.layers}")
        if cfg.pool == "steps" and encoder.num_steps is None:
            raise ValueError(f"pool=steps needs a backbone whose clip length fixes its feature steps; "
                             f"{type(encoder).__name__} does not")
        positions = {"mean": 1, "joints": encoder.num_joints, "steps": encoder.num_steps}[cfg.pool]
        super().__init__(encoder, LinearProbeHead(encoder.dim * cfg.layers * positions, num_classes, cfg.pool))
        self.layers = cfg.layers

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.head.pool == "mean" and self.layers == 1:
            return self.encoder.pooled(x)
        feats = self.encoder.layer_features(x, self.layers)
        if self.head.pool == "joints" and feats.shape[3] != self.encoder.num_joints:
            raise ValueError(f"pool=joints needs per-joint features; this backbone gives {feats.shape[3]} "
                             f"feature positions for {self.encoder.num_joints} joints")
        return pool_features(feats, self.encoder.present(x), self.head.pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.layer_features(x, self.layers), self.encoder.present(x))


@dataclass
class MLPHeadConfig:
    hidden: int = 2048
    dropout: float = 0.3


@HEADS.register("mlp", config=MLPHeadConfig)
class MLPClassifier(SkeletonClassifier):
    """MAMP's fine-tuning head: per-joint features concatenated, then a 2-layer MLP."""

    def __init__(self, encoder: Encoder, num_classes: int, cfg: MLPHeadConfig):
        super().__init__(encoder, FinetuneHead(encoder.dim, encoder.num_joints, num_classes, cfg.hidden, cfg.dropout))


@dataclass
class FCHeadConfig:
    dropout: float = 0.0  # on the pooled features (CTR-GCN's drop_out, 0 in its NTU and NW-UCLA configs)


class PooledLinearHead(nn.Module):
    """Mean over time, joints and present persons -> dropout -> linear."""

    def __init__(self, dim: int, num_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes)
        nn.init.normal_(self.fc.weight, 0.0, math.sqrt(2.0 / num_classes))

    def forward(self, feats: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(self.dropout(person_mean(feats.mean(dim=(2, 3)), present)))


@HEADS.register("fc", config=FCHeadConfig)
class FCClassifier(SkeletonClassifier):
    """Global average pooling -> dropout -> linear: the classifier of CTR-GCN (and 2s-AGCN)."""

    def __init__(self, encoder: Encoder, num_classes: int, cfg: FCHeadConfig):
        if not 0.0 <= cfg.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {cfg.dropout}")
        super().__init__(encoder, PooledLinearHead(encoder.dim, num_classes, cfg.dropout))

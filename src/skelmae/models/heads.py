"""Classification heads on encoder features (N, M, S, V, D) and the (N, M) mask of present
persons, whom they average; each registered head is a
:class:`~skelmae.models.common.Classifier` (the encoder plus its head)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from skelmae.models.common import HEADS, Classifier, Encoder, person_mean


class LinearProbeHead(nn.Module):
    """Mean over time, joints and present persons -> BatchNorm (no affine) -> Linear (MAE/MAMP
    probe); it also takes pooled (N, D) features directly."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim, affine=False, eps=1e-6)
        self.fc = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, feats: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        if feats.ndim == 5:
            feats = person_mean(feats.mean(dim=(2, 3)), present)
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


@HEADS.register("linear")
class LinearClassifier(SkeletonClassifier):
    """The linear probe: BatchNorm + linear map of the pooled features (the head also takes them directly)."""

    def __init__(self, encoder: Encoder, num_classes: int):
        super().__init__(encoder, LinearProbeHead(encoder.dim, num_classes))


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

"""STRL: the fine-tuning network of SkeletonMAE-G (Yan et al., ICCV 2023), on a pre-trained GIN encoder.

The paper released no code; points it leaves open are marked *choice*. Read top to bottom:

1. Input. Persons are folded into the batch, so the two persons of a clip share every weight.
   Each frame's joints are lifted by the encoder's own embedding (``GraphEncoder.embed``, the
   pre-trained lift to D plus joint embedding) and a learned temporal position embedding
   (1, T, 1, D) is added; it is resampled linearly when a clip has another length.
2. Layers (3 by default), on features kept as (B, D, T, V) so 1x1 convolutions act per joint:

   * spatial module SM: the pre-trained GIN encoder (``.encoder``) runs on every frame graph of
     H (D -> D_h), its output is sum-pooled over joints and the frame vector is broadcast back
     to every joint and joined to H (the paper's "⊕"; *choice*: concatenation, which needs no
     D = D_h). A 1x1 convolution maps the join back to D and a 1x1 convolution residual ties
     the output to H: ``H' = ReLU(BN(W [H ⊕ pool]) + BN(R H))``. The paper's layer update
     ``H^{l+1} = ReLU(SM(H^l) W^l)`` has one SM for all layers, so one encoder (one set of
     weights) serves every layer, while W and R are per layer.
   * temporal: CTR-GCN's multi-scale temporal convolution (two dilated temporal convolutions,
     kernel 5, dilations 1 and 2, a max-pool branch and a 1x1 branch, each D/4 channels) with
     an identity residual. *choice*: the paper credits "multi-scale temporal pooling" to the
     head and describes no other temporal operator; without one inside the layers frames would
     never exchange information before the final pooling, so the module runs in every layer,
     as in the CTR-GCN units it cites.
3. Head: mean over time and joints, mean over persons, then an MLP (D -> 4D, ReLU, dropout,
   -> classes); the loss (cross-entropy with label smoothing) is the training loop's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from skelmae.models.common import HEADS, Classifier, fold_persons
from skelmae.models.graph_mae import GraphEncoder

__all__ = ["MultiScaleTemporalConv", "STRLLayer", "STRLConfig", "STRLNet"]


class MultiScaleTemporalConv(nn.Module):
    """CTR-GCN's multi-scale temporal convolution on (B, C, T, V): concatenated branches, C channels out."""

    def __init__(self, dim: int, kernel_size: int = 5, dilations: tuple[int, ...] = (1, 2)):
        super().__init__()
        count = len(dilations) + 2
        if dim % count:
            raise ValueError(f"STRL width {dim} must be divisible by {count} (the temporal branches)")
        c = dim // count

        def entry() -> list[nn.Module]:
            return [nn.Conv2d(dim, c, 1), nn.BatchNorm2d(c)]

        dilated = [
            nn.Sequential(*entry(), nn.ReLU(inplace=True),
                          nn.Conv2d(c, c, (kernel_size, 1), padding=((kernel_size - 1) * d // 2, 0), dilation=(d, 1)),
                          nn.BatchNorm2d(c))
            for d in dilations
        ]
        pooled = nn.Sequential(*entry(), nn.ReLU(inplace=True), nn.MaxPool2d((3, 1), stride=1, padding=(1, 0)),
                               nn.BatchNorm2d(c))
        self.branches = nn.ModuleList([*dilated, pooled, nn.Sequential(*entry())])

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(h) for branch in self.branches], dim=1)


class STRLLayer(nn.Module):
    """Spatial module around the shared encoder, then multi-scale temporal convolution."""

    def __init__(self, dim: int, encoder_dim: int):
        super().__init__()
        self.mix = nn.Sequential(nn.Conv2d(dim + encoder_dim, dim, 1), nn.BatchNorm2d(dim))
        self.residual = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.BatchNorm2d(dim))
        self.temporal = MultiScaleTemporalConv(dim)

    def forward(self, h: torch.Tensor, encoder: GraphEncoder) -> torch.Tensor:
        """h: (B, D, T, V) -> (B, D, T, V)."""
        frame = encoder.propagate(h.permute(0, 2, 3, 1)).sum(dim=2)  # (B, T, D_h): sum over joints
        pooled = frame.permute(0, 2, 1)[..., None].expand(-1, -1, -1, h.shape[-1])
        h = F.relu(self.mix(torch.cat([h, pooled.to(h.dtype)], dim=1)) + self.residual(h))
        return F.relu(self.temporal(h) + h)


@dataclass
class STRLConfig:
    layers: int = 3
    dropout: float = 0.3


@HEADS.register("strl", config=STRLConfig)
class STRLNet(Classifier):
    """The STRL classifier; ``.encoder`` is the (pre-trained) :class:`GraphEncoder`."""

    def __init__(self, encoder: GraphEncoder, num_classes: int, cfg: STRLConfig):
        super().__init__()
        if not isinstance(encoder, GraphEncoder):
            raise ValueError("STRL fine-tunes a graph encoder: it needs model.arch=gin")
        if cfg.layers < 1:
            raise ValueError(f"STRL needs at least one layer, got {cfg.layers}")
        layers, dropout = cfg.layers, cfg.dropout
        self.encoder = encoder
        dim = encoder.feat_dim
        self.temporal_pos = nn.Parameter(torch.zeros(1, encoder.num_frames, 1, dim))
        nn.init.trunc_normal_(self.temporal_pos, std=0.02)
        self.layers = nn.ModuleList(STRLLayer(dim, encoder.dim) for _ in range(layers))
        self.head = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(4 * dim, num_classes)
        )

    def positions(self, frames: int) -> torch.Tensor:
        """The temporal embedding (1, frames, 1, D), linearly resampled if the clip length differs."""
        pos = self.temporal_pos
        if pos.shape[1] == frames:
            return pos
        resized = F.interpolate(pos[:, :, 0].transpose(1, 2), size=frames, mode="linear", align_corners=False)
        return resized.transpose(1, 2)[:, :, None]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> pooled clip embedding (N, D), persons averaged."""
        n, _, t, _, m = x.shape
        h = (self.encoder.embed(fold_persons(x)) + self.positions(t)).permute(0, 3, 1, 2)
        for layer in self.layers:
            h = layer(h, self.encoder)
        return h.mean(dim=(2, 3)).reshape(n, m, -1).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

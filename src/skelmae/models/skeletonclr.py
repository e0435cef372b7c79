"""SkeletonCLR (Li et al., CVPR 2021): MoCo v2 contrastive pre-training on skeleton clips.

Read top to bottom:

1. Views. The data pipeline draws two augmented views of each clip (``views = 2``; shear,
   temporal crop-resize and the usual spatial augmentations, ``data.shear`` and friends), so
   a batch is (N, 2, C, T, V, M): view 0 is the query, view 1 the key.
2. Query. The backbone's pooled clip embedding (mean over persons, time and joints, as
   ST-GCN's global pooling) goes through a projection head (MoCo v2's MLP: Linear, ReLU,
   Linear to ``feature_dim``) and is L2-normalised.
3. Key. A momentum copy of backbone and projection head, never trained by gradients:
   after every optimiser step its weights become ``m * key + (1 - m) * query`` (MoCo
   updates at the start of the next forward; the same sequence of weights). ``m`` is
   constant (SkeletonCLR) or rises from ``momentum`` to 1 on a half cosine over the run
   (``momentum_schedule=cosine``, BYOL's schedule, which SkeAttnCLR uses). The key copy
   starts equal to the query networks (MoCo's rule; the SkeletonCLR code re-initialises
   both independently afterwards, which MoCo does not intend).
4. Loss. InfoNCE with temperature ``temperature``: the key of the same clip is the
   positive, the ``queue`` keys of earlier batches the negatives.
5. Queue. After each forward the batch's keys, gathered from every process so that each
   key enters exactly once, replace the oldest entries (a ring buffer, so the queue length
   need not be a multiple of the batch). Queue and pointer are buffers: checkpoints and
   resumed runs carry them with the key encoder.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from skelmae.models.common import METHODS, Encoder, InputSpec, MethodOutput, PretrainMethod

__all__ = ["SkeletonCLRConfig", "SkeletonCLR", "MomentumContrast", "info_nce", "gather_from_ranks"]


def gather_from_ranks(x: torch.Tensor) -> torch.Tensor:
    """``x`` of every process, concatenated in rank order (``x`` itself without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def info_nce(
    query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, temperature: float,
    own_negative: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of picking ``positive`` (B, D) among it and ``negatives`` (K, D), plus
    optionally one negative per sample, ``own_negative`` (B, D); inputs L2-normalised."""
    columns = [(query * positive).sum(dim=1, keepdim=True)]
    if own_negative is not None:
        columns.append((query * own_negative).sum(dim=1, keepdim=True))
    logits = torch.cat([*columns, query @ negatives.T], dim=1).float() / temperature
    return F.cross_entropy(logits, torch.zeros(query.shape[0], dtype=torch.long, device=query.device))


def projection_head(dim: int, feature_dim: int, mlp: bool, norm: bool = False) -> nn.Module:
    """MoCo v2's MLP (Linear, ReLU, Linear), with BatchNorm after the first layer if ``norm``."""
    if not mlp:
        return nn.Linear(dim, feature_dim)
    return nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim) if norm else nn.Identity(), nn.ReLU(inplace=True),
                         nn.Linear(dim, feature_dim))


@dataclass
class SkeletonCLRConfig:
    feature_dim: int = 128  # output of the projection head
    queue: int = 32768  # negatives kept (SkeletonCLR: 32768 for NTU, 16384 for smaller sets)
    momentum: float = 0.999
    temperature: float = 0.07
    mlp: bool = True  # MoCo v2 MLP projection head; False: one linear layer (MoCo v1)
    momentum_schedule: str = "constant"  # constant | cosine (from ``momentum`` up to 1 over the run)


class MomentumContrast(PretrainMethod):
    """Query backbone and projector, their momentum copies and a queue of past keys."""

    views = 2
    projector_norm = False  # BatchNorm inside the projection MLP

    def __init__(self, encoder: Encoder, spec: InputSpec, cfg: SkeletonCLRConfig):
        super().__init__()
        if cfg.queue < 1 or cfg.feature_dim < 1:
            raise ValueError(f"queue and feature_dim must be positive, got {cfg.queue} and {cfg.feature_dim}")
        if not 0.0 <= cfg.momentum <= 1.0 or cfg.temperature <= 0:
            raise ValueError(f"need 0 <= momentum <= 1 and temperature > 0, got {cfg.momentum} and {cfg.temperature}")
        if cfg.momentum_schedule not in ("constant", "cosine"):
            raise ValueError(f"momentum_schedule must be constant or cosine, got {cfg.momentum_schedule!r}")
        self.cfg = cfg
        self.encoder = encoder
        self.projector = projection_head(encoder.dim, cfg.feature_dim, cfg.mlp, self.projector_norm)
        self.key_encoder, self.key_projector = copy.deepcopy(encoder), copy.deepcopy(self.projector)
        for p in self.momentum_pairs():
            p[1].requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(cfg.queue, cfg.feature_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def momentum_pairs(self):
        """(query parameter, key parameter) pairs, key copies in the same order."""
        query = [*self.encoder.parameters(), *self.projector.parameters()]
        key = [*self.key_encoder.parameters(), *self.key_projector.parameters()]
        return zip(query, key, strict=True)

    def momentum_at(self, progress: float) -> float:
        if self.cfg.momentum_schedule == "constant":
            return self.cfg.momentum
        return 1.0 - (1.0 - self.cfg.momentum) * (math.cos(math.pi * min(progress, 1.0)) + 1.0) / 2.0

    @torch.no_grad()
    def after_optimizer_step(self, progress: float) -> None:
        momentum = self.momentum_at(progress)
        for query, key in self.momentum_pairs():
            key.lerp_(query.detach(), 1.0 - momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        keys = gather_from_ranks(keys.detach().to(self.queue.dtype))
        size = self.queue.shape[0]
        if keys.shape[0] > size:
            raise ValueError(f"a global batch of {keys.shape[0]} keys does not fit a queue of {size}")
        slots = (self.queue_ptr + torch.arange(keys.shape[0], device=keys.device)) % size
        self.queue[slots] = keys
        self.queue_ptr.copy_((self.queue_ptr + keys.shape[0]) % size)

    def negatives(self) -> torch.Tensor:
        return self.queue.clone().detach()

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projector(self.encoder.pooled(x)), dim=1)

    @torch.no_grad()
    def key_embedding(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.key_projector(self.key_encoder.pooled(x)), dim=1)


@METHODS.register("skeletonclr", config=SkeletonCLRConfig)
class SkeletonCLR(MomentumContrast):
    """SkeletonCLR: MoCo v2 with two augmented views, a momentum key encoder and a queue."""

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, shard: tuple[int, int] = (0, 1)
    ) -> MethodOutput:
        query, key = self.project(x[:, 0]), self.key_embedding(x[:, 1])
        loss = info_nce(query, key, self.negatives(), self.cfg.temperature)
        self.enqueue(key)
        return MethodOutput(loss)

"""SkeAttnCLR (Hua et al., IJCAI 2023): SkeletonCLR plus salient and non-salient local features.

Read top to bottom (``docs/contrastive.md`` lists every choice against the paper's code):

1. Everything of :class:`~skelmae.models.skeletonclr.MomentumContrast`: two views, a
   momentum key encoder, one queue of global keys, InfoNCE.
2. Attention mask. The query backbone's features before pooling, each person's T' x V
   tokens of ``dim`` channels, go through LayerNorm, ``heads``-head self-attention and a
   linear map; ``sigmoid(scale * .)`` of that is a soft mask M in (0, 1), per token and
   channel. The salient feature is the token mean of f * M, the non-salient one of
   f * (1 - M), both then averaged over persons like the global (pooled) feature.
3. Keys. The momentum encoder's features of the key view are split with the *query's* mask
   (as the paper's code does), giving global, salient and non-salient keys.
4. Loss. ``global + mu * salient + (1 - mu) * non_salient``, each an InfoNCE with
   temperature ``temperature`` against the queue of global keys; the salient term also
   counts the sample's own non-salient query (detached) as a negative, and the non-salient
   term its salient one, which pushes the two parts apart. All three features share the
   projection head (an MLP with BatchNorm). Only global keys enter the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from skelmae.models.common import METHODS, Encoder, InputSpec, MethodOutput
from skelmae.models.skeletonclr import MomentumContrast, SkeletonCLRConfig, info_nce

__all__ = ["SkeAttnCLRConfig", "SkeAttnCLR", "AttentionMask"]


class AttentionMask(nn.Module):
    """Tokens (B, L, D) -> a soft mask (B, L, D) from multi-head self-attention."""

    def __init__(self, dim: int, heads: int, scale: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"the attention mask needs dim {dim} divisible by heads {heads}")
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.proj = nn.Linear(dim, dim)
        self.scale = scale

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.norm(tokens)
        h, _ = self.attention(h, h, h, need_weights=False)
        return torch.sigmoid(self.scale * self.proj(h))


@dataclass
class SkeAttnCLRConfig(SkeletonCLRConfig):
    momentum: float = 0.996
    temperature: float = 0.2
    momentum_schedule: str = "cosine"
    mu: float = 0.5  # weight of the salient term; 1 - mu weighs the non-salient one
    heads: int = 8  # of the attention-mask module
    mask_scale: float = 2.0  # sigmoid(scale * x)


@METHODS.register("skeattnclr", config=SkeAttnCLRConfig)
class SkeAttnCLR(MomentumContrast):
    """SkeAttnCLR: SkeletonCLR with attention-masked salient and non-salient contrast."""

    projector_norm = True

    def __init__(self, encoder: Encoder, spec: InputSpec, cfg: SkeAttnCLRConfig):
        if not 0.0 <= cfg.mu <= 1.0:
            raise ValueError(f"mu weighs salient against non-salient terms: 0 <= mu <= 1, got {cfg.mu}")
        super().__init__(encoder, spec, cfg)
        self.attention_mask = AttentionMask(encoder.dim, cfg.heads, cfg.mask_scale)

    def parts(self, feats: torch.Tensor, mask: torch.Tensor, projector: nn.Module) -> tuple[torch.Tensor, ...]:
        """Normalised projections of the global, salient and non-salient features.

        ``feats`` and ``mask``: (N, M, L, D) tokens of each person."""
        pooled = [feats.mean(dim=2), (feats * mask).mean(dim=2), (feats * (1 - mask)).mean(dim=2)]
        return tuple(F.normalize(projector(p.mean(dim=1)), dim=1) for p in pooled)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, shard: tuple[int, int] = (0, 1)
    ) -> MethodOutput:
        feats = self.encoder(x[:, 0])
        n, m = feats.shape[:2]
        feats = feats.reshape(n, m, -1, feats.shape[-1])
        mask = self.attention_mask(feats.flatten(0, 1)).view_as(feats)
        global_q, salient_q, other_q = self.parts(feats, mask, self.projector)
        with torch.no_grad():
            keys = self.key_encoder(x[:, 1]).reshape(feats.shape)
            global_k, salient_k, other_k = self.parts(keys, mask.detach(), self.key_projector)
        negatives, t, mu = self.negatives(), self.cfg.temperature, self.cfg.mu
        loss = info_nce(global_q, global_k, negatives, t)
        if mu > 0:
            loss = loss + mu * info_nce(salient_q, salient_k, negatives, t, own_negative=other_q.detach())
        if mu < 1:
            loss = loss + (1 - mu) * info_nce(other_q, other_k, negatives, t, own_negative=salient_q.detach())
        self.enqueue(global_k)
        return MethodOutput(loss)

"""SkeletonMAE-ST: the spatial-temporal transformer masked autoencoder (MAMP-compatible).

Read top to bottom:

1. ``patchify``: (N, C, T, V, M) -> persons folded into the batch -> tokens of ``segment``
   frames x 1 joint, each a vector of ``segment * C`` numbers (frame offset major,
   channel minor). T = 120, segment 4, V = 25 gives a 30 x 25 grid = 750 tokens/person.
2. ``SkeletonEncoder``: linear token embedding + factorised learned temporal and spatial
   embeddings, pre-norm transformer blocks (fused ``scaled_dot_product_attention``),
   final LayerNorm. In pre-training it runs on the visible tokens only.
3. ``SkeletonMAE``: masks tokens (``masking.py``), encodes the visible ones, then a
   lighter decoder sees the full grid (visible latents + a learned mask token, with its
   own embeddings) and predicts each token's ``segment * C`` numbers. The target is the
   input coordinates (``coords``, SkeletonMAE) or the next-frame motion x[t+1] - x[t]
   (``motion``, MAMP), optionally standardised per token; the loss is the MSE on masked
   tokens only.

Persons are encoded independently (no cross-person attention); heads average persons.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from skelmae.models.masking import STRATEGIES, MaskResult, mask_tokens

__all__ = ["patchify", "motion_target", "masked_mse", "Block", "SkeletonEncoder", "SkeletonMAE", "MAEOutput"]


def fold_persons(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, V, M) -> (N*M, T, V, C), person-minor so persons of a sample are adjacent."""
    n, c, t, v, m = x.shape
    return x.permute(0, 4, 2, 3, 1).reshape(n * m, t, v, c)


def patchify(seq: torch.Tensor, segment: int) -> torch.Tensor:
    """(B, T, V, C) -> (B, T // segment, V, segment * C)."""
    b, t, v, c = seq.shape
    if t % segment:
        raise ValueError(f"window of {t} frames is not a multiple of the segment length {segment}")
    return seq.reshape(b, t // segment, segment, v, c).permute(0, 1, 3, 2, 4).reshape(b, t // segment, v, segment * c)


def motion_target(seq: torch.Tensor) -> torch.Tensor:
    """Next-frame displacement x[t+1] - x[t] of (B, T, V, C), last frame zero (MAMP)."""
    motion = torch.zeros_like(seq)
    motion[:, :-1] = seq[:, 1:] - seq[:, :-1]
    return motion


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per token, averaged over masked tokens only (mask 1 = masked)."""
    per_token = ((pred - target) ** 2).mean(dim=-1)
    return (per_token * mask).sum() / mask.sum().clamp_min(1)


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class SkeletonEncoder(nn.Module):
    """Token embedding + transformer over one person's (segments x joints) token grid."""

    def __init__(
        self,
        in_channels: int,
        num_joints: int,
        num_frames: int,
        segment: int = 4,
        dim: int = 256,
        depth: int = 8,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        if num_frames % segment:
            raise ValueError(f"window of {num_frames} frames is not a multiple of the segment length {segment}")
        self.args = {
            "in_channels": in_channels, "num_joints": num_joints, "num_frames": num_frames, "segment": segment,
            "dim": dim, "depth": depth, "heads": heads, "mlp_ratio": mlp_ratio, "drop_path": drop_path,
        }
        self.in_channels, self.num_joints, self.segment, self.dim = in_channels, num_joints, segment, dim
        self.num_segments = num_frames // segment
        self.embed = nn.Linear(segment * in_channels, dim)
        self.temporal_pos = nn.Parameter(torch.zeros(1, self.num_segments, 1, dim))
        self.spatial_pos = nn.Parameter(torch.zeros(1, 1, num_joints, dim))
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, r) for r in rates)
        self.norm = nn.LayerNorm(dim)
        self.apply(_init_weights)
        nn.init.trunc_normal_(self.temporal_pos, std=0.02)
        nn.init.trunc_normal_(self.spatial_pos, std=0.02)

    @property
    def num_tokens(self) -> int:
        return self.num_segments * self.num_joints

    @property
    def num_layers(self) -> int:
        """Layer-wise lr decay depth: embeddings (0), blocks (1..depth), the rest (depth + 1)."""
        return len(self.blocks) + 1

    def layer_id(self, name: str) -> int:
        """Layer of a parameter named relative to the encoder's parent (``encoder.blocks.3.x``)."""
        parts = name.split(".")
        if "encoder" in parts:
            parts = parts[parts.index("encoder") + 1:]
            if parts[0] in ("embed", "temporal_pos", "spatial_pos"):
                return 0
            if parts[0] == "blocks":
                return int(parts[1]) + 1
        return self.num_layers

    def embed_tokens(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, S, V, P) patches -> (B, S*V, dim) embedded tokens with positions."""
        tokens = self.embed(patches) + self.temporal_pos + self.spatial_pos
        return tokens.flatten(1, 2)

    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> token features (N, M, S, V, dim) over the full grid."""
        n, _, _, _, m = x.shape
        patches = patchify(fold_persons(x), self.segment)
        feats = self.forward_tokens(self.embed_tokens(patches))
        return feats.reshape(n, m, self.num_segments, self.num_joints, self.dim)


@dataclass
class MAEOutput:
    loss: torch.Tensor
    pred: torch.Tensor  # (B, L, P) predicted token values (normalised space if norm_target)
    target: torch.Tensor  # (B, L, P) targets in the same space
    mask: torch.Tensor  # (B, L), 1 = masked


class SkeletonMAE(nn.Module):
    """Masked autoencoder around a :class:`SkeletonEncoder`."""

    def __init__(
        self,
        in_channels: int,
        num_joints: int,
        num_frames: int,
        segment: int = 4,
        dim: int = 256,
        depth: int = 8,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        decoder_dim: int = 256,
        decoder_depth: int = 3,
        decoder_heads: int = 8,
        mask_strategy: str = "motion",
        mask_ratio: float = 0.9,
        motion_tau: float = 0.8,
        target: str = "motion",
        norm_target: bool = True,
        joint_groups: list[int] | None = None,
    ):
        super().__init__()
        if mask_strategy not in STRATEGIES:
            raise ValueError(f"mask_strategy must be one of {STRATEGIES}, got {mask_strategy!r}")
        if target not in ("coords", "motion"):
            raise ValueError(f"target must be 'coords' or 'motion', got {target!r}")
        self.encoder = SkeletonEncoder(in_channels, num_joints, num_frames, segment, dim, depth, heads, mlp_ratio)
        self.mask_strategy, self.mask_ratio, self.motion_tau = mask_strategy, mask_ratio, motion_tau
        self.target, self.norm_target = target, norm_target
        groups = torch.as_tensor(joint_groups if joint_groups is not None else [0] * num_joints, dtype=torch.long)
        self.register_buffer("joint_groups", groups, persistent=False)

        s = self.encoder.num_segments
        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_temporal_pos = nn.Parameter(torch.zeros(1, s, 1, decoder_dim))
        self.decoder_spatial_pos = nn.Parameter(torch.zeros(1, 1, num_joints, decoder_dim))
        self.decoder_blocks = nn.ModuleList(Block(decoder_dim, decoder_heads, mlp_ratio) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, segment * in_channels)
        for module in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            module.apply(_init_weights)
        for param in (self.mask_token, self.decoder_temporal_pos, self.decoder_spatial_pos):
            nn.init.trunc_normal_(param, std=0.02)

    def choose_mask(
        self, patches: torch.Tensor, generator: torch.Generator | None = None, shard: tuple[int, int] = (0, 1),
        persons: int = 1,
    ) -> MaskResult:
        b, s, v, _ = patches.shape
        return mask_tokens(
            self.mask_strategy, self.mask_ratio, b, s, v, device=patches.device, generator=generator,
            patches=patches if self.mask_strategy == "motion" else None,
            joint_groups=self.joint_groups, tau=self.motion_tau, shard=shard, rows_per_sample=persons,
        )

    def forward_encoder(self, patches: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Embeds all tokens, keeps only ``ids_keep``, runs the blocks: (B, n_visible, dim)."""
        tokens = self.encoder.embed_tokens(patches)
        visible = torch.gather(tokens, 1, ids_keep[..., None].expand(-1, -1, tokens.shape[-1]))
        return self.encoder.forward_tokens(visible)

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.decoder_embed(latent)
        b, n_vis, d = x.shape
        masked = self.mask_token.expand(b, ids_restore.shape[1] - n_vis, d)
        x = torch.cat([x, masked], dim=1)
        x = torch.gather(x, 1, ids_restore[..., None].expand(-1, -1, d))  # back to grid order
        pos = (self.decoder_temporal_pos + self.decoder_spatial_pos).flatten(1, 2)
        x = x + pos
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))

    def make_target(self, seq: torch.Tensor) -> torch.Tensor:
        """Per-token targets (B, L, P) from the folded input sequence (B, T, V, C)."""
        source = motion_target(seq) if self.target == "motion" else seq
        target = patchify(source, self.encoder.segment).flatten(1, 2)
        if self.norm_target:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        return target

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, shard: tuple[int, int] = (0, 1)
    ) -> MAEOutput:
        """x: (N, C, T, V, M) -> loss on the masked tokens of all N*M person sequences.

        ``generator`` and ``shard`` make the masks reproducible across process counts
        (see :func:`skelmae.models.masking.mask_tokens`).
        """
        seq = fold_persons(x)
        patches = patchify(seq, self.encoder.segment)
        mask = self.choose_mask(patches, generator, shard, persons=x.shape[-1])
        latent = self.forward_encoder(patches, mask.ids_keep)
        pred = self.forward_decoder(latent, mask.ids_restore)
        target = self.make_target(seq)
        loss = masked_mse(pred.float(), target, mask.mask)
        return MAEOutput(loss=loss, pred=pred, target=target, mask=mask.mask)

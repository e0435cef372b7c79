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

Persons are encoded independently (no cross-person attention), so an absent person (an
all-zero slot: NTU-style data pads every clip to 2 persons and most have one) is left out of
the encoder, the decoder and the loss; its features are zero and heads average the present
persons only. The encoder is the registered backbone ``transformer``, the MAE the method ``mae``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from skelmae.models.common import BACKBONES, METHODS, Encoder, InputSpec, MethodOutput, PretrainMethod, fold_persons
from skelmae.models.masking import MASKING, MaskResult, mask_tokens

__all__ = [
    "patchify", "motion_target", "masked_mse", "Block", "TransformerConfig", "SkeletonEncoder", "MAEConfig", "SkeletonMAE",
]


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


class _Bf16AttentionFp32Backward(torch.autograd.Function):
    """Fused attention in bf16 whose backward runs PyTorch's fused CPU kernel in fp32.

    On CPU that kernel's bf16 forward is faster than its fp32 one, but its bf16 backward is
    1.5x (750 tokens) to 6x (75 tokens) slower than the fp32 backward, so a bf16 training
    step spent more than half its time there (benchmarks/attention_kernels.py, README,
    "Performance"). The fp32 backward of the bf16 inputs (exactly
    representable in fp32) with the forward's log-sum-exp gives gradients closer to fp32
    training than the all-bf16 kernel does (tests/models/test_st_mae.py)."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out, logsumexp = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)
        ctx.save_for_backward(q, k, v, out, logsumexp)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v, out, logsumexp = ctx.saved_tensors
        grads = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            grad_out.float(), q.float(), k.float(), v.float(), out.float(), logsumexp, 0.0, False,
        )
        return tuple(g.to(q.dtype) for g in grads)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(QK^T / sqrt(d)) V, fused; in bf16 training on a CPU with the backward in fp32."""
    if q.device.type == "cpu" and q.dtype == torch.bfloat16 and torch.is_grad_enabled() and (
        q.requires_grad or k.requires_grad or v.requires_grad
    ):
        return _Bf16AttentionFp32Backward.apply(q, k, v)
    return F.scaled_dot_product_attention(q, k, v)


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
        out = attention(q, k, v)
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


@dataclass
class TransformerConfig:
    """The MAMP transformer: ``segment`` frames x 1 joint per token, ``depth`` pre-norm blocks."""

    segment: int = 4
    dim: int = 256
    depth: int = 8
    heads: int = 8
    mlp_ratio: float = 4.0
    drop_path: float = 0.0  # stochastic depth, linearly increasing over the blocks (fine-tuning)

    TUNABLE: ClassVar[tuple[str, ...]] = ("drop_path",)  # a downstream run may set these on a pre-trained encoder


@BACKBONES.register("transformer", config=TransformerConfig)
class SkeletonEncoder(Encoder):
    """Token embedding + transformer over one person's (segments x joints) token grid."""

    independent_persons = True

    def __init__(self, spec: InputSpec, cfg: TransformerConfig):
        super().__init__()
        if spec.num_frames % cfg.segment:
            raise ValueError(f"window of {spec.num_frames} frames is not a multiple of the segment length {cfg.segment}")
        self.in_channels, self.num_joints, self.segment, self.dim = spec.in_channels, spec.num_joints, cfg.segment, cfg.dim
        self.mlp_ratio = cfg.mlp_ratio
        self.num_segments = spec.num_frames // cfg.segment
        self.embed = nn.Linear(cfg.segment * spec.in_channels, cfg.dim)
        self.temporal_pos = nn.Parameter(torch.zeros(1, self.num_segments, 1, cfg.dim))
        self.spatial_pos = nn.Parameter(torch.zeros(1, 1, spec.num_joints, cfg.dim))
        rates = torch.linspace(0, cfg.drop_path, cfg.depth).tolist()
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio, r) for r in rates)
        self.norm = nn.LayerNorm(cfg.dim)
        self.apply(_init_weights)
        nn.init.trunc_normal_(self.temporal_pos, std=0.02)
        nn.init.trunc_normal_(self.spatial_pos, std=0.02)

    @property
    def num_tokens(self) -> int:
        return self.num_segments * self.num_joints

    @property
    def num_layers(self) -> int:
        """Layer-wise lr decay depth: embeddings (0) and blocks (1..depth); the final norm is on top."""
        return len(self.blocks) + 1

    def layer_id(self, name: str) -> int:
        parts = name.split(".")
        if parts[0] in ("embed", "temporal_pos", "spatial_pos"):
            return 0
        if parts[0] == "blocks":
            return int(parts[1]) + 1
        return self.num_layers

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Resamples a pre-trained temporal embedding of another clip length (linear in time)."""
        pos = state.get("temporal_pos")
        if pos is None or pos.shape == self.temporal_pos.shape:
            return state
        resized = F.interpolate(pos[0, :, 0].T[None], size=self.num_segments, mode="linear", align_corners=False)[0].T
        return {**state, "temporal_pos": resized[None, :, None, :]}

    def embed_tokens(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, S, V, P) patches -> (B, S*V, dim) embedded tokens with positions."""
        tokens = self.embed(patches) + self.temporal_pos + self.spatial_pos
        return tokens.flatten(1, 2)

    @property
    def num_steps(self) -> int:
        return self.num_segments

    @property
    def feature_layers(self) -> int:
        return len(self.blocks)

    def forward_tokens(self, tokens: torch.Tensor, layers: int = 1) -> torch.Tensor:
        """The last ``layers`` blocks' outputs, each through the final norm, concatenated."""
        outputs = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i >= len(self.blocks) - layers:
                outputs.append(self.norm(tokens))
        return outputs[0] if layers == 1 else torch.cat(outputs, dim=-1)

    def present_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Indices of the present persons among the N*M folded person sequences."""
        return self.present(x).flatten().nonzero().squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> token features (N, M, S, V, dim) over the full grid, zero for
        absent persons."""
        return self.layer_features(x)

    def layer_features(self, x: torch.Tensor, layers: int = 1) -> torch.Tensor:
        if not 1 <= layers <= self.feature_layers:
            raise ValueError(f"layers must be between 1 and the encoder's depth {self.feature_layers}, got {layers}")
        n, _, _, _, m = x.shape
        patches = patchify(fold_persons(x), self.segment)
        if self.skip_absent:
            rows = self.present_rows(x)
            present = self.forward_tokens(self.embed_tokens(patches.index_select(0, rows)), layers)
            feats = present.new_zeros((n * m,) + present.shape[1:]).index_copy(0, rows, present)
        else:
            feats = self.forward_tokens(self.embed_tokens(patches), layers) * self.present(x).reshape(n * m, 1, 1)
        return feats.reshape(n, m, self.num_segments, self.num_joints, layers * self.dim)


@dataclass
class MAEConfig:
    """SkeletonMAE / MAMP pre-training: decoder size, masking and reconstruction target."""

    decoder_dim: int = 256
    decoder_depth: int = 3
    decoder_heads: int = 8
    mask: str = "motion"  # a registered masking strategy (skelmae.models.masking)
    ratio: float = 0.9
    tau: float = 0.8  # motion-aware masking temperature (0.75 for NTU120 in MAMP)
    target: str = "motion"  # coords (SkeletonMAE) | motion (MAMP)
    norm_target: bool = True


@METHODS.register("mae", config=MAEConfig)
class SkeletonMAE(PretrainMethod):
    """Masked autoencoder around a :class:`SkeletonEncoder`."""

    backbones = ("transformer",)

    def __init__(self, encoder: SkeletonEncoder, spec: InputSpec, cfg: MAEConfig):
        super().__init__()
        if cfg.mask not in MASKING:
            raise ValueError(f"mask must be one of {MASKING.names()}, got {cfg.mask!r}")
        if cfg.target not in ("coords", "motion"):
            raise ValueError(f"target must be 'coords' or 'motion', got {cfg.target!r}")
        self.encoder = encoder
        self.mask_strategy, self.mask_ratio, self.motion_tau = cfg.mask, cfg.ratio, cfg.tau
        self.target, self.norm_target = cfg.target, cfg.norm_target
        groups = torch.as_tensor(spec.layout.group_index(), dtype=torch.long)
        self.register_buffer("joint_groups", groups, persistent=False)

        s, dim, segment = encoder.num_segments, encoder.dim, encoder.segment
        self.decoder_embed = nn.Linear(dim, cfg.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_dim))
        self.decoder_temporal_pos = nn.Parameter(torch.zeros(1, s, 1, cfg.decoder_dim))
        self.decoder_spatial_pos = nn.Parameter(torch.zeros(1, 1, spec.num_joints, cfg.decoder_dim))
        self.decoder_blocks = nn.ModuleList(
            Block(cfg.decoder_dim, cfg.decoder_heads, encoder.mlp_ratio) for _ in range(cfg.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(cfg.decoder_dim)
        self.decoder_pred = nn.Linear(cfg.decoder_dim, segment * spec.in_channels)
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
    ) -> MethodOutput:
        """x: (N, C, T, V, M) -> the mean loss over the masked tokens of the present persons.

        Masks are drawn for all N*M person slots, so a person's mask does not depend on which
        others are present; ``generator`` and ``shard`` make them reproducible across process
        counts (see :func:`skelmae.models.masking.mask_tokens`). The output's ``rows`` name the
        person slots that ``pred``, ``target`` and ``mask`` are of.
        """
        seq = fold_persons(x)
        patches = patchify(seq, self.encoder.segment)
        mask = self.choose_mask(patches, generator, shard, persons=x.shape[-1])
        if self.encoder.skip_absent:
            rows = self.encoder.present_rows(x)
            seq, patches = seq.index_select(0, rows), patches.index_select(0, rows)
            mask = MaskResult(*(field.index_select(0, rows) for field in (mask.ids_keep, mask.ids_restore, mask.mask)))
            loss_mask = mask.mask
        else:
            rows = torch.arange(seq.shape[0], device=seq.device)
            loss_mask = mask.mask * self.encoder.present(x).reshape(-1, 1)
        latent = self.forward_encoder(patches, mask.ids_keep)
        pred = self.forward_decoder(latent, mask.ids_restore)
        target = self.make_target(seq)
        loss = masked_mse(pred.float(), target, loss_mask)
        return MethodOutput(loss=loss, pred=pred, target=target, mask=mask.mask, rows=rows)

"""Hi-TRS (Chen et al., ECCV 2022): a hierarchical skeleton transformer with one pretext task per level.

Read top to bottom (``docs/hi-trs.md`` lists every choice against the paper's code):

1. Clips. The window of T frames is cut into clips of ``clip_len`` frames taken every
   ``dilation`` frames, one clip starting every ``stride`` frames (the reference: 7 frames,
   every 2nd, a new clip every 7 frames, so neighbouring clips interleave). A window that
   does not end on a clip boundary gets one more clip that ends on its last frame.
2. Frame level. Each frame of each person is a set of V joint tokens: a joint's channels go
   through Linear, GELU and LayerNorm, plus a learned joint embedding (sinusoidal start), then
   ``depth`` pre-norm transformer blocks over the joints of that frame only.
3. Clip level. The frame-level tokens of a clip (``clip_len`` x V, widened to 2 x ``dim``)
   get a learned (frame, joint) embedding and a learned clip token, then ``depth`` blocks in
   which a joint token attends to itself, to every token of the clip's other frames and to
   the clip token, not to the other joints of its own frame (the frame level did that). The
   clip token's output is the clip's embedding.
4. Video level. The clip embeddings (widened to 4 x ``dim``) get a learned temporal
   embedding (``max_clips`` positions, so any window length uses the same weights) and a
   learned video token, then ``depth`` blocks over the clips. The video token's output is
   the encoder's feature: ``forward`` returns it as (N, M, 1, 1, 4 x dim), one step and one
   "joint", which is what the heads pool (the reference classifies this token too).
5. Pre-training (method ``hitrs``), one task per level on the features of a masked input:

   frame   masked pose prediction: 15 % of the joints of every frame are masked as in BERT
           (80 % a learned mask value, 10 % another joint of another frame, 10 % unchanged)
           and a linear map of their frame-level features regresses their channels; smooth
           L1 on the values x 10.
   clip    temporal order verification: in one clip per person (any start), two frames at
           least 2 positions apart are swapped; a linear classifier of the clip embedding
           tells the original from the swapped clip (cross-entropy). A person whose two
           frames are identical is left out (the reference drops motionless clips).
   video   clip order verification: two context clips at least 2 positions apart are
           swapped and a linear classifier of the video token tells the two orders apart;
           and discriminative future prediction: the video token of all clips but the last
           predicts the last clip's embedding (detached), InfoNCE at temperature 0.07 with
           the last clips of the other persons of the batch as negatives.

   The loss is the weighted sum of the four terms (weights 1 in the reference).

Persons are encoded independently; an absent person (an all-zero slot) is left out of the
encoder and of every pre-training loss, and heads average the present persons only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from skelmae.models.common import BACKBONES, METHODS, Encoder, InputSpec, MethodOutput, PretrainMethod, fold_persons
from skelmae.models.masking import sharded_rand
from skelmae.models.st_mae import Attention, Block, _init_weights

__all__ = [
    "HiTRSConfig", "HiTRSEncoder", "HiTRSPretrainConfig", "HiTRSPretrain", "clip_starts", "clip_attention_mask",
    "far_pairs", "swapped", "sinusoid",
]


def sinusoid(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sine/cosine position table (Transformer), any ``dim``: the reference's start
    for its learned embeddings."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    channel = torch.arange(dim)
    angle = position * torch.exp(-(channel - channel % 2) * math.log(10000.0) / dim)
    return torch.where(channel % 2 == 0, torch.sin(angle), torch.cos(angle))


def clip_starts(frames: int, clip_len: int, dilation: int, stride: int) -> list[int]:
    """First frame of every clip of a ``frames``-long window: every ``stride`` frames while the
    clip fits, plus one ending on the last frame if the window does not end on a clip."""
    span = (clip_len - 1) * dilation + 1
    if span > frames:
        raise ValueError(
            f"a clip of model.hitrs.clip_len={clip_len} frames at model.hitrs.dilation={dilation} spans {span} "
            f"frames, more than the window of {frames} frames (data.window)"
        )
    starts = list(range(0, frames - span + 1, stride))
    if starts[-1] + span < frames:
        starts.append(frames - span)
    return starts


def far_pairs(n: int) -> torch.Tensor:
    """(P, 2) position pairs at least 2 apart (the reference's swaps); (0, 1) when n == 2."""
    pairs = [(i, j) for i in range(n) for j in range(i + 2, n)]
    return torch.tensor(pairs or [(0, 1)], dtype=torch.long)


def swapped(index: torch.Tensor, pairs: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
    """``index`` (B, L) with the two positions of pair ``floor(draw * P)`` exchanged in each row."""
    pick = pairs[(draw * len(pairs)).long().clamp_max(len(pairs) - 1)]  # (B, 2)
    values = index.gather(1, pick)
    return index.scatter(1, pick, values.flip(1))


class AllowedAttention(Attention):
    """Self-attention restricted by a fixed boolean mask (True: may attend), which the
    transformer's :class:`~skelmae.models.st_mae.Attention` does not take."""

    def __init__(self, dim: int, heads: int, allowed: torch.Tensor):
        super().__init__(dim, heads)
        self.register_buffer("allowed", allowed, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.allowed)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


def clip_attention_mask(clip_len: int, joints: int) -> torch.Tensor:
    """(L + 1, L + 1) bool over a clip's L = clip_len * joints tokens and its clip token: a
    joint token sees itself and the other frames' tokens, not its own frame's other joints."""
    frame = torch.arange(clip_len).repeat_interleave(joints)
    allowed = torch.ones(len(frame) + 1, len(frame) + 1, dtype=torch.bool)
    allowed[:-1, :-1] = (frame[:, None] != frame[None, :]) | torch.eye(len(frame), dtype=torch.bool)
    return allowed


@dataclass
class HiTRSConfig:
    """Widths ``dim`` / 2 ``dim`` / 4 ``dim`` at the frame / clip / video level, ``depth`` blocks each."""

    dim: int = 128
    depth: int = 3
    heads: int = 8
    mlp_ratios: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.5])  # MLP width / level width, per level
    clip_len: int = 7  # frames per clip
    dilation: int = 2  # a clip takes every dilation-th frame
    stride: int = 7  # frames between the starts of consecutive clips
    max_clips: int = 200  # positions of the video-level embedding
    drop_path: float = 0.0  # stochastic depth, linearly increasing over the 3 x depth blocks (fine-tuning)

    TUNABLE: ClassVar[tuple[str, ...]] = ("drop_path",)


@BACKBONES.register("hitrs", config=HiTRSConfig)
class HiTRSEncoder(Encoder):
    """Frame-level spatial, clip-level and video-level temporal transformers; the video token is the feature."""

    independent_persons = True

    def __init__(self, spec: InputSpec, cfg: HiTRSConfig):
        super().__init__()
        if cfg.dim < 1 or cfg.depth < 1 or cfg.heads < 1 or cfg.dim % cfg.heads:
            raise ValueError(f"model.hitrs.dim={cfg.dim} must be a positive multiple of model.hitrs.heads={cfg.heads} "
                             f"(and depth={cfg.depth} at least 1)")
        if min(cfg.clip_len, cfg.dilation) < 1 or not 1 <= cfg.stride <= (cfg.clip_len - 1) * cfg.dilation + 1:
            raise ValueError(f"need model.hitrs.clip_len >= 1, dilation >= 1 and 1 <= stride <= the clip's span; got "
                             f"clip_len={cfg.clip_len}, dilation={cfg.dilation}, stride={cfg.stride}")
        if len(cfg.mlp_ratios) != 3:
            raise ValueError(f"model.hitrs.mlp_ratios needs one ratio per level (3), got {list(cfg.mlp_ratios)}")
        starts = clip_starts(spec.num_frames, cfg.clip_len, cfg.dilation, cfg.stride)
        if len(starts) > cfg.max_clips:
            raise ValueError(f"a window of {spec.num_frames} frames makes {len(starts)} clips, more than "
                             f"model.hitrs.max_clips={cfg.max_clips}")
        offsets = torch.arange(cfg.clip_len) * cfg.dilation
        self.register_buffer("clip_index", torch.tensor(starts)[:, None] + offsets, persistent=False)  # (K, clip_len)
        self.clip_len, self.dilation, self.depth = cfg.clip_len, cfg.dilation, cfg.depth
        self.num_joints = 1  # the heads see one step of one token: the video token
        widths = (cfg.dim, 2 * cfg.dim, 4 * cfg.dim)
        self.frame_dim, self.clip_dim, self.dim = widths
        v = spec.num_joints
        rates = iter(torch.linspace(0, cfg.drop_path, 3 * cfg.depth).tolist())

        def blocks(width: int, ratio: float) -> nn.ModuleList:
            return nn.ModuleList(Block(width, cfg.heads, ratio, next(rates)) for _ in range(cfg.depth))

        self.frame_embed = nn.Sequential(
            nn.Linear(spec.in_channels, self.frame_dim), nn.GELU(), nn.LayerNorm(self.frame_dim)
        )
        self.joint_pos = nn.Parameter(sinusoid(v, self.frame_dim)[None])
        self.frame_blocks = blocks(self.frame_dim, cfg.mlp_ratios[0])

        self.clip_embed = nn.Linear(self.frame_dim, self.clip_dim)
        half = self.clip_dim // 2
        grid = torch.cat([sinusoid(v, half)[None].expand(cfg.clip_len, -1, -1),
                          sinusoid(cfg.clip_len, self.clip_dim - half)[:, None].expand(-1, v, -1)], dim=-1)
        self.clip_pos = nn.Parameter(grid[None].clone())  # (1, clip_len, V, clip_dim): joint half, frame half
        self.clip_token = nn.Parameter(torch.rand(1, 1, self.clip_dim))
        self.clip_blocks = blocks(self.clip_dim, cfg.mlp_ratios[1])
        allowed = clip_attention_mask(cfg.clip_len, v)
        for block in self.clip_blocks:
            block.attn = AllowedAttention(self.clip_dim, cfg.heads, allowed)

        self.video_embed = nn.Linear(self.clip_dim, self.dim)
        self.video_pos = nn.Parameter(sinusoid(cfg.max_clips, self.dim)[None])
        self.video_token = nn.Parameter(torch.rand(1, 1, self.dim))
        self.video_blocks = blocks(self.dim, cfg.mlp_ratios[2])
        for module in (self.frame_embed, self.frame_blocks, self.clip_embed, self.clip_blocks, self.video_embed,
                       self.video_blocks):
            module.apply(_init_weights)

    @property
    def num_clips(self) -> int:
        return self.clip_index.shape[0]

    @property
    def num_layers(self) -> int:
        """Layer-wise lr decay depth: frame embeddings (0), then the blocks of the three levels in order;
        a level's embeddings and token share the id of its first block."""
        return 3 * self.depth + 1

    def layer_id(self, name: str) -> int:
        parts = name.split(".")
        first = {"frame_embed": 0, "joint_pos": 0, "clip_embed": self.depth + 1, "clip_pos": self.depth + 1,
                 "clip_token": self.depth + 1, "video_embed": 2 * self.depth + 1, "video_pos": 2 * self.depth + 1,
                 "video_token": 2 * self.depth + 1}
        if parts[0] in first:
            return first[parts[0]]
        levels = {"frame_blocks": 1, "clip_blocks": self.depth + 1, "video_blocks": 2 * self.depth + 1}
        if parts[0] in levels:
            return levels[parts[0]] + int(parts[1])
        return self.num_layers

    def frame_level(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, T, V, C) person sequences -> (B, T, V, dim) joint features, each frame on its own."""
        b, t, v, _ = seq.shape
        tokens = (self.frame_embed(seq) + self.joint_pos).flatten(0, 1)
        for block in self.frame_blocks:
            tokens = block(tokens)
        return tokens.reshape(b, t, v, self.frame_dim)

    def clip_level(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, K, clip_len, V, dim) frame features of K clips -> (B, K, 2 dim) clip embeddings."""
        b, k, w, v, _ = frames.shape
        tokens = (self.clip_embed(frames) + self.clip_pos).reshape(b * k, w * v, self.clip_dim)
        tokens = torch.cat([tokens, self.clip_token.expand(b * k, -1, -1)], dim=1)
        for block in self.clip_blocks:
            tokens = block(tokens)
        return tokens[:, -1].reshape(b, k, self.clip_dim)

    def video_level(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, K, 2 dim) clip embeddings -> (B, 4 dim) video-token features."""
        b, k, _ = clips.shape
        tokens = self.video_embed(clips) + self.video_pos[:, :k]
        tokens = torch.cat([tokens, self.video_token.expand(b, -1, -1)], dim=1)
        for block in self.video_blocks:
            tokens = block(tokens)
        return tokens[:, -1]

    def window_clips(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, V, dim) frame features -> (B, K, 2 dim) embeddings of the window's clips."""
        return self.clip_level(frames[:, self.clip_index])

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, T, V, C) person sequences -> (B, 4 dim) video features."""
        return self.video_level(self.window_clips(self.frame_level(seq)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> video features (N, M, 1, 1, 4 dim), zero for absent persons."""
        n, m = x.shape[0], x.shape[-1]
        seq = fold_persons(x)
        present = self.present(x).flatten()
        if self.skip_absent:
            rows = present.nonzero().squeeze(1)
            feats = self.encode(seq.index_select(0, rows))
            feats = feats.new_zeros(n * m, self.dim).index_copy(0, rows, feats)
        else:
            feats = self.encode(seq) * present[:, None].to(seq.dtype)
        return feats.reshape(n, m, 1, 1, self.dim)


@dataclass
class HiTRSPretrainConfig:
    """The three levels' pretext tasks and their weights (all 1 in the reference)."""

    mask_ratio: float = 0.15  # share of each frame's joints masked (frame level)
    mask_token: float = 0.8  # of the masked joints: replaced by the mask value ...
    mask_random: float = 0.1  # ... by another joint of another frame; the rest stay unchanged
    target_scale: float = 10.0  # predictions and targets are scaled before the smooth L1
    temperature: float = 0.07  # future prediction's InfoNCE
    frame_weight: float = 1.0  # masked pose prediction
    clip_weight: float = 1.0  # temporal order verification
    video_weight: float = 1.0  # clip order verification
    future_weight: float = 1.0  # discriminative future prediction


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` counting each by its weight (0 leaves it out); 0 when all weights are 0."""
    return (values * weights).sum() / weights.sum().clamp_min(1)


@METHODS.register("hitrs", config=HiTRSPretrainConfig)
class HiTRSPretrain(PretrainMethod):
    """Hi-TRS hierarchical pre-training: masked poses, frame order, clip order and the future clip."""

    backbones = ("hitrs",)

    def __init__(self, encoder: HiTRSEncoder, spec: InputSpec, cfg: HiTRSPretrainConfig):
        super().__init__()
        shares = (cfg.mask_token, cfg.mask_random)
        if not 0 < cfg.mask_ratio < 1 or min(shares) < 0 or sum(shares) > 1:
            raise ValueError(f"need 0 < method.hitrs.mask_ratio < 1 and mask_token, mask_random >= 0 summing to at "
                             f"most 1; got {cfg.mask_ratio}, {cfg.mask_token}, {cfg.mask_random}")
        if cfg.temperature <= 0:
            raise ValueError(f"method.hitrs.temperature must be positive, got {cfg.temperature}")
        if encoder.clip_len < 3:
            raise ValueError(f"the clip-order task swaps two frames at least 2 apart: model.hitrs.clip_len must be at "
                             f"least 3, got {encoder.clip_len}")
        if encoder.num_clips < 3:
            raise ValueError(f"pre-training needs at least 3 clips per window (2 of context and the future one), but "
                             f"data.window={spec.num_frames} with model.hitrs.clip_len={encoder.clip_len}, dilation="
                             f"{encoder.dilation} makes {encoder.num_clips}: lengthen the window or shorten the clips")
        self.cfg, self.encoder = cfg, encoder
        self.mask_value = nn.Parameter(torch.ones(spec.in_channels))  # the reference's fixed [MASK] joint is (1, 1, 1)
        self.pose_head = nn.Linear(encoder.frame_dim, spec.in_channels)
        self.clip_order_head = nn.Linear(encoder.clip_dim, 2)
        self.video_order_head = nn.Linear(encoder.dim, 2)
        self.future_head = nn.Linear(encoder.dim, encoder.clip_dim)
        for module in (self.pose_head, self.clip_order_head, self.video_order_head, self.future_head):
            module.apply(_init_weights)
        self.register_buffer("frame_pairs", far_pairs(encoder.clip_len), persistent=False)
        self.register_buffer("clip_pairs", far_pairs(encoder.num_clips - 1), persistent=False)

    def draws(
        self, seq: torch.Tensor, generator: torch.Generator | None, shard: tuple[int, int], persons: int
    ) -> dict[str, torch.Tensor]:
        """Uniform noise for every random choice of every person row, drawn for the global batch
        (:func:`~skelmae.models.masking.sharded_rand`), so it does not depend on the process count."""
        b, t, v, _ = seq.shape
        shapes = {"mask": (b, t, v), "kind": (b, t, v), "frame": (b, t, v), "joint": (b, t, v),
                  "clip_start": (b,), "frame_pair": (b,), "clip_pair": (b,)}
        return {name: sharded_rand(shape, seq.device, generator, shard, persons) for name, shape in shapes.items()}

    def mask_joints(self, seq: torch.Tensor, noise: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """BERT-style joint masking of (B, T, V, C): the masked input and the (B, T, V) float mask."""
        cfg = self.cfg
        b, t, v, c = seq.shape
        mask = noise["mask"] < cfg.mask_ratio
        token = mask & (noise["kind"] < cfg.mask_token)
        other = mask & ~token & (noise["kind"] < cfg.mask_token + cfg.mask_random)
        frame = (torch.arange(t, device=seq.device)[:, None] + 1 + (noise["frame"] * (t - 1)).long()) % t
        joint = (torch.arange(v, device=seq.device) + 1 + (noise["joint"] * (v - 1)).long()) % v
        source = seq.reshape(b, t * v, c).gather(1, (frame * v + joint).reshape(b, t * v, 1).expand(-1, -1, c))
        masked = torch.where(other[..., None], source.reshape(seq.shape), seq)
        masked = torch.where(token[..., None], self.mask_value.to(seq.dtype), masked)
        return masked, mask.to(seq.dtype)

    def losses(
        self, x: torch.Tensor, generator: torch.Generator | None = None, shard: tuple[int, int] = (0, 1)
    ) -> dict[str, torch.Tensor]:
        """The four unweighted pretext losses of a batch (N, C, T, V, M), over its present persons."""
        enc, cfg = self.encoder, self.cfg
        seq = fold_persons(x)
        noise = self.draws(seq, generator, shard, x.shape[-1])
        rows = enc.present(x).flatten().nonzero().squeeze(1)
        seq = seq.index_select(0, rows)
        noise = {name: value.index_select(0, rows) for name, value in noise.items()}
        b, t = seq.shape[:2]
        masked, mask = self.mask_joints(seq, noise)
        frames = enc.frame_level(masked)

        scale = cfg.target_scale
        pose = F.smooth_l1_loss(self.pose_head(frames).float() * scale, seq.float() * scale, reduction="none")
        frame_loss = weighted_mean(pose.mean(dim=-1), mask)

        span = (enc.clip_len - 1) * enc.dilation + 1
        start = (noise["clip_start"] * (t - span + 1)).long().clamp_max(t - span)
        original = start[:, None] + torch.arange(enc.clip_len, device=seq.device) * enc.dilation  # (B, clip_len)
        shuffled = swapped(original, self.frame_pairs, noise["frame_pair"])
        batch = torch.arange(b, device=seq.device)[:, None]
        differ = (seq[batch, original] != seq[batch, shuffled]).flatten(1).any(dim=1)  # the swap changes the clip
        pair = enc.clip_level(frames[batch[..., None], torch.stack([original, shuffled], dim=1)])  # (B, 2, clip_dim)
        clip_loss = self.order_loss(self.clip_order_head(pair), differ.to(pair.dtype))

        clips = enc.window_clips(frames)
        context, future = clips[:, :-1], clips[:, -1].detach()
        order = torch.arange(context.shape[1], device=seq.device).expand(b, -1)
        permuted = context.gather(1, swapped(order, self.clip_pairs, noise["clip_pair"])[..., None].expand_as(context))
        videos = enc.video_level(torch.cat([context, permuted]))  # (2B, dim): original orders, then swapped
        video_loss = self.order_loss(self.video_order_head(torch.stack(videos.chunk(2), dim=1)), None)

        prediction = F.normalize(self.future_head(videos[:b]).float(), dim=1)
        logits = prediction @ F.normalize(future.float(), dim=1).T / cfg.temperature
        future_loss = F.cross_entropy(logits, torch.arange(b, device=seq.device))
        return {"frame": frame_loss, "clip": clip_loss, "video": video_loss, "future": future_loss}

    @staticmethod
    def order_loss(logits: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        """Cross-entropy of (B, 2, 2) logits of (original, swapped) inputs against labels (1, 0)."""
        labels = torch.tensor([1, 0], device=logits.device).expand(logits.shape[0], -1)
        per_row = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="none").view(-1, 2).mean(1)
        return per_row.mean() if weights is None else weighted_mean(per_row, weights)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, shard: tuple[int, int] = (0, 1)
    ) -> MethodOutput:
        """x: (N, C, T, V, M) -> the weighted sum of the four pretext losses."""
        cfg = self.cfg
        terms = self.losses(x, generator, shard)
        weights = {"frame": cfg.frame_weight, "clip": cfg.clip_weight, "video": cfg.video_weight,
                   "future": cfg.future_weight}
        return MethodOutput(loss=sum(weights[name] * terms[name] for name in terms))

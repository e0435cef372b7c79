"""FreqMixFormer (Wu et al., ACM MM 2024): the frequency-aware mixed transformer, trained from scratch.

Read top to bottom (the reference is ``model/skefreqmixformer.py``, ``spa_freq_mixf.py`` and
``tem_mixf.py`` of github.com/wenhanwu95/FreqMixFormer; ``docs/freqmixformer-and-ensembles.md``
lists every choice against it):

1. Graph. From the layout's bone tree, CTR-GCN's three directed partitions (self loops, the
   column-normalised parent -> child and child -> parent adjacencies) and InfoGCN's input
   transform ``I - A^k`` (the reference's ``get_A``, as :func:`skelmae.models.infogcn.relative_position_matrix`):
   a joint's coordinates minus those of its ancestor ``relative_hops`` bones up (a 2D pose's
   score channel is kept). The published k = 8 is deeper than the NTU and NW-UCLA trees, so
   there it leaves the input unchanged; the paper's ensemble adds streams with k = 1 and 2.
2. Embedding. Each joint's channels through a linear map to ``channels``, plus a learned
   joint embedding, then BatchNorm over (joints x channels) with persons folded into the batch.
3. Spatial block (mixed spatial-frequency transformer). A 1x1 convolution gives the features
   of each partition; their channels split into ``heads`` slices. A slice's query is the mean
   of its first half of channels over time, its key the mean of the second half (one number
   per joint), and its attention map is softmax(ReLU(W q) ReLU(W k)^T) over the joints. The
   maps are *mixed*: a head's map is half its own plus a quarter of each cross map with its
   neighbouring heads (keys of one head against the queries of the next, through a second
   map W'). The *frequency* maps are the same computation on the DCT-II of the features
   along the joint axis; the frequency operator scales the cross maps' low-frequency columns
   (the first ``low_fraction`` of them) by ``low_scale`` and the others by ``high_scale``,
   and the inverse DCT of each mixed frequency map is added to its spatial map. Half of
   that plus a learned topology per channel group (``groups``, initialised from the
   partition, on top of the fixed partition) aggregates the joints; the partitions are
   summed, a channel gate (ECA: a 3-tap 1-D convolution over the pooled channels, sigmoid)
   reweights ``x + x * gate``, then BatchNorm, a residual and ReLU.
4. Temporal block (temporal mix-former): parallel branches of equal width concatenated, one
   per ``dilations`` entry (1x1 convolution, BatchNorm, ReLU, a ``temporal_kernel``-frame
   dilated convolution, BatchNorm), a max-pooling branch, the *temporal transformer* (the
   per-frame mean / max of two channel halves through a learned (frames x frames) map give
   a sigmoid attention over frames) and a frame gate (sigmoid of the per-frame mean and
   max). A block is the spatial then the temporal module, a residual (none in the first
   block) and ReLU; ``drop_path`` is stochastic depth on the block's main branch.
5. Network. ``stages`` blocks per stage (the published 4, 3, 3), the width ``channels`` doubled
   and the clip length halved at the first block of every stage after the first. The output
   of every earlier stage is average-pooled to the final length, widened to ``dim`` by a 1x1
   convolution, BatchNorm and ReLU and added to the last block's output (the reference's
   "trams"). Features keep the joints: (N, M, ceil(T / 2^(stages - 1)), V, dim), dim =
   channels x 2^(stages - 1) (80, 160, 320 as published).

Choices where the reference is tied to its data: the DCT is orthonormal (the reference's
``torch_dct`` default is unnormalised, x 2 sqrt(V/2) and more) and a fixed matrix, so that
export works; the low-frequency share is a fraction of the joints (the reference's 13 of 25
columns); the frequency maps are computed from the pooled queries and keys (the DCT commutes
with the pooling, so this is the reference's value without transforming every feature); the
joint-aggregating maps are applied per head and per topology group rather than materialised
per channel (the same sum); the input BatchNorm is shared by the person slots (the reference
keeps one per slot, tying the model to a person count); the trams' pooling rounds up, so odd
clip lengths work. Person slots are normalised together, as in the reference, so absent
persons are encoded and averaged like present ones (``independent_persons`` is off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from skelmae.models.common import BACKBONES, InputSpec
from skelmae.models.ctrgcn import TemporalConv, block_residual, graph_subsets, init_conv_bn
from skelmae.models.infogcn import embed_relative_joints, relative_position_matrix
from skelmae.models.stgcn import GraphBlockEncoder
from skelmae.models.st_mae import DropPath

__all__ = ["FreqMixFormerConfig", "FreqMixFormer", "dct_matrix"]


def dct_matrix(n: int) -> torch.Tensor:
    """(n, n) orthonormal DCT-II, frequencies along the rows: ``x @ D.T`` transforms the last
    axis and ``y @ D`` inverts it (a fixed matrix, so the model exports without FFT ops)."""
    frequency = torch.arange(n, dtype=torch.float64)[:, None]
    position = torch.arange(n, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * (2 * position + 1) * frequency / (2 * n)) * math.sqrt(2.0 / n)
    basis[0] /= math.sqrt(2.0)
    return basis.float()


class MixedAttention(nn.Module):
    """The mixed (self and neighbouring-head cross) attention maps of pooled queries and keys."""

    def __init__(self, joints: int):
        super().__init__()
        self.self_map = nn.Linear(joints, joints)
        self.cross_map = nn.Linear(joints, joints)

    @staticmethod
    def attend(linear: nn.Linear, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """(..., V) query and key -> (..., V, V) softmax(ReLU(W q) ReLU(W k)^T) over the last axis."""
        return torch.softmax(torch.relu(linear(query))[..., :, None] * torch.relu(linear(key))[..., None, :], dim=-1)

    def forward(self, query: torch.Tensor, key: torch.Tensor, cross_scale: torch.Tensor | None = None) -> torch.Tensor:
        """(..., H, V) queries and keys of H heads -> (..., H, V, V) mixed maps: a head's own map
        / 2 + each cross map with a neighbouring head / 4; ``cross_scale`` (V,) scales the
        cross maps' columns (the frequency operator)."""
        own = self.attend(self.self_map, query, key)
        cross = self.attend(self.cross_map, key[..., :-1, :], query[..., 1:, :])  # head h's keys, head h+1's queries
        if cross_scale is not None:
            cross = cross * cross_scale
        pad = cross.new_zeros(cross.shape[:-3] + (1,) + cross.shape[-2:])
        return own / 2 + torch.cat([pad, cross], dim=-3) / 4 + torch.cat([cross, pad], dim=-3) / 4


class SpatialFrequencyMixFormer(nn.Module):
    """Joint aggregation by mixed spatial + frequency attention and a learned topology (step 3)."""

    def __init__(self, in_dim: int, out_dim: int, partitions: torch.Tensor, cfg: FreqMixFormerConfig):
        super().__init__()
        self.subsets, joints = partitions.shape[0], partitions.shape[-1]
        self.heads, self.groups, self.out_dim = cfg.heads, cfg.groups, out_dim
        self.register_buffer("partitions", partitions, persistent=False)
        self.register_buffer("dct", dct_matrix(joints), persistent=False)
        low = math.ceil(cfg.low_fraction * joints)
        scale = torch.tensor([cfg.low_scale] * low + [cfg.high_scale] * (joints - low))
        self.register_buffer("frequency_scale", scale, persistent=False)
        self.topology = nn.Parameter(partitions[:, None].repeat(1, cfg.groups, 1, 1))
        self.conv = nn.Conv2d(in_dim, out_dim * self.subsets, 1)
        self.attention = MixedAttention(joints)
        self.channel_gate = nn.Conv1d(1, 1, kernel_size=3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(out_dim)
        self.residual = block_residual(in_dim, out_dim, 1)

    def maps(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, K, H, c, T, V) head slices -> (B, K, H, V, V) mixed spatial + frequency maps."""
        half = feats.shape[3] // 2
        query, key = feats[:, :, :, :half].mean(dim=(3, 4)), feats[:, :, :, half:].mean(dim=(3, 4))
        spatial = self.attention(query, key)
        frequency = self.attention(query @ self.dct.T, key @ self.dct.T, self.frequency_scale)
        return spatial + frequency @ self.dct

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim, T, V) -> (B, out_dim, T, V)."""
        b, _, t, v = x.shape
        feats = self.conv(x).view(b, self.subsets, self.heads, self.out_dim // self.heads, t, v)
        attended = torch.einsum("bkhctv,bkhvw->bhctw", feats, self.maps(feats) * 0.5)
        topology = self.partitions[:, None] + self.topology
        grouped = feats.reshape(b, self.subsets, self.out_dim // self.groups, self.groups, t, v)
        learned = torch.einsum("bkrgtv,kgvw->brgtw", grouped, topology)
        h = attended.reshape(b, self.out_dim, t, v) + learned.reshape(b, self.out_dim, t, v)
        gate = self.channel_gate(h.mean(dim=(2, 3))[:, None]).transpose(1, 2)[..., None]
        h = h + h * torch.sigmoid(gate)
        return torch.relu(self.norm(h) + self.residual(x))


class TemporalAttention(nn.Module):
    """The temporal transformer branch: sigmoid attention over frames from pooled channel halves."""

    def __init__(self, in_dim: int, out_dim: int, frames: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, 1, (stride, 1))
        self.frame_map = nn.Linear(frames, frames)
        self.norm = nn.BatchNorm2d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        half = h.shape[1] // 2
        query = torch.relu(self.frame_map(h[:, :half].mean(dim=(1, 3))))
        key = torch.relu(self.frame_map(h[:, half:].amax(dim=(1, 3))))
        weights = torch.sigmoid(query[:, :, None] * key[:, None, :])  # (B, T, T)
        return self.norm(torch.einsum("bctv,btm->bcmv", h, weights))


class FrameGate(nn.Module):
    """Each frame scaled by a sigmoid of its mean and maximum over channels and joints."""

    def __init__(self, in_dim: int, out_dim: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, 1, (stride, 1))
        self.combine = nn.Conv2d(2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        pooled = torch.stack([h.mean(dim=(1, 3)), h.amax(dim=(1, 3))], dim=1)[..., None]  # (B, 2, T, 1)
        return h * torch.sigmoid(self.combine(pooled))


class TemporalMixFormer(nn.Module):
    """Dilated convolutions, max pooling, the temporal transformer and the frame gate, concatenated (step 4)."""

    def __init__(self, dim: int, frames: int, stride: int, cfg: FreqMixFormerConfig):
        super().__init__()
        width = dim // (len(cfg.dilations) + 3)

        def reduce() -> list[nn.Module]:
            return [nn.Conv2d(dim, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]

        self.branches = nn.ModuleList(
            nn.Sequential(*reduce(), TemporalConv(width, width, cfg.temporal_kernel, stride, d)) for d in cfg.dilations
        )
        self.branches.append(nn.Sequential(*reduce(), nn.MaxPool2d((3, 1), (stride, 1), (1, 0)), nn.BatchNorm2d(width)))
        self.branches.append(nn.Sequential(TemporalAttention(dim, width, frames, stride), nn.BatchNorm2d(width)))
        self.branches.append(nn.Sequential(FrameGate(dim, width, stride), nn.BatchNorm2d(width)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class FreqMixBlock(nn.Module):
    """Spatial then temporal mix-former, a residual and ReLU."""

    def __init__(self, in_dim: int, out_dim: int, frames: int, stride: int, residual: bool, drop_path: float,
                 partitions: torch.Tensor, cfg: FreqMixFormerConfig):
        super().__init__()
        self.spatial = SpatialFrequencyMixFormer(in_dim, out_dim, partitions, cfg)
        self.temporal = TemporalMixFormer(out_dim, frames, stride, cfg)
        self.drop_path = DropPath(drop_path)
        self.residual = block_residual(in_dim, out_dim, stride) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop_path(self.temporal(self.spatial(x)))
        if self.residual is not None:
            h = h + self.residual(x)
        return torch.relu(h)


@dataclass
class FreqMixFormerConfig:
    """The published network by default: widths 80 / 160 / 320 over 4 + 3 + 3 blocks."""

    channels: int = 80  # width of the first stage, doubled at every later stage
    stages: list[int] = field(default_factory=lambda: [4, 3, 3])  # blocks per stage
    heads: int = 4  # channel slices of the spatial attention (queries and keys from their two halves)
    groups: int = 8  # channel groups of the learned topology
    relative_hops: int = 8  # k of the input transform I - A^k (8 leaves NTU and NW-UCLA unchanged)
    low_fraction: float = 0.5  # share of the frequency columns scaled as low (the reference's 13 of 25)
    low_scale: float = 0.5  # frequency operator: low frequencies of the cross maps ...
    high_scale: float = 1.5  # ... and the high ones
    temporal_kernel: int = 5
    dilations: list[int] = field(default_factory=lambda: [1, 2])  # one dilated convolution branch each
    drop_path: float = 0.0  # stochastic depth, linearly increasing over the blocks (not in the reference)

    TUNABLE: ClassVar[tuple[str, ...]] = ("drop_path",)

    def widths(self) -> list[int]:
        return [self.channels * 2**stage for stage in range(len(self.stages))]

    def validate(self) -> None:
        key = "model.freqmixformer"
        if not self.stages or min(self.stages) < 1:
            raise ValueError(f"{key}.stages must list at least one positive block count, got {list(self.stages)}")
        if min(self.channels, self.heads, self.groups) < 1:
            raise ValueError(f"{key}.channels, heads and groups must be positive, got {self.channels}, {self.heads}, "
                             f"{self.groups}")
        if self.temporal_kernel < 1 or self.temporal_kernel % 2 == 0:
            raise ValueError(f"{key}.temporal_kernel must be odd and positive, got {self.temporal_kernel}")
        if not self.dilations or min(self.dilations) < 1:
            raise ValueError(f"{key}.dilations must list positive dilations, got {list(self.dilations)}")
        branches = len(self.dilations) + 3
        for width in self.widths():
            if width % branches or width % self.groups or width % self.heads or width // self.heads < 2:
                raise ValueError(
                    f"{key}.channels={self.channels} gives a stage of width {width}, which must be a multiple of the "
                    f"{branches} temporal branches (len(dilations) + 3), of groups={self.groups} and of heads="
                    f"{self.heads} with at least 2 channels per head"
                )
        if self.relative_hops < 1:
            raise ValueError(f"{key}.relative_hops must be at least 1 (I - A^0 is zero), got {self.relative_hops}")
        if not 0.0 <= self.low_fraction <= 1.0:
            raise ValueError(f"{key}.low_fraction must be in [0, 1], got {self.low_fraction}")
        if min(self.low_scale, self.high_scale) < 0:
            raise ValueError(f"{key}.low_scale and high_scale must be non-negative, got {self.low_scale}, "
                             f"{self.high_scale}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"{key}.drop_path must be in [0, 1), got {self.drop_path}")


@BACKBONES.register("freqmixformer", config=FreqMixFormerConfig)
class FreqMixFormer(GraphBlockEncoder):
    """FreqMixFormer (Wu et al. 2024): mixed spatial-frequency attention and temporal mix-formers, for any layout.
    Layer-wise lr decay: the embedding (0), the blocks (1..depth), the trams on top."""

    INPUT_LAYERS = ("joint_embed", "joint_pos", "data_bn")
    def __init__(self, spec: InputSpec, cfg: FreqMixFormerConfig):
        super().__init__()
        cfg.validate()
        layout, v = spec.layout, spec.num_joints
        widths = cfg.widths()
        self.num_joints, self.dim, self.channels, self.coords = v, widths[-1], widths[0], spec.coord_channels
        self.register_buffer("relative", torch.from_numpy(relative_position_matrix(layout, cfg.relative_hops)),
                             persistent=False)
        partitions = torch.from_numpy(graph_subsets(layout))
        self.joint_embed = nn.Linear(spec.in_channels, self.channels)
        self.joint_pos = nn.Parameter(torch.randn(1, 1, v, self.channels))
        self.data_bn = nn.BatchNorm1d(v * self.channels)

        depth = sum(cfg.stages)
        rates = iter(torch.linspace(0, cfg.drop_path, depth).tolist())
        self.blocks = nn.ModuleList()
        self.stage_ends: list[int] = []
        in_dim = self.channels
        for stage, (count, width) in enumerate(zip(cfg.stages, widths)):
            frames = math.ceil(spec.num_frames / 2**stage)
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                self.blocks.append(FreqMixBlock(in_dim, width, frames, stride, residual=len(self.blocks) > 0,
                                                drop_path=next(rates), partitions=partitions, cfg=cfg))
                in_dim = width
            self.stage_ends.append(len(self.blocks) - 1)
        last = len(cfg.stages) - 1
        self.trams = nn.ModuleList(
            nn.Sequential(nn.AvgPool2d((2 ** (last - stage), 1), ceil_mode=True, count_include_pad=False),
                          nn.Conv2d(widths[stage], self.dim, 1), nn.BatchNorm2d(self.dim), nn.ReLU(inplace=True))
            for stage in range(last)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference's effective initialisation: its last pass sets every 2-D convolution to
        Kaiming (fan out) and every BatchNorm to weight 1, bias 0 (the input BatchNorm keeps
        torch's default, the same)."""
        init_conv_bn(self)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return embed_relative_joints(x, self.relative, self.coords, self.joint_embed, self.joint_pos, self.data_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> (N, M, T', V, dim), T' = ceil(T / 2^(stages - 1))."""
        n, _, _, v, m = x.shape
        h = self.embed(x)
        stage_outputs = []
        for index, block in enumerate(self.blocks):
            h = block(h)
            if index in self.stage_ends[:-1]:
                stage_outputs.append(h)
        for tram, earlier in zip(self.trams, stage_outputs):
            h = h + tram(earlier)
        return h.view(n, m, self.dim, -1, v).permute(0, 1, 3, 4, 2)

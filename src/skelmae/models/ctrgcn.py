"""CTR-GCN (Chen et al., ICCV 2021): channel-wise topology refinement graph convolution.

Read top to bottom:

1. Graph. Three (V, V) subsets from the layout's bone tree, as CTR-GCN's graph code builds
   them: the identity, the *inward* bones (child -> parent, towards the root of the layout's
   tree: spine-shoulder for the Kinect layouts, the neck for OpenPose-18) and the *outward*
   bones (parent -> child), each column-normalised (``A @ diag(1 / column sums)``). Any
   layout, built-in or a user's YAML file, gets its graph this way.
2. CTR-GC. For each subset, a refined topology per output channel: two 1x1 convolutions of
   the time-averaged input give joint descriptors, ``tanh(x1_i - x2_j)`` their pairwise
   relations, a third 1x1 convolution lifts them to every output channel; the result
   ``alpha * refined + A`` (``A`` the learned, shared subset matrix, ``alpha`` a learned
   scalar starting at 0, so training starts from the skeleton) aggregates a 1x1-convolved
   copy of the input over the joints. The subsets' outputs are summed, then BatchNorm (its
   scale starting near 0), a residual and ReLU. The relations have ``1 / rel_reduction`` of
   the input width, and 8 channels in the first block, whose input is the raw coordinates
   (the reference fixes 8 for 3 or 9 input channels only, which leaves a 2D pose with 0).
3. Multi-scale temporal convolution. Four branches of a quarter of the width each: two
   ``temporal_kernel`` convolutions with the dilations (1, 2), a 3-frame max-pool and a
   1x1 convolution, each after a 1x1 bottleneck; concatenated.
4. Network. Input BatchNorm over (joints x channels) with persons folded into the batch,
   then ten blocks (graph conv -> multi-scale temporal conv, plus a residual): four of
   ``channels``, three of twice that (the first with temporal stride 2), three of ``dim``
   (stride 2 again). ``channels=64, dim=256`` is the published network. The output keeps
   the joints: (N, M, ceil(T / 4), V, dim).

The published classifier, global average pooling -> dropout -> linear, is the head
``fc`` (in :mod:`skelmae.models.heads`): the ``linear`` head normalises the features first (a probe's
BatchNorm) and ``mlp`` is MAMP's two-layer head, neither is CTR-GCN's.

The multi-scale temporal convolution and the graph subsets are shared with
:mod:`skelmae.models.infogcn` and :mod:`skelmae.models.freqmixformer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from skelmae.data.layouts import SkeletonLayout
from skelmae.models.common import BACKBONES, InputSpec
from skelmae.models.stgcn import GraphBlockEncoder

__all__ = [
    "CTRGCNConfig", "CTRGCN", "graph_subsets", "directed_bones", "MultiScaleTemporalConv",
    "TemporalConv", "block_residual", "init_conv_bn", "check_widths",
]


def column_normalised(adjacency: np.ndarray) -> np.ndarray:
    """``A @ diag(1 / column sums)``; all-zero columns stay zero."""
    sums = adjacency.sum(axis=0)
    return adjacency / np.where(sums > 0, sums, 1.0)[None, :]


def directed_bones(layout: SkeletonLayout) -> tuple[np.ndarray, np.ndarray]:
    """(inward, outward) 0/1 matrices with ``M[to, from] = 1``: inward edges run from a
    child to its parent (towards the root), outward ones the other way."""
    inward = np.zeros((layout.num_joints,) * 2, dtype=np.float32)
    for child, parent in layout.bones:
        inward[parent, child] = 1.0
    return inward, inward.T.copy()


def graph_subsets(layout: SkeletonLayout) -> np.ndarray:
    """CTR-GCN's three subsets (identity, normalised inward, normalised outward): (3, V, V)."""
    inward, outward = directed_bones(layout)
    identity = np.eye(layout.num_joints, dtype=np.float32)
    return np.stack([identity, column_normalised(inward), column_normalised(outward)]).astype(np.float32)


def init_conv_bn(module: nn.Module, bn_scale: float = 1.0) -> None:
    """The published initialisation: convolutions He-normal (fan out) with zero bias,
    BatchNorm scale ``bn_scale`` and zero shift."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, bn_scale)
            nn.init.zeros_(m.bias)


class TemporalConv(nn.Sequential):
    """A (kernel x 1) convolution over time, 'same' padding for its dilation, then BatchNorm."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int = 1, dilation: int = 1):
        padding = (kernel + (kernel - 1) * (dilation - 1) - 1) // 2
        super().__init__(
            nn.Conv2d(in_dim, out_dim, (kernel, 1), (stride, 1), (padding, 0), (dilation, 1)),
            nn.BatchNorm2d(out_dim),
        )


class MultiScaleTemporalConv(nn.Module):
    """Branches of dilated temporal convolutions, a max-pool and a 1x1 convolution, each on
    ``out_dim / branches`` channels, concatenated: several temporal receptive fields at the
    cost of one convolution."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int, dilations: tuple[int, ...]):
        super().__init__()
        branches = len(dilations) + 2
        width = out_dim // branches

        def bottleneck() -> list[nn.Module]:
            return [nn.Conv2d(in_dim, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]

        self.branches = nn.ModuleList(
            [nn.Sequential(*bottleneck(), TemporalConv(width, width, kernel, stride, d)) for d in dilations]
            + [nn.Sequential(*bottleneck(), nn.MaxPool2d((3, 1), (stride, 1), (1, 0)), nn.BatchNorm2d(width)),
               nn.Sequential(nn.Conv2d(in_dim, width, 1, (stride, 1)), nn.BatchNorm2d(width))]
        )
        init_conv_bn(self)
        for m in self.modules():  # the published multi-scale convolution draws its BatchNorm scales around 1
            if isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def block_residual(in_dim: int, out_dim: int, stride: int) -> nn.Module:
    """The identity where shapes match, else a strided 1x1 convolution and BatchNorm."""
    if in_dim == out_dim and stride == 1:
        return nn.Identity()
    residual = TemporalConv(in_dim, out_dim, 1, stride)
    init_conv_bn(residual)
    return residual


class CTRGC(nn.Module):
    """Channel-wise topology refinement for one subset: ``alpha * refined + shared``."""

    def __init__(self, in_dim: int, out_dim: int, relation_dim: int):
        super().__init__()
        self.query = nn.Conv2d(in_dim, relation_dim, 1)
        self.key = nn.Conv2d(in_dim, relation_dim, 1)
        self.value = nn.Conv2d(in_dim, out_dim, 1)
        self.lift = nn.Conv2d(relation_dim, out_dim, 1)
        init_conv_bn(self)

    def forward(self, x: torch.Tensor, shared: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """(B, C, T, V) -> (B, out_dim, T, V)."""
        q, k = self.query(x).mean(dim=2), self.key(x).mean(dim=2)  # (B, R, V)
        relations = torch.tanh(q.unsqueeze(-1) - k.unsqueeze(-2))  # (B, R, V, V)
        topology = self.lift(relations) * alpha + shared  # (B, out_dim, V, V)
        return torch.einsum("bcuv,bctv->bctu", topology, self.value(x))


class CTRGraphConv(nn.Module):
    """The CTR-GC of every subset, summed, then BatchNorm, a residual and ReLU."""

    def __init__(self, in_dim: int, out_dim: int, subsets: torch.Tensor, relation_dim: int, adaptive: bool):
        super().__init__()
        self.convs = nn.ModuleList(CTRGC(in_dim, out_dim, relation_dim) for _ in range(subsets.shape[0]))
        self.shared = nn.Parameter(subsets.clone(), requires_grad=adaptive)
        self.alpha = nn.Parameter(torch.zeros(1))
        self.norm = nn.BatchNorm2d(out_dim)
        self.down = block_residual(in_dim, out_dim, 1)
        init_conv_bn(self.norm, bn_scale=1e-6)  # each block starts close to its residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = sum(conv(x, self.shared[i], self.alpha) for i, conv in enumerate(self.convs))
        return torch.relu(self.norm(h) + self.down(x))


class CTRGCNBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, subsets: torch.Tensor, cfg: CTRGCNConfig, stride: int, first: bool):
        super().__init__()
        # the first block sees the raw coordinates: the published code fixes 8 relation channels there
        relation_dim = 8 if first else in_dim // cfg.rel_reduction
        self.graph_conv = CTRGraphConv(in_dim, out_dim, subsets, relation_dim, cfg.adaptive)
        self.temporal = MultiScaleTemporalConv(out_dim, out_dim, cfg.temporal_kernel, stride, tuple(cfg.dilations))
        # no residual around the first block, whose input is the raw coordinates
        self.residual = None if first else block_residual(in_dim, out_dim, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.temporal(self.graph_conv(x))
        return torch.relu(h if self.residual is None else h + self.residual(x))


def check_widths(channels: int, dim: int, dilations: list[int], temporal_kernel: int) -> None:
    """The checks CTR-GCN and InfoGCN share: an odd temporal kernel, positive dilations, and
    widths that the multi-scale temporal branches split evenly."""
    if temporal_kernel < 1 or temporal_kernel % 2 == 0:
        raise ValueError(f"temporal_kernel must be odd and positive, got {temporal_kernel}")
    if not dilations or any(not isinstance(d, int) or d < 1 for d in dilations):
        raise ValueError(f"dilations must be a non-empty list of positive integers, got {list(dilations)}")
    branches = len(dilations) + 2
    for key, value in (("channels", channels), ("dim", dim)):
        if value < branches or value % branches:
            raise ValueError(
                f"{key} must be a positive multiple of {branches} (the {branches} temporal branches split it evenly), "
                f"got {value}"
            )


@dataclass
class CTRGCNConfig:
    channels: int = 64  # width of the first four blocks; doubled at the first temporal stride
    dim: int = 256  # width of the last three blocks: the feature dimension
    temporal_kernel: int = 5
    dilations: list[int] = field(default_factory=lambda: [1, 2])  # one temporal branch each, plus max-pool and 1x1
    rel_reduction: int = 8  # relation channels of CTR-GC = input width / rel_reduction
    adaptive: bool = True  # learn the shared subset matrices (else they stay the skeleton's)


@BACKBONES.register("ctrgcn", config=CTRGCNConfig)
class CTRGCN(GraphBlockEncoder):
    """CTR-GCN (Chen et al. 2021): channel-wise topology refinement, for any layout."""

    STRIDES = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
    WIDTHS = (1, 1, 1, 1, 2, 2, 2, 4, 4, 4)  # multiples of ``channels``; the last three are ``dim``

    def __init__(self, spec: InputSpec, cfg: CTRGCNConfig):
        super().__init__()
        check_widths(cfg.channels, cfg.dim, cfg.dilations, cfg.temporal_kernel)
        if cfg.rel_reduction < 1 or cfg.channels < cfg.rel_reduction:
            raise ValueError(
                f"rel_reduction must be between 1 and channels ({cfg.channels}), got {cfg.rel_reduction}"
            )
        self.num_joints, self.dim = spec.num_joints, cfg.dim
        subsets = torch.from_numpy(graph_subsets(spec.layout))
        self.data_bn = nn.BatchNorm1d(spec.in_channels * spec.num_joints)
        widths = [spec.in_channels] + [cfg.channels * w for w in self.WIDTHS[:7]] + [cfg.dim] * 3
        self.blocks = nn.ModuleList(
            CTRGCNBlock(widths[i], widths[i + 1], subsets, cfg, stride, first=i == 0)
            for i, stride in enumerate(self.STRIDES)
        )

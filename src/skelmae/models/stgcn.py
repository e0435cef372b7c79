"""ST-GCN (Yan et al., AAAI 2018): the graph backbone of the contrastive methods.

Read top to bottom:

1. Graph. The layout's bones plus self loops, hop distances up to ``max_hop`` (1), and the
   *spatial-configuration* partition: for each node, its neighbours split into the root
   (itself, and neighbours as far from the centre as it is), the centripetal neighbours
   (closer to the centre) and the centrifugal ones (further away). The centre is the root
   joint of the layout's bone tree (spine-shoulder for the Kinect layout, the neck for
   OpenPose-18: the centres ST-GCN uses), so any layout gets a graph. Each partition is a
   (V, V) matrix of the column-normalised adjacency, as ST-GCN's ``normalize_digraph``.
   *Choice*: the distance to the centre is the true number of bones, as the paper defines
   it; ST-GCN's code measures it only up to ``max_hop`` and so puts every edge between two
   joints more than one bone from the centre into the root partition.
2. Block. A graph convolution (one 1x1 convolution per partition, summed through the
   partition matrices, each scaled by a learned edge-importance mask), then BatchNorm, ReLU,
   a temporal convolution of ``temporal_kernel`` frames, BatchNorm, dropout, a residual and
   ReLU.
3. Network. Input BatchNorm over (joints x channels) with persons folded into the batch,
   then ten blocks: four of ``channels``, three of twice that (the first with temporal
   stride 2), three of four times (stride 2 again), the last widened to ``dim``.
   ``channels=64, dim=256`` is Yan et al.'s network; SkeletonCLR and SkeAttnCLR use
   ``channels=16, dim=256``. The output keeps the joints: (N, M, T/4, V, dim).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from skelmae.data.layouts import SkeletonLayout
from skelmae.models.common import BACKBONES, Encoder, InputSpec

__all__ = ["STGCNConfig", "STGCN", "GraphBlockEncoder", "spatial_partitions"]


def hop_distance(layout: SkeletonLayout, max_hop: int) -> np.ndarray:
    """(V, V) number of bones between two joints; ``inf`` beyond ``max_hop``."""
    reach = [np.linalg.matrix_power(layout.adjacency(self_loops=True), d) > 0 for d in range(max_hop + 1)]
    hops = np.full((layout.num_joints,) * 2, np.inf)
    for d in range(max_hop, -1, -1):
        hops[reach[d]] = d
    return hops


def spatial_partitions(layout: SkeletonLayout, max_hop: int = 1) -> np.ndarray:
    """The spatial-configuration partition matrices, shape (1 + 2 * max_hop, V, V)."""
    hops = hop_distance(layout, max_hop)
    adjacency = (hops <= max_hop).astype(np.float64)
    degree = adjacency.sum(axis=0)
    normalised = adjacency / degree[None, :]  # A @ diag(1 / column sums)
    to_centre = hop_distance(layout, layout.num_joints)[:, layout.root]
    partitions = []
    for hop in range(max_hop + 1):
        at_hop = hops == hop
        root = normalised * (at_hop & (to_centre[:, None] == to_centre[None, :]))
        centripetal = normalised * (at_hop & (to_centre[:, None] > to_centre[None, :]))
        centrifugal = normalised * (at_hop & (to_centre[:, None] < to_centre[None, :]))
        partitions += [root] if hop == 0 else [root + centripetal, centrifugal]
    return np.stack(partitions).astype(np.float32)


class STGCNBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, partitions: int, num_joints: int, kernel: int, stride: int,
                 dropout: float, residual: bool, edge_importance: bool):
        super().__init__()
        self.partitions = partitions
        self.graph_conv = nn.Conv2d(in_dim, out_dim * partitions, kernel_size=1)
        self.importance = nn.Parameter(torch.ones(partitions, num_joints, num_joints), requires_grad=edge_importance)
        self.temporal = nn.Sequential(
            nn.BatchNorm2d(out_dim), nn.ReLU(inplace=True),
            nn.Conv2d(out_dim, out_dim, (kernel, 1), (stride, 1), ((kernel - 1) // 2, 0)),
            nn.BatchNorm2d(out_dim), nn.Dropout(dropout, inplace=True),
        )
        if not residual:
            self.residual = None
        elif in_dim == out_dim and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(nn.Conv2d(in_dim, out_dim, 1, (stride, 1)), nn.BatchNorm2d(out_dim))

    def forward(self, x: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        """(B, C, T, V) -> (B, out_dim, T / stride, V)."""
        b, _, t, v = x.shape
        h = self.graph_conv(x).view(b, self.partitions, -1, t, v)
        h = torch.einsum("bkctv,kvw->bctw", h, (graph * self.importance).to(h.dtype))
        h = self.temporal(h)
        if self.residual is not None:
            h = h + self.residual(x)
        return torch.relu(h)


class GraphBlockEncoder(Encoder):
    """The network shape the graph backbones share: an input stage (``embed``: here a BatchNorm
    over (joints x channels) with persons folded into the batch) and then ``blocks`` on
    (B, C, T, V). Layer-wise lr decay puts the input stage's modules (``INPUT_LAYERS``) at
    layer 0 and block i at layer i + 1."""

    INPUT_LAYERS: ClassVar[tuple[str, ...]] = ("data_bn",)
    data_bn: nn.BatchNorm1d
    blocks: nn.ModuleList

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> (N*M, C', T, V)."""
        n, c, t, v, m = x.shape
        h = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
        return self.data_bn(h).view(n * m, v, c, t).permute(0, 2, 3, 1)

    def apply_block(self, block: nn.Module, h: torch.Tensor) -> torch.Tensor:
        return block(h)

    @property
    def num_layers(self) -> int:
        return len(self.blocks) + 1

    def layer_id(self, name: str) -> int:
        parts = name.split(".")
        if parts[0] in self.INPUT_LAYERS:
            return 0
        if parts[0] == "blocks":
            return int(parts[1]) + 1
        return self.num_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> (N, M, T', V, dim)."""
        n, _, _, v, m = x.shape
        h = self.embed(x)
        for block in self.blocks:
            h = self.apply_block(block, h)
        return h.reshape(n, m, self.dim, -1, v).permute(0, 1, 3, 4, 2)


@dataclass
class STGCNConfig:
    channels: int = 64  # width of the first four blocks; doubled at each temporal stride
    dim: int = 256  # width of the last block: the feature dimension
    temporal_kernel: int = 9
    dropout: float = 0.0
    edge_importance: bool = True  # learned per-edge weights of the partition matrices
    max_hop: int = 1
    TUNABLE: ClassVar[tuple[str, ...]] = ("dropout",)


@BACKBONES.register("stgcn", config=STGCNConfig)
class STGCN(GraphBlockEncoder):
    """ST-GCN (Yan et al. 2018) with spatial-configuration partitioning, for any layout."""

    STRIDES = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
    WIDTHS = (1, 1, 1, 1, 2, 2, 2, 4, 4, 4)  # multiples of ``channels``; the last is ``dim``

    def __init__(self, spec: InputSpec, cfg: STGCNConfig):
        super().__init__()
        if cfg.temporal_kernel < 1 or cfg.temporal_kernel % 2 == 0:
            raise ValueError(f"temporal_kernel must be odd and positive, got {cfg.temporal_kernel}")
        self.num_joints, self.dim = spec.num_joints, cfg.dim
        graph = torch.from_numpy(spatial_partitions(spec.layout, cfg.max_hop))
        self.register_buffer("graph", graph, persistent=False)
        self.data_bn = nn.BatchNorm1d(spec.in_channels * spec.num_joints)
        widths = [spec.in_channels] + [cfg.channels * w for w in self.WIDTHS[:-1]] + [cfg.dim]
        self.blocks = nn.ModuleList(
            STGCNBlock(widths[i], widths[i + 1], graph.shape[0], spec.num_joints, cfg.temporal_kernel, stride,
                       dropout=0.0 if i == 0 else cfg.dropout, residual=i > 0, edge_importance=cfg.edge_importance)
            for i, stride in enumerate(self.STRIDES)
        )

    def apply_block(self, block: nn.Module, h: torch.Tensor) -> torch.Tensor:
        return block(h, self.graph)

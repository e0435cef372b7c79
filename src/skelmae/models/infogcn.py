"""InfoGCN (Chung et al., CVPR 2022): attention-based graph convolution and an
information-bottleneck objective.

Read top to bottom:

1. Relative positions. Each joint's coordinates become ``(I - P^k) x``: its position
   relative to its k-th ancestor in the layout's bone tree (``P[v, parent(v)] = 1``; a joint
   without a k-th ancestor keeps its absolute position), InfoGCN's "k-th mode" of the
   skeleton. ``k_hop`` is that k (the published streams use 1, 2 and 8); ``k_hop=0`` leaves
   the coordinates absolute (the reference's formula would give all zeros there). Only the
   coordinate channels are transformed; a 2D pose's confidence score stays as it is. The
   tree is the layout's, rooted at spine-shoulder on NTU; the reference roots its NTU tree
   at spine-middle, so there the bones between spine base, middle and shoulder point the
   other way.
2. Embedding. A linear joint embedding to ``channels`` plus a learned positional embedding
   per joint, then BatchNorm over (joints x channels) with persons folded into the batch.
3. SA-GC. Per frame, multi-head self-attention scores between joints (LayerNorm, one
   linear map to queries and keys of ``channels / 8`` per head, softmax over the joints)
   multiply a learned topology per head shared by all samples (initialised to the
   identity); each head aggregates the joints with its matrix, a 1x1 convolution maps the
   concatenated heads to the output width (the reference sums one convolution per head:
   the same function), then BatchNorm (scale starting near 0), a residual and ReLU.
4. Network. Nine blocks (SA-GC -> CTR-GCN's multi-scale temporal convolution, plus a
   residual): three of ``channels``, three of twice that (the first with temporal stride
   2), three of ``dim`` (stride 2 again). ``channels=64, dim=256`` is the published network.
   Output (N, M, ceil(T / 4), V, dim).
5. Objective (the head ``infogcn``). The pooled features go through a linear layer and
   ReLU to a mean ``mu`` and a log-variance of the latent ``z``; training samples
   ``z = mu + eps * exp(noise_ratio * logvar)``, evaluation uses ``mu``; a linear layer
   classifies ``z``. The regulariser :meth:`InfoGCNClassifier.auxiliary_loss` pulls the
   class-wise means of ``z`` in a batch towards fixed, orthogonally initialised class
   means ``z_prior`` (an MMD with a Gaussian prior per class, ``lambda_mmd``) and keeps the
   batch mean of ``z`` near 0 (its L2 norm, ``lambda_l2``); the fine-tuning protocol adds it
   to the cross-entropy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from skelmae.data.layouts import SkeletonLayout
from skelmae.models.common import BACKBONES, HEADS, Encoder, InputSpec, person_mean
from skelmae.models.ctrgcn import MultiScaleTemporalConv, block_residual, check_widths, directed_bones, init_conv_bn
from skelmae.models.heads import SkeletonClassifier
from skelmae.models.stgcn import GraphBlockEncoder

__all__ = ["InfoGCNConfig", "InfoGCN", "InfoGCNHeadConfig", "InfoGCNClassifier", "relative_position_matrix", "embed_relative_joints"]


def relative_position_matrix(layout: SkeletonLayout, k_hop: int) -> np.ndarray:
    """(V, V) ``I - P^k``: row v takes joint v minus its k-th ancestor; ``k_hop=0``: the identity."""
    identity = np.eye(layout.num_joints, dtype=np.float32)
    if k_hop == 0:
        return identity
    _, to_parent = directed_bones(layout)  # to_parent[child, parent] = 1
    return identity - np.linalg.matrix_power(to_parent, k_hop)


def embed_relative_joints(
    x: torch.Tensor, relative: torch.Tensor, coords: int, joint_embedding: nn.Module, position: torch.Tensor,
    data_bn: nn.BatchNorm1d,
) -> torch.Tensor:
    """InfoGCN's input stage, which FreqMixFormer shares: (N, C, T, V, M) -> (N*M, D, T, V).
    Each person's coordinates go through ``relative`` (a 2D pose's score channel is kept as it
    is), every joint through ``joint_embedding`` to D channels plus its learned ``position``,
    then ``data_bn`` over (joints x D) per frame sequence."""
    seq = x.permute(0, 4, 2, 3, 1)  # (N, M, T, V, C)
    n, m, t, v, _ = seq.shape
    relative_coords = torch.einsum("uv,nmtvc->nmtuc", relative.to(seq.dtype), seq[..., :coords])
    h = joint_embedding(torch.cat([relative_coords, seq[..., coords:]], dim=-1)) + position
    h = data_bn(h.permute(0, 1, 3, 4, 2).reshape(n * m, -1, t))  # (N*M, V*D, T)
    return h.view(n * m, v, -1, t).permute(0, 2, 3, 1)


class JointAttention(nn.Module):
    """Per-frame softmax attention between joints, one (V, V) matrix per head."""

    def __init__(self, in_dim: int, head_dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, head_dim ** -0.5
        self.norm = nn.LayerNorm(in_dim)
        self.to_qk = nn.Linear(in_dim, 2 * heads * head_dim)
        nn.init.normal_(self.to_qk.weight, 0.0, 1.0)  # the published initialisation: sharp attention from the start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, V) -> (B, T, heads, V, V)."""
        b, _, t, v = x.shape
        q, k = self.to_qk(self.norm(x.permute(0, 2, 3, 1))).view(b, t, v, 2, self.heads, -1).unbind(dim=3)
        scores = torch.einsum("btihd,btjhd->bthij", q, k) * self.scale
        return scores.softmax(dim=-1)


class SelfAttentionGraphConv(nn.Module):
    """SA-GC: attention times a learned shared topology per head, aggregated, BatchNorm,
    residual, ReLU."""

    def __init__(self, in_dim: int, out_dim: int, num_joints: int, heads: int, attention_reduction: int):
        super().__init__()
        self.shared = nn.Parameter(torch.eye(num_joints).repeat(heads, 1, 1))
        self.attention = JointAttention(in_dim, in_dim // attention_reduction, heads)
        self.mix = nn.Conv2d(heads * in_dim, out_dim, 1)
        self.norm = nn.BatchNorm2d(out_dim)
        self.down = block_residual(in_dim, out_dim, 1)
        init_conv_bn(self.norm, bn_scale=1e-6)
        # each head's convolution as the reference draws it: N(0, 2 / (out * in * heads))
        nn.init.normal_(self.mix.weight, 0.0, math.sqrt(2.0 / (out_dim * in_dim * heads)))
        nn.init.zeros_(self.mix.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, v = x.shape
        topology = self.attention(x) * self.shared  # (B, T, heads, V, V)
        h = torch.einsum("bthuv,bctv->bhctu", topology, x).reshape(b, -1, t, v)
        return torch.relu(self.norm(self.mix(h)) + self.down(x))


class InfoGCNBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, num_joints: int, cfg: InfoGCNConfig, stride: int):
        super().__init__()
        self.graph_conv = SelfAttentionGraphConv(in_dim, out_dim, num_joints, cfg.heads, cfg.attention_reduction)
        self.temporal = MultiScaleTemporalConv(out_dim, out_dim, cfg.temporal_kernel, stride, tuple(cfg.dilations))
        self.residual = block_residual(in_dim, out_dim, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.temporal(self.graph_conv(x)) + self.residual(x))


@dataclass
class InfoGCNConfig:
    channels: int = 64  # embedding width and width of the first three blocks; doubled at the first stride
    dim: int = 256  # width of the last three blocks: the feature dimension
    heads: int = 3  # attention heads of SA-GC, each with its own shared topology
    k_hop: int = 1  # relative position to the k-th ancestor joint (published 1, 2, 8); 0: absolute positions
    temporal_kernel: int = 5
    dilations: list[int] = field(default_factory=lambda: [1, 2])
    attention_reduction: int = 8  # query/key width per head = input width / attention_reduction


@BACKBONES.register("infogcn", config=InfoGCNConfig)
class InfoGCN(GraphBlockEncoder):
    """InfoGCN (Chung et al. 2022): self-attention graph convolution on relative positions."""

    INPUT_LAYERS = ("joint_embedding", "position_embedding", "data_bn")
    STRIDES = (1, 1, 1, 2, 1, 1, 2, 1, 1)
    WIDTHS = (1, 1, 1, 2, 2, 2)  # multiples of ``channels``; the last three blocks are ``dim``

    def __init__(self, spec: InputSpec, cfg: InfoGCNConfig):
        super().__init__()
        check_widths(cfg.channels, cfg.dim, cfg.dilations, cfg.temporal_kernel)
        if cfg.heads < 1:
            raise ValueError(f"heads must be a positive integer, got {cfg.heads}")
        if not isinstance(cfg.k_hop, int) or cfg.k_hop < 0:
            raise ValueError(f"k_hop must be a non-negative integer (0: absolute positions), got {cfg.k_hop!r}")
        if cfg.attention_reduction < 1 or cfg.channels < cfg.attention_reduction:
            raise ValueError(
                f"attention_reduction must be between 1 and channels ({cfg.channels}), got {cfg.attention_reduction}"
            )
        self.num_joints, self.dim, self.coords = spec.num_joints, cfg.dim, spec.coord_channels
        relative = torch.from_numpy(relative_position_matrix(spec.layout, cfg.k_hop))
        self.register_buffer("relative", relative, persistent=False)
        self.joint_embedding = nn.Linear(spec.in_channels, cfg.channels)
        self.position_embedding = nn.Parameter(torch.randn(spec.num_joints, cfg.channels))
        self.data_bn = nn.BatchNorm1d(spec.num_joints * cfg.channels)
        widths = [cfg.channels] + [cfg.channels * w for w in self.WIDTHS] + [cfg.dim] * 3
        self.blocks = nn.ModuleList(
            InfoGCNBlock(widths[i], widths[i + 1], spec.num_joints, cfg, stride) for i, stride in enumerate(self.STRIDES)
        )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return embed_relative_joints(x, self.relative, self.coords, self.joint_embedding, self.position_embedding,
                                     self.data_bn)


@dataclass
class InfoGCNHeadConfig:
    z_dim: int = 256  # latent width (the published z has the encoder's width, 256)
    noise_ratio: float = 0.5  # training samples z with std exp(noise_ratio * logvar)
    prior_gain: float = 3.0  # gain of the orthogonal class means z_prior
    lambda_mmd: float = 0.1  # weight of the distance between class-wise means of z and z_prior
    lambda_l2: float = 1e-4  # weight of the L2 norm of the batch mean of z
    dropout: float = 0.0  # after the first linear layer


class InformationBottleneckHead(nn.Module):
    """Pooled features -> ReLU(linear) -> (mu, logvar) -> z -> linear classifier."""

    def __init__(self, dim: int, num_classes: int, cfg: InfoGCNHeadConfig):
        super().__init__()
        self.noise_ratio = cfg.noise_ratio
        self.fc = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc_mu = nn.Linear(dim, cfg.z_dim)
        self.fc_logvar = nn.Linear(dim, cfg.z_dim)
        self.decoder = nn.Linear(cfg.z_dim, num_classes)
        for layer in (self.fc, self.fc_mu, self.fc_logvar):
            nn.init.xavier_uniform_(layer.weight, gain=nn.init.calculate_gain("relu"))
        nn.init.normal_(self.decoder.weight, 0.0, math.sqrt(2.0 / num_classes))

    def latent(self, feats: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
        """z (N, z_dim): sampled in training, the mean in evaluation."""
        h = self.dropout(torch.relu(self.fc(person_mean(feats.mean(dim=(2, 3)), present))))
        mu = self.fc_mu(h)
        if not self.training:
            return mu
        std = torch.clamp(torch.exp(self.noise_ratio * self.fc_logvar(h)), max=100.0)
        return mu + std * torch.randn_like(std)


def bottleneck_regulariser(z: torch.Tensor, labels: torch.Tensor, z_prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(MMD term, L2 term): the mean squared distance between the class-wise means of ``z``
    and ``z_prior`` over the classes in the batch, and the L2 norm of the batch mean of ``z``."""
    one_hot = F.one_hot(labels, z_prior.shape[0]).to(z.dtype)  # (B, K)
    counts = one_hot.sum(dim=0)
    seen = counts > 0
    class_means = (one_hot.T @ z)[seen] / counts[seen, None]
    return F.mse_loss(class_means, z_prior[seen].to(z.dtype)), z.mean(dim=0).norm(p=2)


@HEADS.register("infogcn", config=InfoGCNHeadConfig)
class InfoGCNClassifier(SkeletonClassifier):
    """InfoGCN's information-bottleneck classifier: a sampled latent per clip and a class prior."""

    def __init__(self, encoder: Encoder, num_classes: int, cfg: InfoGCNHeadConfig):
        if cfg.z_dim < 1:
            raise ValueError(f"z_dim must be a positive integer, got {cfg.z_dim}")
        for key in ("noise_ratio", "prior_gain", "lambda_mmd", "lambda_l2"):
            if getattr(cfg, key) < 0:
                raise ValueError(f"{key} must be non-negative, got {getattr(cfg, key)}")
        if not 0.0 <= cfg.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {cfg.dropout}")
        super().__init__(encoder, InformationBottleneckHead(encoder.dim, num_classes, cfg))
        self.lambda_mmd, self.lambda_l2 = cfg.lambda_mmd, cfg.lambda_l2
        # fixed class means, as the reference (not learned); a buffer, so checkpoints and resumed runs keep them
        self.register_buffer("z_prior", nn.init.orthogonal_(torch.empty(num_classes, cfg.z_dim), gain=cfg.prior_gain))
        self._latest_z: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head.latent(self.encoder(x), self.encoder.present(x))
        self._latest_z = z if self.training and torch.is_grad_enabled() else None
        return self.head.decoder(z)

    def auxiliary_loss(self, labels: torch.Tensor) -> torch.Tensor | None:
        """``lambda_mmd * MMD + lambda_l2 * L2`` of the latest training forward (once; None after)."""
        z, self._latest_z = self._latest_z, None
        if z is None:
            return None
        mmd, l2 = bottleneck_regulariser(z.float(), labels, self.z_prior)
        return self.lambda_mmd * mmd + self.lambda_l2 * l2

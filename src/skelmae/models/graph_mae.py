"""SkeletonMAE-G: a graph masked autoencoder on per-frame skeleton graphs (Yan et al., ICCV 2023).

The paper released no code; every point it leaves open is settled here and marked *choice*.
Read top to bottom:

1. Graph. One graph per frame and person: the layout's physical bones plus self loops
   (``SkeletonLayout.adjacency()``), a dense (V, V) 0/1 matrix shared by every graph. Persons
   are folded into the batch and frames are independent graphs, so N clips of T frames and M
   persons are N*M*T graphs of V nodes, held as one (N*M, T, V, D) tensor; a layer's message
   passing is one product with the (V, V) matrix (*choice*: dense, as V <= 25; no graph library).
2. Features. Each joint's channels (x, y, z; or x, y, score for 2D poses) are lifted by one
   linear map to D = 64, then a learned per-joint embedding is added (*choice*: it tells a
   masked node which joint it stands for, which GIN cannot infer for left/right mirror joints).
3. GIN. h'_v = MLP((1 + eps) h_v + sum over neighbours u of h_u) with eps = 0 (GIN-0, GraphMAE's
   default; the self loop supplies the 1), i.e. ``MLP(A @ H)``. The MLP is Linear -> LayerNorm
   -> PReLU -> Linear, hidden width D_h (default 64, = D), and every layer but the decoder's
   last is followed by LayerNorm and PReLU (GraphMAE's layout; *choice*: LayerNorm, not
   BatchNorm, because absent persons are all-zero graphs and LayerNorm acts per node, the same
   in training and evaluation). Encoder: 3 layers D -> D_h. Decoder: a bias-free linear map
   (GraphMAE's encoder-to-decoder) and 1 layer D_h -> the reconstructed channels.
4. Masking, drawn per frame graph (*choice*: the encoder has no temporal path, so per-frame
   draws only decorrelate the graphs of a batch). ``bodypart``: ``regions`` whole groups of the
   layout drawn uniformly without replacement (default 2 of 6; the paper picks "one or more"),
   or the same named ``fixed_regions`` in every graph (the paper's ablation; its best FineGym
   setting, V3 + V5, is right_arm + right_leg). ``random``: round(ratio * V) joints (the paper's
   ablation). A masked joint's lifted feature is replaced by one learned D-dim mask vector
   before the joint embedding is added, so its input never reaches the encoder.
5. Re-masking is off by default (*choice*): with whole regions masked, a region's inner joints
   have only masked neighbours, so a 1-layer decoder fed re-masked (zeroed) encoder outputs
   could not reconstruct them; ``remask=True`` gives GraphMAE's behaviour.
6. Target and loss: the scaled cosine error (1 - cos)^beta, beta = 2 (GraphMAE's SCE), averaged
   over masked joints. The target is the joint's coordinates relative to the frame's centre
   joint (``layout.center``) (*choice*: the paper names the lifted feature as target, but a
   learned target can collapse to one direction and make the loss trivial, and the cosine of
   raw coordinates only measures the direction from the camera or image origin). A score
   channel is input only. Joints whose target is the zero vector (the centre joint itself, the
   all-zero frames of absent persons) have no direction and are left out of the average.
7. Edge term (``edge_weight > 0``): the decoder also predicts each joint's bone vector to its
   parent, and the same error over bones with a masked end is added with weight ``edge_weight``
   (the abstract's "joints and edges"; the paper's method section reconstructs joints only, so
   the default is 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from skelmae.models.common import BACKBONES, METHODS, Encoder, InputSpec, MethodOutput, PretrainMethod, fold_persons
from skelmae.models.masking import sharded_rand

__all__ = ["GRAPH_MASK_STRATEGIES", "GINLayer", "GINConfig", "GraphEncoder", "GraphMAEConfig", "GraphMAE", "scaled_cosine_error"]

GRAPH_MASK_STRATEGIES = ("bodypart", "random")


def scaled_cosine_error(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Mean of (1 - cos(pred, target))^beta over masked entries with a non-zero target."""
    counted = mask & (target.norm(dim=-1) > 1e-6)
    cos = (F.normalize(pred.float(), dim=-1) * F.normalize(target.float(), dim=-1)).sum(dim=-1)
    error = (1.0 - cos).pow(beta)
    return (error * counted).sum() / counted.sum().clamp_min(1)


class GINLayer(nn.Module):
    """One GIN-0 layer on dense graphs: MLP(A @ H), then LayerNorm + PReLU unless ``last``."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, last: bool = False):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.PReLU(), nn.Linear(hidden_dim, out_dim)
        )
        self.post = nn.Identity() if last else nn.Sequential(nn.LayerNorm(out_dim), nn.PReLU())

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """h: (..., V, in_dim), adjacency: (V, V) -> (..., V, out_dim)."""
        return self.post(self.mlp(torch.matmul(adjacency.to(h.dtype), h)))


@dataclass
class GINConfig:
    feat_dim: int = 64  # D: each joint's channels are lifted to D
    hidden_dim: int = 64  # D_h: width of the GIN layers and of the encoder output
    encoder_layers: int = 3


@BACKBONES.register("gin", config=GINConfig)
class GraphEncoder(Encoder):
    """Lift + joint embedding + GIN layers, applied to every frame graph of every person."""

    def __init__(self, spec: InputSpec, cfg: GINConfig):
        super().__init__()
        layout = spec.layout
        if cfg.encoder_layers < 1:
            raise ValueError(f"the graph encoder needs at least one GIN layer, got {cfg.encoder_layers}")
        self.num_joints, self.num_frames = layout.num_joints, spec.num_frames
        self.feat_dim, self.dim = cfg.feat_dim, cfg.hidden_dim
        self.register_buffer("adjacency", torch.from_numpy(layout.adjacency(self_loops=True)), persistent=False)
        self.lift = nn.Linear(spec.in_channels, cfg.feat_dim)
        self.joint_embed = nn.Parameter(torch.zeros(layout.num_joints, cfg.feat_dim))
        nn.init.trunc_normal_(self.joint_embed, std=0.02)
        dims = [cfg.feat_dim] + [cfg.hidden_dim] * cfg.encoder_layers
        self.layers = nn.ModuleList(GINLayer(dims[i], cfg.hidden_dim, dims[i + 1]) for i in range(cfg.encoder_layers))

    @property
    def num_layers(self) -> int:
        """Layer-wise lr decay depth: the lift and joint embedding (0) and the GIN layers (1..L)."""
        return len(self.layers) + 1

    def layer_id(self, name: str) -> int:
        parts = name.split(".")
        if parts[0] in ("lift", "joint_embed"):
            return 0
        if parts[0] == "layers":
            return int(parts[1]) + 1
        return self.num_layers

    def embed(
        self, seq: torch.Tensor, mask: torch.Tensor | None = None, mask_token: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, T, V, C) -> (B, T, V, feat_dim); joints where ``mask`` is set get ``mask_token`` instead."""
        feats = self.lift(seq)
        if mask is not None:
            feats = torch.where(mask[..., None], mask_token.to(feats.dtype), feats)
        return feats + self.joint_embed

    def propagate(self, h: torch.Tensor) -> torch.Tensor:
        """(..., V, feat_dim) -> (..., V, dim): the GIN layers on each graph."""
        for layer in self.layers:
            h = layer(h, self.adjacency)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> joint features (N, M, T, V, dim) of every frame graph."""
        n, _, t, v, m = x.shape
        return self.propagate(self.embed(fold_persons(x))).reshape(n, m, t, v, self.dim)


@dataclass
class GraphMAEConfig:
    """SkeletonMAE-G pre-training: decoder depth, body-part masking and the SCE loss."""

    decoder_layers: int = 1
    mask: str = "bodypart"  # bodypart | random (per frame graph)
    ratio: float = 0.9  # share of joints masked by ``random`` (the mask.ratio default it was read from before)
    regions: int = 2  # body-part groups masked per frame graph (``bodypart``)
    fixed_regions: list[str] = field(default_factory=list)  # mask these groups in every graph instead
    remask: bool = False  # GraphMAE re-masking of the encoder output before the decoder
    beta: float = 2.0  # exponent of the scaled cosine error
    edge_weight: float = 0.0  # weight of the bone-vector (edge) term; 0 = joints only, as in the paper


@METHODS.register("graph_mae", config=GraphMAEConfig)
class GraphMAE(PretrainMethod):
    """Masked graph autoencoder around a :class:`GraphEncoder`."""

    backbones = ("gin",)

    def __init__(self, encoder: GraphEncoder, spec: InputSpec, cfg: GraphMAEConfig):
        super().__init__()
        layout = spec.layout
        groups = list(layout.groups)
        coord_channels = spec.coord_channels
        if cfg.mask not in GRAPH_MASK_STRATEGIES:
            raise ValueError(f"graph_mae masks with strategy bodypart or random, got {cfg.mask!r}")
        unknown = [g for g in cfg.fixed_regions if g not in groups]
        if unknown:
            raise ValueError(f"fixed_regions {unknown} are not groups of layout {layout.name!r}: {groups}")
        masked_groups = len(set(cfg.fixed_regions)) if cfg.fixed_regions else cfg.regions
        if not 1 <= masked_groups < len(groups):
            raise ValueError(
                f"mask between 1 and {len(groups) - 1} of the {len(groups)} body-part groups, got {masked_groups}"
            )
        if cfg.mask == "random" and not 0 < cfg.ratio < 1:
            raise ValueError(f"ratio must be in (0, 1), got {cfg.ratio}")
        if cfg.decoder_layers < 1:
            raise ValueError(f"the decoder needs at least one GIN layer, got {cfg.decoder_layers}")
        self.encoder = encoder
        self.mask_strategy, self.regions, self.remask = cfg.mask, cfg.regions, cfg.remask
        self.fixed_regions = bool(cfg.fixed_regions)
        self.masked_joints = min(max(round(cfg.ratio * layout.num_joints), 1), layout.num_joints - 1)
        self.coord_channels, self.beta, self.edge_weight = coord_channels, cfg.beta, cfg.edge_weight
        self.center = layout.center
        index = torch.as_tensor(layout.group_index(), dtype=torch.long)
        fixed = torch.as_tensor([groups.index(g) for g in cfg.fixed_regions], dtype=torch.long)
        self.register_buffer("joint_groups", index, persistent=False)
        self.register_buffer("fixed_mask", torch.isin(index, fixed), persistent=False)
        self.register_buffer("parents", torch.as_tensor(layout.parents, dtype=torch.long), persistent=False)

        hidden_dim = encoder.dim
        self.mask_token = nn.Parameter(torch.zeros(encoder.feat_dim))
        self.encoder_to_decoder = nn.Linear(hidden_dim, hidden_dim, bias=False)
        out_dim = coord_channels * (2 if cfg.edge_weight > 0 else 1)  # joint, then bone-to-parent channels
        widths = [hidden_dim] * cfg.decoder_layers + [out_dim]
        self.decoder = nn.ModuleList(
            GINLayer(widths[i], hidden_dim, widths[i + 1], last=i == cfg.decoder_layers - 1)
            for i in range(cfg.decoder_layers)
        )

    def choose_mask(
        self, batch: int, frames: int, device: torch.device, generator: torch.Generator | None = None,
        shard: tuple[int, int] = (0, 1), persons: int = 1,
    ) -> torch.Tensor:
        """(batch, frames, V) bool, True = masked, drawn independently for every frame graph.

        ``shard`` and ``persons`` make the draw independent of the number of processes
        (see :func:`skelmae.models.masking.sharded_rand`).
        """
        v = self.encoder.num_joints
        if self.mask_strategy == "bodypart" and self.fixed_regions:
            return self.fixed_mask.expand(batch, frames, v)
        if self.mask_strategy == "bodypart":
            num_groups = int(self.joint_groups.max()) + 1
            scores = sharded_rand((batch, frames, num_groups), device, generator, shard, persons)
            chosen = scores.argsort(dim=-1).argsort(dim=-1) < self.regions
            return chosen[..., self.joint_groups]
        scores = sharded_rand((batch, frames, v), device, generator, shard, persons)
        return scores.argsort(dim=-1).argsort(dim=-1) < self.masked_joints

    def forward_encoder(self, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, V, C) and its mask -> (B, T, V, hidden_dim); masked inputs are never read."""
        return self.encoder.propagate(self.encoder.embed(seq, mask, self.mask_token))

    def forward_decoder(self, latent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder_to_decoder(latent)
        if self.remask:
            h = h.masked_fill(mask[..., None], 0.0)
        for layer in self.decoder:
            h = layer(h, self.encoder.adjacency)
        return h

    def make_targets(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint positions relative to the frame's centre joint, and bone vectors to the parent."""
        coords = seq[..., : self.coord_channels]
        return coords - coords[..., self.center : self.center + 1, :], coords - coords[..., self.parents, :]

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, shard: tuple[int, int] = (0, 1)
    ) -> MethodOutput:
        """x: (N, C, T, V, M) -> loss on the masked joints of all N*M*T frame graphs."""
        seq = fold_persons(x)
        b, t, v, _ = seq.shape
        mask = self.choose_mask(b, t, seq.device, generator, shard, persons=x.shape[-1])
        pred = self.forward_decoder(self.forward_encoder(seq, mask), mask)
        joint_target, bone_target = self.make_targets(seq)
        k = self.coord_channels
        joint_pred, joint_target = pred[..., :k].reshape(b, t * v, k), joint_target.reshape(b, t * v, k)
        loss = scaled_cosine_error(joint_pred, joint_target, mask.reshape(b, t * v), self.beta)
        if self.edge_weight > 0:
            bone_masked = mask | mask[..., self.parents]
            loss = loss + self.edge_weight * scaled_cosine_error(pred[..., k:], bone_target, bone_masked, self.beta)
        return MethodOutput(loss=loss, pred=joint_pred, target=joint_target, mask=mask.reshape(b, t * v).float())

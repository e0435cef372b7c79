"""Building models from configs and checkpoints (the architecture travels in the checkpoint).

``model_args`` name their architecture under ``arch`` (``st_mae`` when absent, as in
checkpoints written before the graph model existed) and every builder dispatches on it, so
the engine builds any model with one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from skelmae.config import MaskConfig, ModelConfig
from skelmae.data.layouts import SkeletonLayout
from skelmae.data.transforms import is_planar
from skelmae.errors import CheckpointError, ConfigError
from skelmae.models.graph_mae import GraphEncoder, GraphMAE
from skelmae.models.heads import FinetuneHead, LinearProbeHead, SkeletonClassifier
from skelmae.models.st_mae import SkeletonEncoder, SkeletonMAE
from skelmae.models.strl import STRLNet

ARCHS = ("st_mae", "graph_mae")
ENCODER_KEYS = ("in_channels", "num_joints", "num_frames", "segment", "dim", "depth", "heads", "mlp_ratio")
GRAPH_ENCODER_KEYS = ("layout", "in_channels", "num_frames", "feat_dim", "hidden_dim", "encoder_layers")


def arch_of(args: dict[str, Any]) -> str:
    arch = args.get("arch", "st_mae")
    if arch not in ARCHS:
        raise ValueError(f"unknown model architecture {arch!r}; expected one of {ARCHS}")
    return arch


def mae_args(
    model: ModelConfig, mask: MaskConfig, layout: SkeletonLayout, channels: Sequence[str], window: int
) -> dict[str, Any]:
    """Constructor arguments of the MAE selected by ``model.arch``, plus ``arch`` itself."""
    if model.arch == "graph_mae":
        graph = model.graph
        return {
            "arch": "graph_mae",
            "layout": layout.to_dict(),
            "in_channels": len(channels),
            "coord_channels": 2 if is_planar(list(channels)) else 3,
            "num_frames": window,
            "feat_dim": graph.feat_dim,
            "hidden_dim": graph.hidden_dim,
            "encoder_layers": graph.encoder_layers,
            "decoder_layers": graph.decoder_layers,
            "mask_strategy": mask.strategy,
            "mask_ratio": mask.ratio,
            "regions": graph.regions,
            "fixed_regions": list(graph.fixed_regions),
            "remask": graph.remask,
            "beta": graph.beta,
            "edge_weight": graph.edge_weight,
        }
    if model.arch != "st_mae":
        raise ConfigError(f"model.arch must be one of {', '.join(ARCHS)}, got {model.arch!r}")
    return {
        "arch": "st_mae",
        "in_channels": len(channels),
        "num_joints": layout.num_joints,
        "num_frames": window,
        "segment": model.segment,
        "dim": model.dim,
        "depth": model.depth,
        "heads": model.heads,
        "mlp_ratio": model.mlp_ratio,
        "decoder_dim": model.decoder_dim,
        "decoder_depth": model.decoder_depth,
        "decoder_heads": model.decoder_heads,
        "mask_strategy": mask.strategy,
        "mask_ratio": mask.ratio,
        "motion_tau": mask.tau,
        "target": mask.target,
        "norm_target": mask.norm_target,
        "joint_groups": layout.group_index().tolist(),
    }


def _without_arch(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if k != "arch"}


def build_mae(args: dict[str, Any]) -> nn.Module:
    """The masked autoencoder described by ``mae_args`` (or a checkpoint's ``model_args``)."""
    return (GraphMAE if arch_of(args) == "graph_mae" else SkeletonMAE)(**_without_arch(args))


def encoder_args(args: dict[str, Any], drop_path: float = 0.0) -> dict[str, Any]:
    """The encoder's share of MAE or classifier constructor arguments (``drop_path``: transformer only)."""
    if arch_of(args) == "graph_mae":
        return {"arch": "graph_mae", **{k: args[k] for k in GRAPH_ENCODER_KEYS}}
    return {"arch": "st_mae", **{k: args[k] for k in ENCODER_KEYS}, "drop_path": drop_path}


def build_encoder(enc_args: dict[str, Any]) -> nn.Module:
    return (GraphEncoder if arch_of(enc_args) == "graph_mae" else SkeletonEncoder)(**_without_arch(enc_args))


def build_classifier(
    enc_args: dict[str, Any], head: str, num_classes: int, dropout: float = 0.3, strl_layers: int = 3
) -> SkeletonClassifier | STRLNet:
    """Encoder + head; ``head="strl"`` is the STRL network around a graph encoder."""
    encoder = build_encoder(enc_args)
    if head == "strl":
        if not isinstance(encoder, GraphEncoder):
            raise ConfigError("head 'strl' fine-tunes a graph encoder: it needs model.arch=graph_mae")
        return STRLNet(encoder, num_classes, layers=strl_layers, dropout=dropout)
    if head == "linear":
        module = LinearProbeHead(encoder.dim, num_classes)
    elif head == "mlp":
        module = FinetuneHead(encoder.dim, encoder.num_joints, num_classes, dropout=dropout)
    else:
        raise ValueError(f"head must be 'linear', 'mlp' or 'strl', got {head!r}")
    return SkeletonClassifier(encoder, module)


def encoder_state_from(checkpoint: dict[str, Any], source: str) -> dict[str, torch.Tensor]:
    """The encoder weights of an MAE or classifier checkpoint, keys relative to the encoder."""
    state = checkpoint["model"]
    prefix = "encoder."
    enc = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not enc:
        raise CheckpointError(f"{source}: no encoder weights (keys starting with 'encoder.')")
    return enc


def load_encoder_weights(encoder: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load encoder weights, resampling the temporal embedding if the window changed."""
    pos = state.get("temporal_pos")
    if pos is not None and pos.shape != encoder.temporal_pos.shape:
        resized = torch.nn.functional.interpolate(
            pos[0, :, 0].T[None], size=encoder.num_segments, mode="linear", align_corners=False
        )[0].T
        state = {**state, "temporal_pos": resized[None, :, None, :]}
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: encoder weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )

"""Building models from configs and checkpoints (the architecture travels in the checkpoint)."""

from __future__ import annotations

from typing import Any

import torch

from skelmae.config import MaskConfig, ModelConfig
from skelmae.data.layouts import SkeletonLayout
from skelmae.errors import CheckpointError
from skelmae.models.heads import FinetuneHead, LinearProbeHead, SkeletonClassifier
from skelmae.models.st_mae import SkeletonEncoder, SkeletonMAE

ENCODER_KEYS = ("in_channels", "num_joints", "num_frames", "segment", "dim", "depth", "heads", "mlp_ratio")


def mae_args(model: ModelConfig, mask: MaskConfig, layout: SkeletonLayout, channels: int, window: int) -> dict[str, Any]:
    return {
        "in_channels": channels,
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


def encoder_args(args: dict[str, Any], drop_path: float = 0.0) -> dict[str, Any]:
    """The encoder's share of MAE or classifier constructor arguments."""
    return {**{k: args[k] for k in ENCODER_KEYS}, "drop_path": drop_path}


def build_classifier(enc_args: dict[str, Any], head: str, num_classes: int, dropout: float = 0.3) -> SkeletonClassifier:
    encoder = SkeletonEncoder(**enc_args)
    if head == "linear":
        module = LinearProbeHead(encoder.dim, num_classes)
    elif head == "mlp":
        module = FinetuneHead(encoder.dim, encoder.num_joints, num_classes, dropout=dropout)
    else:
        raise ValueError(f"head must be 'linear' or 'mlp', got {head!r}")
    return SkeletonClassifier(encoder, module)


def encoder_state_from(checkpoint: dict[str, Any], source: str) -> dict[str, torch.Tensor]:
    """The encoder weights of an MAE or classifier checkpoint, keys relative to the encoder."""
    state = checkpoint["model"]
    prefix = "encoder."
    enc = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not enc:
        raise CheckpointError(f"{source}: no encoder weights (keys starting with 'encoder.')")
    return enc


def load_encoder_weights(encoder: SkeletonEncoder, state: dict[str, torch.Tensor], source: str) -> None:
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

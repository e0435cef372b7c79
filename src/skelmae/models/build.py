"""Building models from their description: registered names, typed configs and the input spec.

A model is described by plain data, which is what checkpoints store::

    input     InputSpec.to_dict(): layout, channels, num_frames
    backbone  {"name": "transformer", "config": {...}}    (skelmae.models.common.BACKBONES)
    method    {"name": "mae", "config": {...}}            pre-training checkpoints (METHODS)
    head      {"name": "mlp", "config": {...}}            classifier checkpoints (HEADS), with num_classes

:func:`upgrade_v1` turns the ``model_args`` of checkpoint version 1 into this description.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from skelmae.errors import CheckpointError, ConfigError
from skelmae.models.common import BACKBONES, HEADS, METHODS, Classifier, Encoder, InputSpec, PretrainMethod

__all__ = [
    "build_backbone", "build_method", "build_classifier", "encoder_state", "load_encoder_weights", "upgrade_v1",
]


def build_backbone(backbone: Mapping[str, Any], spec: InputSpec) -> Encoder:
    try:
        return BACKBONES.build(backbone["name"], backbone.get("config"), spec)
    except ValueError as exc:
        raise ConfigError(f"backbone {backbone['name']!r}: {exc}") from exc


def build_method(method: Mapping[str, Any], backbone: Mapping[str, Any], spec: InputSpec) -> PretrainMethod:
    """The pre-training method around a fresh backbone; refuses pairs the method cannot wrap."""
    entry = METHODS.get(method["name"])
    supported = entry.cls.backbones
    if supported and backbone["name"] not in supported:
        raise ConfigError(
            f"method {method['name']!r} pre-trains the backbone(s) {list(supported)}, not {backbone['name']!r} "
            f"(set model.arch={supported[0]})"
        )
    encoder = build_backbone(backbone, spec)
    try:
        return METHODS.build(method["name"], method.get("config"), encoder, spec)
    except ValueError as exc:
        raise ConfigError(f"method {method['name']!r}: {exc}") from exc


def build_classifier(
    backbone: Mapping[str, Any], head: Mapping[str, Any], spec: InputSpec, num_classes: int
) -> Classifier:
    encoder = build_backbone(backbone, spec)
    try:
        return HEADS.build(head["name"], head.get("config"), encoder, num_classes)
    except ValueError as exc:
        raise ConfigError(f"head {head['name']!r}: {exc}") from exc


def encoder_state(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """The encoder weights of a pre-training or classifier state dict, keys relative to the encoder."""
    prefix = "encoder."
    enc = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not enc:
        raise CheckpointError(f"{source}: no encoder weights (keys starting with 'encoder.')")
    return enc


def load_encoder_weights(encoder: Encoder, state: dict[str, torch.Tensor], source: str) -> None:
    missing, unexpected = encoder.load_state_dict(encoder.adapt_state_dict(state), strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: encoder weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )


_V1_BACKBONE = {  # v1 arch -> (backbone, its keys in model_args)
    "st_mae": ("transformer", ("segment", "dim", "depth", "heads", "mlp_ratio")),
    "graph_mae": ("gin", ("feat_dim", "hidden_dim", "encoder_layers")),
}
_V1_METHOD = {  # v1 arch -> (method, {new key: v1 key})
    "st_mae": ("mae", {"decoder_dim": "decoder_dim", "decoder_depth": "decoder_depth", "decoder_heads": "decoder_heads",
                       "mask": "mask_strategy", "ratio": "mask_ratio", "tau": "motion_tau", "target": "target",
                       "norm_target": "norm_target"}),
    "graph_mae": ("graph_mae", {"decoder_layers": "decoder_layers", "mask": "mask_strategy", "ratio": "mask_ratio",
                                "regions": "regions", "fixed_regions": "fixed_regions", "remask": "remask",
                                "beta": "beta", "edge_weight": "edge_weight"}),
}


def upgrade_v1(state: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The model description of a version-1 checkpoint (``model_args`` + ``head`` fields)."""
    args = state["model_args"]
    arch = args.get("arch", "st_mae")
    if arch not in _V1_BACKBONE:
        raise CheckpointError(f"{source}: unknown version-1 architecture {arch!r}")
    name, keys = _V1_BACKBONE[arch]
    config = {key: args[key] for key in keys}
    if arch == "st_mae":
        config["drop_path"] = args.get("drop_path", 0.0)
    data = state["data"]
    out: dict[str, Any] = {
        "input": {"layout": data["layout"], "channels": list(data["channels"]), "num_frames": args["num_frames"]},
        "backbone": {"name": name, "config": config},
    }
    if state["kind"] == "mae":
        method, mapping = _V1_METHOD[arch]
        out.update(kind="pretrain", method={"name": method, "config": {new: args[old] for new, old in mapping.items()}})
        return out
    head = state["head"]
    dropout = state.get("head_dropout", 0.3)
    head_config = {"linear": {}, "mlp": {"dropout": dropout}, "strl": {"layers": state.get("strl_layers", 3), "dropout": dropout}}
    out.update(kind="classifier", head={"name": head, "config": head_config[head]}, num_classes=state["num_classes"])
    return out

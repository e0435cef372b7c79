"""What every model shares: the input description, the encoder and method interfaces, the
registries, and small helpers (person folding, outputs).

A **backbone** (encoder) maps a batch of clips (N, C, T, V, M) to per-person, per-step,
per-joint features (N, M, T', V, dim). A **pre-training method** wraps a backbone and
returns a loss for a batch. A **head** turns a backbone into a classifier. Each is one
registered class with a typed config dataclass (see :mod:`skelmae.registry`); the
checkpoint stores the registered names, the configs and the :class:`InputSpec`, and
:mod:`skelmae.models.build` rebuilds the model from them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from skelmae.data.layouts import SkeletonLayout, get_layout
from skelmae.data.transforms import is_planar
from skelmae.registry import Registry

__all__ = [
    "InputSpec", "Encoder", "PretrainMethod", "Classifier", "MethodOutput", "fold_persons", "present_persons",
    "person_mean", "BACKBONES", "METHODS", "HEADS",
]


def fold_persons(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, V, M) -> (N*M, T, V, C), person-minor so persons of a sample are adjacent."""
    n, c, t, v, m = x.shape
    return x.permute(0, 4, 2, 3, 1).reshape(n * m, t, v, c)


def present_persons(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, V, M) -> (N, M) bool: a person slot is present unless it is all-zero over the
    clip (the padding of NTU-style data, where most samples have one person of two). A sample
    with no person at all keeps its first slot, so that every sample has one."""
    present = x.ne(0).any(dim=3).any(dim=2).any(dim=1)
    first = torch.arange(x.shape[-1], device=x.device) == 0
    return present | (first & ~present.any(dim=1, keepdim=True))


def person_mean(values: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
    """(N, M, ...) values -> (N, ...): the mean over the present persons of each sample (over
    all persons when ``present`` is None)."""
    if present is None:
        return values.mean(dim=1)
    weights = present.to(values.dtype).reshape(present.shape + (1,) * (values.ndim - 2))
    return (values * weights).sum(dim=1) / weights.sum(dim=1)


@dataclass(frozen=True)
class InputSpec:
    """The shape of the data a model is built for: layout, channels and clip length."""

    layout: SkeletonLayout
    channels: tuple[str, ...]
    num_frames: int

    @property
    def in_channels(self) -> int:
        return len(self.channels)

    @property
    def num_joints(self) -> int:
        return self.layout.num_joints

    @property
    def coord_channels(self) -> int:
        """Channels that are coordinates (2 for (x, y, score) poses, else 3)."""
        return 2 if is_planar(list(self.channels)) else 3

    def with_frames(self, num_frames: int) -> InputSpec:
        return InputSpec(self.layout, self.channels, num_frames)

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout.to_dict(), "channels": list(self.channels), "num_frames": self.num_frames}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> InputSpec:
        return cls(get_layout(spec["layout"]), tuple(spec["channels"]), int(spec["num_frames"]))

    @classmethod
    def of(cls, layout: SkeletonLayout | str, channels: Sequence[str], num_frames: int) -> InputSpec:
        return cls(get_layout(layout), tuple(channels), int(num_frames))


@dataclass
class MethodOutput:
    loss: torch.Tensor
    pred: torch.Tensor | None = None  # (B, L, P) reconstructions of the masked units (method-specific space)
    target: torch.Tensor | None = None  # (B, L, P) targets in the same space
    mask: torch.Tensor | None = None  # (B, L), 1 = masked; all three None for methods that do not reconstruct
    rows: torch.Tensor | None = None  # (B,) the folded person rows (sample * M + person) pred/target/mask are of


class Encoder(nn.Module, ABC):
    """A backbone: (N, C, T, V, M) -> features (N, M, T', V, ``dim``).

    ``num_layers`` and ``layer_id`` drive layer-wise lr decay: a parameter named (relative
    to the encoder) gets a layer in 0..num_layers - 1, and whatever sits on top of the
    encoder (heads) is layer ``num_layers``.
    """

    dim: int
    num_joints: int
    # Persons are encoded independently (nothing mixes person slots), so an absent person can be
    # left out: its features are zero and it does not count in the person mean. Backbones that
    # normalise over the person slots together (ST-GCN's data BatchNorm) keep every slot.
    independent_persons: bool = False
    # Leave absent persons out of the computation (their features are zero either way); off
    # computes every slot, as the reference implementations do (static shapes for export).
    skip_absent: bool = True
    # Feature steps per clip when the clip length fixes them (the probe's per-step features
    # need it); None where the backbone does not say.
    num_steps: int | None = None

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    @property
    def feature_layers(self) -> int:
        """How many of its last layers :meth:`layer_features` can concatenate."""
        return 1

    def layer_features(self, x: torch.Tensor, layers: int = 1) -> torch.Tensor:
        """The features of the last ``layers`` layers concatenated along the feature axis
        (N, M, S, V, layers * dim): a probe on several layers sees what the last one may have
        specialised away for reconstruction. Backbones give their last layer only unless they
        override this (and :attr:`feature_layers`)."""
        if layers != 1:
            raise ValueError(f"{type(self).__name__} gives the features of its last layer only, got layers={layers}")
        return self.forward(x)

    def present(self, x: torch.Tensor) -> torch.Tensor:
        """(N, M) bool: the person slots that count in this encoder's features and pooling."""
        if self.independent_persons:
            return present_persons(x)
        return torch.ones(x.shape[0], x.shape[-1], dtype=torch.bool, device=x.device)

    @property
    @abstractmethod
    def num_layers(self) -> int: ...

    @abstractmethod
    def layer_id(self, name: str) -> int: ...

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The clip embedding (N, dim): features averaged over time and joints, then over the
        present persons."""
        return person_mean(self.forward(x).mean(dim=(2, 3)), self.present(x))

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Pre-trained weights made to fit this encoder (e.g. another clip length)."""
        return state


class PretrainMethod(nn.Module, ABC):
    """A self-supervised objective around a backbone (``.encoder``)."""

    encoder: Encoder
    backbones: tuple[str, ...] = ()  # the registered backbones it can wrap; empty: any
    views: int = 1  # augmented views of each clip it takes: x is (N, C, T, V, M), or (N, views, C, T, V, M)

    @abstractmethod
    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, shard: tuple[int, int] = (0, 1)
    ) -> MethodOutput:
        """``generator`` and ``shard`` (rank, world size) make random choices independent of
        the number of processes."""

    def after_optimizer_step(self, progress: float) -> None:
        """Called after every optimiser step (e.g. a momentum-encoder update); ``progress`` is
        the fraction of the run's optimiser steps done, in (0, 1]."""


class Classifier(nn.Module, ABC):
    """A backbone (``.encoder``) with a classification head; ``features`` is the clip embedding."""

    encoder: Encoder

    @abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    def auxiliary_loss(self, labels: torch.Tensor) -> torch.Tensor | None:
        """A training regulariser that needs the labels (InfoGCN's information bottleneck),
        computed from the most recent training forward, to add to the classification loss;
        None for heads without one. Training calls the module through its DDP wrapper and
        then this on the module itself, so the forward keeps what it needs."""
        return None


BACKBONES: Registry[Encoder] = Registry("backbone")
METHODS: Registry[PretrainMethod] = Registry("pre-training method")
HEADS: Registry[Classifier] = Registry("head")

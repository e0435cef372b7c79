"""The clip itself as the feature: the baseline a learned encoder has to beat.

``init=raw`` in ``skelmae linear`` (or ``knn``) gives this backbone: no parameters, each
person's clip, exactly as the data pipeline hands it to every encoder (cropped and
resampled to ``data.window`` frames, centred, view-aligned where the preset says so), is
flattened into one vector. Under the linear probe's BatchNorm that is a linear classifier on
standardised coordinates, so a results table can show what pre-training adds over the data
alone as well as over a random encoder.
"""

from __future__ import annotations

import torch

from skelmae.models.common import BACKBONES, Encoder, InputSpec

RAW_INIT = "raw"  # the ``init`` value that selects this backbone instead of a checkpoint


@BACKBONES.register(RAW_INIT)
class RawClip(Encoder):
    """(N, C, T, V, M) -> (N, M, 1, 1, C·T·V): one flat vector per person, ``dim = C·T·V``."""

    def __init__(self, spec: InputSpec):
        super().__init__()
        self.num_frames = spec.num_frames
        self.num_joints, self.dim = 1, spec.in_channels * spec.num_frames * spec.num_joints

    @property
    def num_layers(self) -> int:
        return 1

    def layer_id(self, name: str) -> int:
        return self.num_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        if c * t * v != self.dim:
            raise ValueError(f"raw features are built for {self.num_frames}-frame clips, got {t} frames")
        return x.permute(0, 4, 1, 2, 3).reshape(n, m, 1, 1, self.dim)

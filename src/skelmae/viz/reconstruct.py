"""Turning a masked autoencoder's per-token predictions back into joints that can be drawn.

The MAE predicts, for every token (``segment`` frames x 1 joint), the token's target: its
coordinates (``coords``) or its next-frame motion x[t+1] - x[t] (``motion``), standardised
per token when ``norm_target`` is set. For display:

1. Standardised predictions are un-normalised with the mean and standard deviation of the
   *true* token, as the MAE paper's visualisation does: a model trained on standardised
   targets never predicts a token's offset and scale, so its output has no absolute
   position without them.
2. Motion predictions are integrated inside the token from the token's true first frame:
   x'[s] = x[s] and x'[s + k] = x[s] + m'[s] + ... + m'[s + k - 1] for k < ``segment``.
   The token's last predicted motion points into the next token and is not drawn.
   Anchoring every token on its true first frame keeps errors from piling up over long
   masked spans, so the picture shows the predicted motion, not accumulated drift.
3. Visible tokens show their true values (the loss never covers them; the MAE paper
   overlays them the same way); only masked tokens show predictions.
4. Persons absent from the input (all zeros) stay absent, and a score channel is copied
   from the input, so fading shows the pose detector's confidence, not the model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from skelmae.data.layouts import SkeletonLayout
from skelmae.models.st_mae import SkeletonMAE, fold_persons, motion_target, patchify
from skelmae.viz.render import Camera, Panel, SequenceRenderer, save_rendering

__all__ = [
    "Reconstruction", "unpatchify", "predicted_positions", "reconstruct", "reconstruction_panels", "render_reconstruction",
]

NORM_EPS = 1.0e-6  # the variance epsilon of SkeletonMAE.make_target


@dataclass
class Reconstruction:
    """One sample: ``input`` and ``output`` are (T, M, V, C); ``masked`` is (T, M, V)."""

    input: np.ndarray
    masked: np.ndarray
    output: np.ndarray
    loss: float


def unpatchify(tokens: torch.Tensor, segment: int) -> torch.Tensor:
    """(B, S, V, segment * C) -> (B, S * segment, V, C): the inverse of ``patchify``."""
    b, s, v, p = tokens.shape
    return tokens.reshape(b, s, v, segment, p // segment).permute(0, 1, 3, 2, 4).reshape(b, s * segment, v, p // segment)


def predicted_positions(
    pred: torch.Tensor, seq: torch.Tensor, target: str, norm_target: bool, segment: int
) -> torch.Tensor:
    """Per-token predictions (B, L, P) -> joint values (B, T, V, C) of every token, using the
    true sequence ``seq`` (B, T, V, C) for token statistics and motion anchors."""
    b, t, v, c = seq.shape
    if norm_target:
        source = motion_target(seq) if target == "motion" else seq
        true_tokens = patchify(source, segment).flatten(1, 2)
        mean, var = true_tokens.mean(dim=-1, keepdim=True), true_tokens.var(dim=-1, keepdim=True)
        pred = pred * (var + NORM_EPS) ** 0.5 + mean
    values = unpatchify(pred.reshape(b, t // segment, v, segment * c), segment)
    if target == "coords":
        return values
    motion = values.reshape(b, t // segment, segment, v, c)
    anchor = seq.reshape(b, t // segment, segment, v, c)[:, :, :1]
    return (anchor + torch.cumsum(motion, dim=2) - motion).reshape(b, t, v, c)


@torch.no_grad()
def reconstruct(
    model: SkeletonMAE, x: torch.Tensor, generator: torch.Generator | None = None, score_channel: int | None = None
) -> Reconstruction:
    """Masks and reconstructs one preprocessed sample ``x`` (1, C, T, V, M)."""
    if x.ndim != 5 or x.shape[0] != 1:
        raise ValueError(f"expected one sample of shape (1, C, T, V, M), got {tuple(x.shape)}")
    model.eval()
    out = model(x, generator=generator)
    seq = fold_persons(x).float()  # (M, T, V, C)
    segment = model.encoder.segment
    present = seq[out.rows]  # the persons the model reconstructed; absent ones stay zero and unmasked
    positions = predicted_positions(out.pred.float(), present, model.target, model.norm_target, segment)
    masked = torch.zeros(seq.shape[:3], dtype=torch.bool, device=seq.device)
    masked[out.rows] = out.mask.bool().reshape(present.shape[0], -1, seq.shape[2]).repeat_interleave(segment, dim=1)
    output = seq.clone()
    output[out.rows] = torch.where(masked[out.rows][..., None], positions, present)
    if score_channel is not None:
        output[..., score_channel] = seq[..., score_channel]
    output[~seq.ne(0).any(dim=3).any(dim=2)] = 0
    to_tmvc = (1, 0, 2, 3)
    return Reconstruction(
        input=seq.permute(*to_tmvc).cpu().numpy(),
        masked=masked.permute(1, 0, 2).cpu().numpy(),
        output=output.permute(*to_tmvc).cpu().numpy(),
        loss=float(out.loss),
    )


def reconstruction_panels(rec: Reconstruction) -> list[Panel]:
    """Input | input with masked tokens greyed | visible tokens + predictions (ringed)."""
    return [
        Panel("input", rec.input),
        Panel("masked tokens (grey)", rec.input, greyed=rec.masked),
        Panel("reconstruction (ringed: predicted)", rec.output, predicted=rec.masked),
    ]


def render_reconstruction(
    mae: SkeletonMAE,
    rec: Reconstruction,
    layout: SkeletonLayout,
    channels: Sequence[str],
    out: str | Path,
    title: str = "",
    camera: Camera = Camera(),
    fps: float = 30.0,
    sheet_frames: int = 8,
    stride: int = 1,
) -> list[Path]:
    """Draws the three :func:`reconstruction_panels` side by side; the title adds how ``mae``
    masks and what it predicts, so a picture says what it shows. Returns the files written."""
    target = f"{mae.target} target" + (", per-token normalised" if mae.norm_target else "")
    title = f"{title} | {mae.mask_strategy} masking {mae.mask_ratio:.0%}, {target}; masked-token loss {rec.loss:.3f}"
    renderer = SequenceRenderer(reconstruction_panels(rec), layout, channels, camera, title=title)
    return save_rendering(renderer, out, fps=fps, sheet_frames=sheet_frames, stride=stride)

"""Token masking strategies for skeleton MAEs.

Tokens lie on a (segments S) x (joints V) grid, flattened time-major (index = s * V + v).
Every strategy assigns each token a random score and keeps the ``n_visible`` tokens with
the lowest scores, so all strategies keep exactly the same number of tokens per sample
(batching needs equal counts) and differ only in which tokens tend to survive:

``random``          uniform over tokens (MAE; the SkeletonMAE baseline as re-run by MAMP)
``joint``           one score per joint, shared over time: whole joints are masked
``frame``           one score per segment, shared over joints: whole frames are masked
``spatiotemporal``  max(joint score, segment score): the kept tokens form a grid of kept
                    joints x kept segments, so a token is masked when its joint *or* its
                    frame is masked (SkeletonMAE's joint-level + frame-level masking)
``bodypart``        one score per body-part group of the layout: whole limbs are masked
``motion``          MAMP motion-aware masking: Gumbel-perturbed log-probabilities that
                    favour masking tokens that move more (temperature ``tau``)

``n_visible = int(S * V * (1 - ratio))``, which is 74 for 750 tokens at ratio 0.9 as in
MAMP. When a structured strategy's unit does not divide that count, the last unit is
kept partially (the lowest per-token tie-break wins), which keeps the count exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

STRATEGIES = ("random", "joint", "frame", "spatiotemporal", "bodypart", "motion")

__all__ = ["STRATEGIES", "MaskResult", "visible_count", "token_motion", "mask_tokens"]


@dataclass
class MaskResult:
    ids_keep: torch.Tensor  # (B, n_visible) token indices given to the encoder, ascending
    ids_restore: torch.Tensor  # (B, L) position of each grid token in [kept, masked] order
    mask: torch.Tensor  # (B, L) float, 1 = masked


def visible_count(num_tokens: int, ratio: float) -> int:
    if not 0 <= ratio < 1:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    return max(1, int(num_tokens * (1 - ratio)))


def token_motion(patches: torch.Tensor) -> torch.Tensor:
    """Mean absolute change of each token w.r.t. the same joint's previous segment.

    ``patches``: (B, S, V, P). The first segment reuses the second's value (MAMP).
    """
    diff = (patches[:, 1:] - patches[:, :-1]).abs().mean(-1)  # (B, S-1, V)
    return torch.cat([diff[:, :1], diff], dim=1) if patches.shape[1] > 1 else torch.zeros_like(patches[..., 0])


def _scores(
    strategy: str,
    batch: int,
    segments: int,
    joints: int,
    device: torch.device,
    generator: torch.Generator | None,
    patches: torch.Tensor | None,
    joint_groups: torch.Tensor | None,
    tau: float,
    shard: tuple[int, int],
    rows_per_sample: int,
) -> torch.Tensor:
    rank, world = shard

    def rand(*shape: int) -> torch.Tensor:  # this rank's samples of the global batch's noise
        noise = torch.rand(shape[0] * world, *shape[1:], device=device, generator=generator)
        per_sample = noise.reshape(-1, rows_per_sample, *shape[1:])
        return per_sample[rank::world].reshape(shape)

    tie = rand(batch, segments, joints) * 1e-3  # orders tokens within a unit
    if strategy == "random":
        return rand(batch, segments, joints)
    if strategy == "joint":
        return rand(batch, 1, joints) + tie
    if strategy == "frame":
        return rand(batch, segments, 1) + tie
    if strategy == "spatiotemporal":
        return torch.maximum(rand(batch, 1, joints), rand(batch, segments, 1)) + tie
    if strategy == "bodypart":
        if joint_groups is None:
            raise ValueError("bodypart masking needs the layout's joint groups")
        per_group = rand(batch, int(joint_groups.max()) + 1)
        return per_group[:, joint_groups.to(device)][:, None, :] + tie
    if strategy == "motion":
        if patches is None:
            raise ValueError("motion-aware masking needs the input patches")
        motion = token_motion(patches).reshape(batch, -1)
        logits = motion / (motion.max(dim=-1, keepdim=True).values * tau + 1e-10)
        log_p = torch.log_softmax(logits, dim=-1)
        uniform = rand(batch, segments * joints).clamp(1e-20, 1 - 1e-7)
        gumbel = -torch.log(-torch.log(uniform))
        # keep the lowest: tokens with high motion (high log_p + noise) are masked more often
        return (log_p + gumbel).reshape(batch, segments, joints)
    raise ValueError(f"unknown mask strategy {strategy!r}; expected one of {STRATEGIES}")


def mask_tokens(
    strategy: str,
    ratio: float,
    batch: int,
    segments: int,
    joints: int,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    patches: torch.Tensor | None = None,
    joint_groups: torch.Tensor | None = None,
    tau: float = 0.8,
    shard: tuple[int, int] = (0, 1),
    rows_per_sample: int = 1,
) -> MaskResult:
    """Choose the visible tokens of each row (no Python loop over the batch).

    ``shard = (rank, world_size)``: the noise is drawn for the whole global batch and this
    rank keeps samples ``rank::world_size`` (those the distributed sampler gave it; a
    sample is ``rows_per_sample`` consecutive rows, e.g. its persons), so with the same
    generator seed every sample gets the same mask on 1 or N processes.
    """
    device = torch.device(device)
    scores = _scores(
        strategy, batch, segments, joints, device, generator, patches, joint_groups, tau, shard, rows_per_sample
    )
    num_tokens = segments * joints
    n_keep = visible_count(num_tokens, ratio)
    ids_shuffle = torch.argsort(scores.reshape(batch, num_tokens), dim=1)
    ids_keep = torch.sort(ids_shuffle[:, :n_keep], dim=1).values
    ids_masked = ids_shuffle[:, n_keep:]
    order = torch.cat([ids_keep, ids_masked], dim=1)
    ids_restore = torch.argsort(order, dim=1)
    mask = torch.ones(batch, num_tokens, device=device)
    mask.scatter_(1, ids_keep, 0.0)
    return MaskResult(ids_keep=ids_keep, ids_restore=ids_restore, mask=mask)

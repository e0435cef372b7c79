"""Token masking strategies for skeleton MAEs.

Tokens lie on a (segments S) x (joints V) grid, flattened time-major (index = s * V + v).
Every strategy gives each token a sort key and the ``n_visible`` tokens with the lowest
keys are kept, so all strategies keep exactly the same number of tokens per sample
(batching needs equal counts) and differ only in which tokens tend to survive:

``random``          uniform over tokens (MAE; the SkeletonMAE baseline as re-run by MAMP)
``joint``           whole joints are masked (the unit is a joint, shared over time)
``frame``           whole frames are masked (the unit is a segment, shared over joints)
``spatiotemporal``  a token is masked when its joint *or* its frame is masked, so the kept
                    tokens form a grid of kept joints x kept segments (SkeletonMAE's
                    joint-level + frame-level masking)
``bodypart``        whole limbs are masked (the unit is a body-part group of the layout)
``motion``          MAMP motion-aware masking: Gumbel-perturbed log-probabilities that
                    favour masking tokens that move more (temperature ``tau``)

``n_visible = int(S * V * (1 - ratio))``, which is 74 for 750 tokens at ratio 0.9 as in
MAMP. Structured strategies use an exact rule: the units are put in a random order and
tokens are sorted by (rank of their unit, random within-unit tie-break), compared as
integers. Whole units are therefore kept in rank order and, when a unit does not divide
``n_visible``, only the one unit at the boundary is kept partially, which keeps the count
exact. (Adding small noise to unit scores instead lets tokens of neighbouring units
interleave whenever two scores are closer than the noise.)

``spatiotemporal`` ranks the V joints and S segments together in one random order, and a
token's unit is whichever of its joint and its segment comes later in it (rank =
max(joint rank, segment rank)). Growing the kept set unit by unit adds a whole joint
column over the segments already kept, or a whole segment row over the joints already
kept, so the kept tokens are the full grid of the first ``a`` joints x first ``b``
segments plus, at most, part of one more column over those ``b`` segments or one more row
over those ``a`` joints.

``random`` and ``motion`` have no units: their keys are the token scores themselves. The
within-unit tie-break is drawn first for every strategy, so their noise (and masks) are
those of earlier versions for the same generator.

Strategies are registered in :data:`MASKING`; one with options is a dataclass that is its
own typed config (``motion``'s ``tau``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

import torch

from skelmae.registry import Registry

__all__ = [
    "MASKING", "STRATEGIES", "MaskContext", "MaskResult", "MaskingStrategy", "visible_count", "token_motion",
    "mask_tokens", "sharded_rand",
]


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


def sharded_rand(
    shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None,
    shard: tuple[int, int] = (0, 1), rows_per_sample: int = 1,
) -> torch.Tensor:
    """Uniform noise for this rank's rows: drawn for the whole global batch, then the
    samples ``rank::world_size`` (``rows_per_sample`` consecutive rows each) are kept."""
    rank, world = shard
    noise = torch.rand(shape[0] * world, *shape[1:], device=device, generator=generator)
    return noise.reshape(-1, rows_per_sample, *shape[1:])[rank::world].reshape(shape)


@dataclass(frozen=True)
class MaskContext:
    """The token grid of this rank's rows and the noise a strategy draws from it."""

    batch: int
    segments: int
    joints: int
    device: torch.device
    generator: torch.Generator | None
    shard: tuple[int, int]
    rows_per_sample: int
    tie: torch.Tensor  # (B, S, V) uniform within-unit tie-break, drawn before the strategy's own noise
    patches: torch.Tensor | None = None
    joint_groups: torch.Tensor | None = None

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform noise of shape (batch, *shape), the same for a sample on 1 or N processes."""
        return sharded_rand((self.batch, *shape), self.device, self.generator, self.shard, self.rows_per_sample)


class MaskingStrategy(Protocol):
    def keys(self, ctx: MaskContext) -> torch.Tensor:
        """(B, S, V) sort keys; the tokens with the lowest keys are kept."""
        ...


MASKING: Registry[MaskingStrategy] = Registry("masking strategy")


def _ranks(scores: torch.Tensor) -> torch.Tensor:
    """Rank of each entry along the last dim: a uniformly random permutation for uniform noise."""
    return scores.argsort(dim=-1).argsort(dim=-1)


def _unit_keys(unit_rank: torch.Tensor, tie: torch.Tensor) -> torch.Tensor:
    """Integer keys ordering tokens by (unit rank, tie-break); ``unit_rank`` broadcasts to ``tie``."""
    tie_rank = _ranks(tie.flatten(1)).view_as(tie)
    return unit_rank * tie[0].numel() + tie_rank


@MASKING.register("random")
@dataclass
class RandomMasking:
    """Uniform over tokens."""

    def keys(self, ctx: MaskContext) -> torch.Tensor:
        return ctx.rand(ctx.segments, ctx.joints)


@MASKING.register("joint")
@dataclass
class JointMasking:
    """Whole joints, in random order."""

    def keys(self, ctx: MaskContext) -> torch.Tensor:
        return _unit_keys(_ranks(ctx.rand(ctx.joints))[:, None, :], ctx.tie)


@MASKING.register("frame")
@dataclass
class FrameMasking:
    """Whole segments, in random order."""

    def keys(self, ctx: MaskContext) -> torch.Tensor:
        return _unit_keys(_ranks(ctx.rand(ctx.segments))[:, :, None], ctx.tie)


@MASKING.register("spatiotemporal")
@dataclass
class SpatioTemporalMasking:
    """A grid of kept joints x kept segments (rule in the module docstring)."""

    def keys(self, ctx: MaskContext) -> torch.Tensor:
        ranks = _ranks(torch.cat([ctx.rand(ctx.joints), ctx.rand(ctx.segments)], dim=1))
        joint_rank, segment_rank = ranks[:, None, : ctx.joints], ranks[:, ctx.joints :, None]
        return _unit_keys(torch.maximum(joint_rank, segment_rank), ctx.tie)


@MASKING.register("bodypart")
@dataclass
class BodyPartMasking:
    """Whole body-part groups of the layout, in random order."""

    def keys(self, ctx: MaskContext) -> torch.Tensor:
        if ctx.joint_groups is None:
            raise ValueError("bodypart masking needs the layout's joint groups")
        groups = ctx.joint_groups.to(ctx.device)
        group_rank = _ranks(ctx.rand(int(groups.max()) + 1))
        return _unit_keys(group_rank[:, groups][:, None, :], ctx.tie)


@MASKING.register("motion")
@dataclass
class MotionMasking:
    """MAMP motion-aware masking: tokens that move more are masked more often."""

    tau: float = 0.8  # softmax temperature, relative to the sample's largest motion

    def keys(self, ctx: MaskContext) -> torch.Tensor:
        if ctx.patches is None:
            raise ValueError("motion-aware masking needs the input patches")
        motion = token_motion(ctx.patches).reshape(ctx.batch, -1)
        logits = motion / (motion.max(dim=-1, keepdim=True).values * self.tau + 1e-10)
        log_p = torch.log_softmax(logits, dim=-1)
        uniform = ctx.rand(ctx.segments * ctx.joints).clamp(1e-20, 1 - 1e-7)
        gumbel = -torch.log(-torch.log(uniform))
        # keep the lowest: tokens with high motion (high log_p + noise) are masked more often
        return (log_p + gumbel).reshape(ctx.batch, ctx.segments, ctx.joints)


STRATEGIES: tuple[str, ...] = tuple(MASKING.names())


def _build(strategy: str, tau: float) -> MaskingStrategy:
    """The registered strategy, given those of mask_tokens' options that its config declares."""
    schema = MASKING.get(strategy).config
    declared = {f.name for f in dataclasses.fields(schema)} if schema is not None else set()
    options = {"tau": tau}
    return MASKING.build(strategy, {k: v for k, v in options.items() if k in declared})


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
    chosen = _build(strategy, tau)
    tie = sharded_rand((batch, segments, joints), device, generator, shard, rows_per_sample)
    ctx = MaskContext(batch, segments, joints, device, generator, shard, rows_per_sample, tie, patches, joint_groups)
    num_tokens = segments * joints
    n_keep = visible_count(num_tokens, ratio)
    ids_shuffle = torch.argsort(chosen.keys(ctx).reshape(batch, num_tokens), dim=1)
    ids_keep = torch.sort(ids_shuffle[:, :n_keep], dim=1).values
    ids_masked = ids_shuffle[:, n_keep:]
    order = torch.cat([ids_keep, ids_masked], dim=1)
    ids_restore = torch.argsort(order, dim=1)
    mask = torch.ones(batch, num_tokens, device=device)
    mask.scatter_(1, ids_keep, 0.0)
    return MaskResult(ids_keep=ids_keep, ids_restore=ids_restore, mask=mask)

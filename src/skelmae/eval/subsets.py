"""Fixed, seeded sample subsets: validation splits and semi-supervised label subsets.

Both are class-stratified and drawn once from a seed, before any per-rank seeding, so
every process and every rerun uses the same samples (the reference semi-supervised code
drew a different random subset on each GPU). Semi-supervised subsets are saved as index
files and reused, so reported numbers can be traced to the exact labelled samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skelmae.atomic import atomic_output
from skelmae.errors import DataFormatError


def stratified_pick(labels: np.ndarray, fraction: float, seed: int, at_least_one: bool = True) -> np.ndarray:
    """Positions (into ``labels``) of about ``fraction`` of each class, drawn with ``seed``.

    Each class contributes ``round(fraction * n_class)`` samples (at least one when asked),
    so rare classes are represented and the total is close to ``fraction * len(labels)``.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng([seed, 0x5E1])
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        count = int(round(fraction * members.size))
        if at_least_one:
            count = max(count, 1)
        picked.append(rng.choice(members, size=min(count, members.size), replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def carve_validation(
    indices: np.ndarray, labels: np.ndarray, fraction: float, seed: int, groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split dataset ``indices`` (with their ``labels``) into (train, validation) parts.

    With ``groups`` (e.g. each sample's subject) validation holds whole groups, drawn with
    ``seed`` until they reach ``fraction`` of the samples: on a small set, clips of the
    training subjects are near copies of training clips, so a random share of them
    saturates near 100 % and cannot tell epochs apart."""
    if fraction <= 0:
        return indices, indices[:0]
    if groups is not None:
        return _carve_groups(indices, groups, fraction, seed)
    val_pos = stratified_pick(labels, fraction, seed)
    keep = np.ones(indices.size, dtype=bool)
    keep[val_pos] = False
    return indices[keep], indices[val_pos]


def _carve_groups(indices: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    values = np.unique(groups)
    if values.size < 2:
        raise ValueError(f"a group-wise validation split needs at least 2 groups in the training split, found {values.size}")
    order = np.random.default_rng([seed, 0x6A1]).permutation(values)
    sizes = np.array([(groups == g).sum() for g in order])
    chosen = max(1, min(int(np.searchsorted(np.cumsum(sizes), fraction * groups.size) + 1), values.size - 1))
    held = np.isin(groups, order[:chosen])
    return indices[~held], indices[held]


def subset_path(root: str | Path, split: str, fraction: float, seed: int) -> Path:
    return Path(root) / "subsets" / f"{split}-{fraction * 100:g}pct-seed{seed}.npy"


def labelled_subset(
    indices: np.ndarray, labels: np.ndarray, fraction: float, seed: int, path: Path
) -> np.ndarray:
    """The semi-supervised subset of ``indices``: read from ``path`` if present, else drawn and saved."""
    if path.is_file():
        subset = np.load(path, allow_pickle=False)
        if subset.ndim != 1 or not np.isin(subset, indices).all():
            raise DataFormatError(path, None, "subset indices are not all in the training split",
                                  "an index file written by `skelmae semi` for this split")
        return subset.astype(np.int64)
    subset = indices[stratified_pick(labels, fraction, seed)]
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, subset)
    return subset

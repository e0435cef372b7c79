"""PyTorch access to a dataset folder: windows of shape (C, T, V, M) and a seeded sampler.

Augmentation randomness is keyed on (seed, epoch, sample index) through the sampler, not
on worker-process state, so a run gives the same batches with 0 or 8 workers, on 1 or 8
ranks (up to the rank split), and after a resume.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from skelmae.data.storage import SkeletonStore
from skelmae.data.transforms import Compose, Views

__all__ = ["SkeletonDataset", "SeededSampler"]


class SkeletonDataset(Dataset):
    """Samples of one split (or explicit indices) as ``(x, label)`` with x float32 (C, T, V, M).

    Items are requested as ``(index, seed)`` by :class:`SeededSampler`; a plain integer
    index uses seed 0 (deterministic, e.g. for evaluation).
    """

    def __init__(
        self,
        store: SkeletonStore | str | Path,
        split: str | None = None,
        transform: Compose | Views | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
    ):
        self.store = store if isinstance(store, SkeletonStore) else SkeletonStore(store)
        if indices is not None:
            self.indices = np.asarray(indices, dtype=np.int64)
        elif split is not None:
            self.indices = self.store.split(split)
        else:
            self.indices = np.arange(len(self.store), dtype=np.int64)
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def labels(self) -> np.ndarray:
        return self.store.labels[self.indices]

    def raw(self, i: int) -> np.ndarray:
        """The stored sequence of item ``i`` as (C, T, V, M), before any transform."""
        return self.store.sequence(int(self.indices[i])).transpose(3, 0, 2, 1)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        i, seed = key if isinstance(key, tuple) else (key, 0)
        x = self.raw(i)
        if self.transform is not None:
            x = self.transform(x, np.random.default_rng([seed, int(self.indices[i])]))
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), int(self.store.labels[self.indices[i]])


class SeededSampler(Sampler):
    """Shuffles (optionally) per epoch and yields ``(index, sample_seed)`` pairs; rank-aware.

    With ``world_size > 1`` each rank takes every ``world_size``-th item of the epoch's
    order. ``drop_last=False`` pads by repeating items (training); evaluation should use
    ``pad=False`` so each sample is seen exactly once across ranks.
    """

    def __init__(
        self,
        length: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ):
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> np.ndarray:
        if self.shuffle:
            return np.random.default_rng([self.seed, self.epoch]).permutation(self.length)
        return np.arange(self.length)

    def __len__(self) -> int:
        if self.pad:
            return math.ceil(self.length / self.world_size)
        return len(range(self.rank, self.length, self.world_size))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self._order()
        if self.pad and self.length % self.world_size:
            extra = self.world_size - self.length % self.world_size
            order = np.concatenate([order, order[:extra]])
        sample_seed = int(np.random.default_rng([self.seed, self.epoch, 7]).integers(2**31))
        for i in order[self.rank :: self.world_size]:
            yield int(i), sample_seed

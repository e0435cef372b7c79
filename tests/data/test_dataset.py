import numpy as np
import torch
from torch.utils.data import DataLoader

from skelmae.data.dataset import SeededSampler, SkeletonDataset
from skelmae.data.layouts import get_layout
from skelmae.data.storage import SkeletonStore
from skelmae.data.transforms import build_transforms


def test_items_are_ctvm_windows(tiny_synth):
    store = SkeletonStore(tiny_synth)
    ds = SkeletonDataset(store, "train", build_transforms(store.layout, 32, train=True))
    x, y = ds[(0, 5)]
    assert x.shape == (3, 32, 25, 2) and x.dtype == torch.float32
    assert y == store.labels[store.split("train")[0]]
    raw = ds.raw(0)
    assert raw.shape[0] == 3 and raw.shape[2:] == (25, 2)


def test_augmentation_is_keyed_on_seed_and_index(tiny_synth):
    ds = SkeletonDataset(tiny_synth, "train", build_transforms(get_layout("ntu25"), 32, train=True))
    assert torch.equal(ds[(3, 11)][0], ds[(3, 11)][0])
    assert not torch.equal(ds[(3, 11)][0], ds[(3, 12)][0])


def test_sampler_epochs_and_ranks():
    s = SeededSampler(10, shuffle=True, seed=0)
    s.set_epoch(0)
    e0 = [i for i, _ in s]
    s.set_epoch(1)
    e1 = [i for i, _ in s]
    assert sorted(e0) == sorted(e1) == list(range(10)) and e0 != e1
    ranks = [SeededSampler(10, shuffle=True, seed=0, rank=r, world_size=3) for r in range(3)]
    seen = [i for r in ranks for i, _ in r]
    assert len(seen) == 12 and set(seen) == set(range(10))  # padded to 4 per rank
    eval_ranks = [SeededSampler(10, shuffle=False, rank=r, world_size=3, pad=False) for r in range(3)]
    assert sorted(i for r in eval_ranks for i, _ in r) == list(range(10))  # each sample exactly once
    assert [len(r) for r in eval_ranks] == [4, 3, 3]


def test_loader_output_does_not_depend_on_worker_count(tiny_synth):
    ds = SkeletonDataset(tiny_synth, "train", build_transforms(get_layout("ntu25"), 32, train=True))

    def first_batches(workers):
        sampler = SeededSampler(len(ds), seed=3)
        loader = DataLoader(ds, batch_size=8, sampler=sampler, num_workers=workers)
        return [x for x, _ in list(loader)[:2]]

    for a, b in zip(first_batches(0), first_batches(2)):
        assert torch.equal(a, b)


def test_dataset_reads_only_its_samples(tiny_synth):
    store = SkeletonStore(tiny_synth)
    ds = SkeletonDataset(store, indices=np.array([5, 2]))
    assert len(ds) == 2
    np.testing.assert_array_equal(ds.raw(1), store.sequence(2).transpose(3, 0, 2, 1))

import numpy as np
import pytest

from skelmae.errors import DataFormatError
from skelmae.eval.subsets import carve_validation, labelled_subset, stratified_pick, subset_path


def _labels():
    return np.repeat(np.arange(5), [100, 50, 20, 10, 3])


def test_stratified_pick_is_class_balanced_and_seeded():
    labels = _labels()
    pick = stratified_pick(labels, 0.1, seed=0)
    assert list(np.bincount(labels[pick])) == [10, 5, 2, 1, 1]  # every class, at least one
    assert np.array_equal(pick, stratified_pick(labels, 0.1, seed=0))
    assert not np.array_equal(pick, stratified_pick(labels, 0.1, seed=1))
    with pytest.raises(ValueError):
        stratified_pick(labels, 1.0, seed=0)


def test_carve_validation_partitions_the_split():
    labels = _labels()
    indices = np.arange(1000, 1000 + labels.size)
    train, val = carve_validation(indices, labels, 0.2, seed=3)
    assert not set(train) & set(val) and set(train) | set(val) == set(indices)
    assert len(set(labels[val - 1000])) == 5
    same, none = carve_validation(indices, labels, 0.0, seed=3)
    assert np.array_equal(same, indices) and none.size == 0


def test_labelled_subset_is_written_then_reused(tmp_path):
    labels = _labels()
    indices = np.arange(labels.size) * 2
    path = subset_path(tmp_path, "train", 0.1, 0)
    assert path.name == "train-10pct-seed0.npy"
    first = labelled_subset(indices, labels, 0.1, 0, path)
    assert path.is_file() and np.isin(first, indices).all()
    np.save(path, first[:5])  # a saved subset wins over drawing a new one
    assert list(labelled_subset(indices, labels, 0.1, 0, path)) == list(first[:5])
    np.save(path, np.array([1, 3]))  # odd indices are not in this split
    with pytest.raises(DataFormatError, match="not all in the training split"):
        labelled_subset(indices, labels, 0.1, 0, path)


def test_group_wise_validation_holds_whole_groups():
    groups = np.repeat(np.arange(10), 12)  # 10 subjects of 12 clips
    indices = np.arange(1000, 1120)
    train, val = carve_validation(indices, np.zeros(120, int), 0.1, seed=3, groups=groups)
    held = set(groups[val - 1000])
    assert len(held) == 1 and set(groups[train - 1000]).isdisjoint(held)  # one subject, never seen in training
    assert np.array_equal(np.sort(np.concatenate([train, val])), indices)
    again = carve_validation(indices, np.zeros(120, int), 0.1, seed=3, groups=groups)[1]
    assert np.array_equal(val, again)
    assert len(set(groups[carve_validation(indices, np.zeros(120, int), 0.25, 0, groups)[1] - 1000])) == 3
    assert len(set(groups[carve_validation(indices, np.zeros(120, int), 0.99, 0, groups)[1] - 1000])) == 9  # one group trains
    with pytest.raises(ValueError, match="at least 2 groups"):
        carve_validation(indices, np.zeros(120, int), 0.1, 0, groups=np.zeros(120, int))


def test_val_group_in_the_protocols(tiny_synth):
    from skelmae.config import ConfigError, DataConfig
    from skelmae.data.storage import SkeletonStore
    from skelmae.protocols.base import labelled_indices

    store = SkeletonStore(tiny_synth)
    data = DataConfig(window=16, batch_size=4, train_split="train", val_fraction=0.25, val_group="subject")
    train, val, _ = labelled_indices(store, data)
    subjects = store.meta("subject")
    assert len(set(subjects[val])) == 1 and set(subjects[train]).isdisjoint(subjects[val])
    with pytest.raises(ConfigError, match="no such field"):
        labelled_indices(store, DataConfig(window=16, batch_size=4, val_fraction=0.1, val_group="camera"))

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skelmae.data.storage import SkeletonStore
from skelmae.data.synthetic import CLASSES, TWO_PERSON, SynthConfig, generate, write_synthetic
from skelmae.data.transforms import resize_time


def test_classes_and_persons():
    assert len(CLASSES) >= 12 and len(TWO_PERSON) >= 2
    cfg = SynthConfig(subjects=4, test_subjects=2, repetitions=1)
    for seq, label, name, meta in generate(cfg):
        assert seq.shape[1:] == (2, 25, 3) and cfg.min_frames <= len(seq) <= cfg.max_frames
        assert np.isfinite(seq).all()
        second_present = np.abs(seq[:, 1]).sum() > 0
        assert second_present == (label in TWO_PERSON), name
        np.testing.assert_allclose(seq[0, 0, 1], 0, atol=1e-6)  # centred on spine_mid of person 1


def test_deterministic_by_seed_and_seed_matters():
    cfg = SynthConfig(subjects=4, test_subjects=2, repetitions=1)
    a = [s for s, *_ in generate(cfg)]
    b = [s for s, *_ in generate(cfg)]
    c = [s for s, *_ in generate(SynthConfig(seed=1, subjects=4, test_subjects=2, repetitions=1))]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(x.shape == y.shape and np.allclose(x, y) for x, y in zip(a, c))


def test_subject_bone_lengths_differ():
    cfg = SynthConfig(subjects=4, test_subjects=2, repetitions=1, nuisance=0)
    first = {}
    for seq, label, name, meta in generate(cfg):
        if label == 0:
            first[meta["subject"]] = np.linalg.norm(seq[0, 0, 13] - seq[0, 0, 14])  # shin length
    assert len({round(v, 3) for v in first.values()}) == 4


def test_splits_are_subject_disjoint(tiny_synth):
    store = SkeletonStore(tiny_synth)
    subjects = store.meta("subject")
    train, test = set(subjects[store.split("train")]), set(subjects[store.split("test")])
    assert train and test and not train & test
    assert len(store.split("train")) + len(store.split("test")) == len(store)


def _features(store, split, kind, rng):
    rows = []
    for i in store.split(split):
        seq = store.sequence(i)
        if kind == "frame":
            rows.append(seq[rng.integers(len(seq))].ravel())
        else:  # the whole motion, resampled to 16 frames, plus its frame differences
            r = resize_time(seq.transpose(3, 0, 2, 1), 16).transpose(1, 3, 2, 0)
            rows.append(np.concatenate([r.ravel(), np.diff(r, axis=0).ravel()]))
    return np.array(rows), store.labels[store.split(split)]


@pytest.fixture(scope="module")
def medium_synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "medium"
    return write_synthetic(out, SynthConfig(subjects=16, test_subjects=6, repetitions=2), progress=False)


def test_single_frames_cannot_separate_the_classes_but_motion_can(medium_synth):
    """Each class pair shares poses and local motions; only the order differs."""
    store = SkeletonStore(medium_synth)
    rng = np.random.default_rng(0)
    accuracy = {}
    for kind in ("frame", "motion"):
        xtr, ytr = _features(store, "train", kind, rng)
        xte, yte = _features(store, "test", kind, rng)
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(xtr, ytr)
        accuracy[kind] = clf.score(xte, yte)
    # pairs are indistinguishable from one frame: the ceiling is (2 + 12 / 2) / 14 = 57 %
    assert accuracy["frame"] < 0.7
    assert accuracy["motion"] > 0.9
    assert accuracy["motion"] - accuracy["frame"] > 0.3

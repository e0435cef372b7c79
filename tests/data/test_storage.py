import json

import numpy as np
import pytest

from skelmae.data.storage import OWNER, DatasetWriter, SampleError, SkeletonStore, is_dataset_dir, leftovers, recover
from skelmae.errors import DataFormatError, SkelmaeError


def _write(out, n=5, overwrite=False, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [rng.normal(size=(int(rng.integers(3, 9)), 2, 25, 3)).astype(np.float32) for _ in range(n)]
    with DatasetWriter(out, layout="ntu25", channels=["x", "y", "z"], num_persons=2,
                       classes=["a", "b", "c"], overwrite=overwrite) as w:
        for i, s in enumerate(seqs):
            w.add(s, label=i % 3, name=f"s{i}", meta={"subject": i + 1, **({"camera": 2} if i % 2 else {})})
        w.add_split("train", range(n - 2))
        w.add_split("test", range(n - 2, n))
    return seqs


def test_round_trip(tmp_path):
    out = tmp_path / "ds"
    seqs = _write(out)
    store = SkeletonStore(out)
    assert len(store) == 5 and store.num_classes == 3 and store.layout.name == "ntu25"
    for i, s in enumerate(seqs):
        np.testing.assert_array_equal(store.sequence(i), s)
    assert store.names == [f"s{i}" for i in range(5)]
    assert list(store.split("test")) == [3, 4]
    assert list(store.meta("subject")) == [1, 2, 3, 4, 5]
    assert list(store.meta("camera")) == [-1, 2, -1, 2, -1]
    assert list(store.lengths) == [len(s) for s in seqs]
    assert store.verify() == []
    assert isinstance(store._open_frames(), np.memmap)  # frames are mapped, not read


def test_store_pickles_without_its_mmap(tmp_path):
    import pickle

    out = tmp_path / "ds"
    _write(out)
    store = SkeletonStore(out)
    clone = pickle.loads(pickle.dumps(store))
    assert clone._frames is None
    np.testing.assert_array_equal(clone.sequence(2), store.sequence(2))


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError):
        with DatasetWriter(out, "ntu25", ["x", "y", "z"], 2, ["a"]) as w:
            w.add(np.zeros((4, 2, 25, 3), np.float32), 0, "ok")
            raise RuntimeError("killed")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_dataset_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "ds"
    _write(out, n=5)
    with pytest.raises(FileExistsError):
        _write(out, n=4)
    with pytest.raises(RuntimeError):  # a failed overwrite keeps the old dataset intact
        with DatasetWriter(out, "ntu25", ["x", "y", "z"], 2, ["a"], overwrite=True) as w:
            raise RuntimeError("killed")
    assert len(SkeletonStore(out)) == 5
    _write(out, n=4, overwrite=True, seed=1)
    assert len(SkeletonStore(out)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 2, 24, 3)), "expected (T>=1, 2, 25, 3)"),
        (np.full((4, 2, 25, 3), np.nan), "NaN"),
        (np.full((4, 2, 25, 3), 1e39), "beyond the float32 range"),  # finite in float64, inf in float32
    ],
)
def test_writer_rejects_bad_samples(tmp_path, bad, message):
    with DatasetWriter(tmp_path / "ds", "ntu25", ["x", "y", "z"], 2, ["a"]) as w:
        with pytest.raises(SampleError, match="sample 'bad'") as info:
            w.add(bad, 0, "bad")
        assert message in str(info.value)
        w.add(np.zeros((2, 2, 25, 3)), 0, "good")
    assert len(SkeletonStore(tmp_path / "ds")) == 1


@pytest.mark.parametrize("name", ["a\nb", "a\rb", "a\u2028b", "a\x85b", "a\x0cb", ""])
def test_names_that_would_break_names_txt_are_refused(tmp_path, name):
    with DatasetWriter(tmp_path / "ds", "ntu25", ["x", "y", "z"], 2, ["a"]) as w:
        with pytest.raises(SampleError, match="empty or contains a line break"):
            w.add(np.zeros((2, 2, 25, 3)), 0, name)
        w.add(np.zeros((2, 2, 25, 3)), 0, "ok")
    assert SkeletonStore(tmp_path / "ds").names == ["ok"]


def test_fields_and_splits_must_be_plain_file_names(tmp_path):
    with DatasetWriter(tmp_path / "ds", "ntu25", ["x", "y", "z"], 2, ["a"]) as w:
        seq = np.zeros((2, 2, 25, 3))
        with pytest.raises(SampleError, match="does not fit a 64-bit integer"):
            w.add(seq, 0, "s", meta={"subject": 10**30})
        with pytest.raises(SampleError, match="not a plain file name"):
            w.add(seq, 0, "s", meta={"../x": 1})
        w.add(seq, 0, "s")
        for split in ("../evil", "a/b", ".hidden", ""):
            with pytest.raises(SkelmaeError, match="not a plain file name"):
                w.add_split(split, [0])
        w.add_split("xsub_train", [0])
    assert SkeletonStore(tmp_path / "ds").split_names == ["xsub_train"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_a_failed_finalize_leaves_no_hidden_folder(tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        with DatasetWriter(tmp_path / "ds", "ntu25", ["x", "y", "z"], 2, ["a"]) as w:
            w.add(np.zeros((2, 2, 25, 3)), 0, "s")
            monkeypatch.setattr(np, "save", disk_full)
    assert list(tmp_path.iterdir()) == []


def _interrupted_swap(tmp_path, new_complete: bool):
    """The old dataset moved aside, the new one not yet moved in: what a kill between the renames leaves."""
    out = tmp_path / "ds"
    _write(out, n=5)
    (out).rename(tmp_path / ".ds.old-aaaa")
    if new_complete:
        _write(tmp_path / "new", n=3)
        (tmp_path / "new").rename(tmp_path / ".ds.partial-bbbb")
        (tmp_path / ".ds.partial-bbbb" / OWNER).write_text('{"pid": 999999999, "host": "%s"}' % __import__("socket").gethostname())
    return out


def test_an_interrupted_swap_is_restored_by_the_next_reader(tmp_path):
    out = _interrupted_swap(tmp_path, new_complete=False)
    with pytest.warns(UserWarning, match="restored .* from .ds.old-aaaa"):
        store = SkeletonStore(out)
    assert len(store) == 5 and leftovers(out) == []


def test_a_finished_new_copy_wins_over_the_old_one(tmp_path):
    out = _interrupted_swap(tmp_path, new_complete=True)
    messages = recover(out)
    assert len(SkeletonStore(out)) == 3 and leftovers(out) == [] and not (out / OWNER).exists()
    assert any("restored" in m and "partial-bbbb" in m for m in messages) and any("old-aaaa" in m for m in messages)


def test_recover_removes_dead_runs_leftovers_but_not_live_ones(tmp_path):
    import os
    import socket

    out = tmp_path / "ds"
    _write(out)
    host = socket.gethostname()
    for name, pid in ((".ds.partial-dead", 999999999), (".ds.partial-live", os.getpid())):
        (tmp_path / name).mkdir()
        (tmp_path / name / OWNER).write_text(json.dumps({"pid": pid, "host": host}))
    (tmp_path / ".ds.old-cccc").mkdir()
    messages = recover(out)
    assert [p.name for p in leftovers(out)] == [".ds.partial-live"]
    assert len(messages) == 2 and len(SkeletonStore(out)) == 5


def test_missing_manifest_is_reported_with_partial_hint(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / ".ds.partial-1234").mkdir()
    with pytest.raises(DataFormatError, match="no manifest.json.*partial-1234"):
        SkeletonStore(tmp_path / "ds")
    assert not is_dataset_dir(tmp_path / "ds")


def _edit_manifest(root, **changes):
    path = root / "manifest.json"
    m = json.loads(path.read_text())
    m.update(changes)
    path.write_text(json.dumps(m))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"format_version": 99}, "field 'format_version': is 99"),
        ({"num_samples": "five"}, "field 'num_samples': has type str (expected int)"),
        ({"num_samples": 6}, "offsets.npy, shape: is (6,) (expected (7,)"),
        ({"num_frames": 1}, "offsets are not increasing from 0 to num_frames"),
        ({"classes": ["a"]}, "labels span 0..2 (expected -1..0"),
        ({"channels": ["x", "y"]}, "frames.npy, shape"),
    ],
)
def test_manifest_mismatches_have_clear_errors(tmp_path, changes, message):
    root = tmp_path / "ds"
    _write(root)
    _edit_manifest(root, **changes)
    with pytest.raises(DataFormatError) as info:
        SkeletonStore(root)
    assert message in str(info.value)


def test_corrupt_manifest_and_missing_file(tmp_path):
    root = tmp_path / "ds"
    _write(root)
    (root / "labels.npy").unlink()
    with pytest.raises(DataFormatError, match="labels.npy: file listed by the dataset layout is missing"):
        SkeletonStore(root)
    (root / "manifest.json").write_text('{"format": ')
    with pytest.raises(DataFormatError, match="manifest.json, line 1: invalid JSON"):
        SkeletonStore(root)


def test_verify_detects_changed_file(tmp_path):
    root = tmp_path / "ds"
    _write(root)
    with open(root / "frames.npy", "r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\x01\x02\x03\x04")
    assert SkeletonStore(root).verify() == ["frames.npy"]


def test_unknown_split_names_the_choices(tmp_path):
    root = tmp_path / "ds"
    _write(root)
    with pytest.raises(DataFormatError, match=r"no split 'val'.*\['test', 'train'\]"):
        SkeletonStore(root).split("val")


def test_reads_stay_correct_in_forked_workers(tmp_path):
    import multiprocessing

    seqs = _write(tmp_path / "ds", n=6)
    store = SkeletonStore(tmp_path / "ds")
    store.sequence(0)  # the parent opens its file before forking; children inherit the store as it is
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    order = list(range(6)) * 100

    def work(shift):
        try:
            queue.put(all(np.array_equal(store.sequence(i), seqs[i]) for i in order[shift:] + order[:shift]))
        except Exception as exc:  # a torn read surfaces as a short read
            queue.put(repr(exc))

    workers = [ctx.Process(target=work, args=(shift,)) for shift in (0, 1, 2)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=60) for _ in workers]
    for w in workers:
        w.join()
    assert results == [True, True, True]
    np.testing.assert_array_equal(store.sequence(2), seqs[2])

import pickle
import zipfile

import numpy as np
import pytest

from skelmae.data.formats import pyskl
from skelmae.data.formats.export import export_npz, export_pyskl
from skelmae.data.prepare import prepare
from skelmae.data.storage import DatasetWriter, SkeletonStore
from skelmae.errors import SkelmaeError


def _assert_same_store(a, b, atol=0.0):
    assert a.names == b.names and list(a.labels) == list(b.labels) and a.channels == b.channels
    assert a.split_names == b.split_names and all(np.array_equal(a.split(s), b.split(s)) for s in a.split_names)
    for i in range(len(a)):
        np.testing.assert_allclose(a.sequence(i), b.sequence(i), rtol=0, atol=atol)


def test_npz_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for part, n in (("train", 6), ("test", 4)):
        x = np.zeros((n, 300, 150), np.float32)
        for i in range(n):
            length = int(rng.integers(30, 301))
            x[i, :length] = rng.normal(size=(length, 150))
        arrays[f"x_{part}"] = x
        arrays[f"y_{part}"] = np.eye(60)[rng.integers(0, 60, n)]
    source = tmp_path / "NTU60_CV.npz"
    np.savez(source, **arrays)
    prepare("ctrgcn-npz", source, tmp_path / "ds", progress=False)
    out = export_npz(tmp_path / "ds", tmp_path / "out.npz", frames=300, progress=False)
    with np.load(out) as exported:
        assert sorted(exported.files) == sorted(arrays)
        for key, value in arrays.items():
            np.testing.assert_array_equal(exported[key], value)
            assert exported[key].dtype == value.dtype
    compressed = export_npz(tmp_path / "ds", tmp_path / "small.npz", protocol="xview", compress=True, progress=False)
    with zipfile.ZipFile(compressed) as archive:
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
    prepare("ctrgcn-npz", compressed, tmp_path / "again", progress=False, protocol="xview")
    again = SkeletonStore(tmp_path / "again")
    _assert_same_store(SkeletonStore(tmp_path / "ds"), again)


def test_pyskl_2d_round_trip_restores_pixels(shared_data, tmp_path):
    source = shared_data / "pyskl_format_custom_hrnet" / "ntu60_hrnet.pkl"
    prepare("pyskl", source, tmp_path / "ds", progress=False)
    out = export_pyskl(tmp_path / "ds", tmp_path / "out.pkl", progress=False)
    original, exported = pyskl.load_pickle(source), pyskl.load_pickle(out)
    assert {k: sorted(v) for k, v in exported["split"].items()} == {k: sorted(v) for k, v in original["split"].items()}
    for before, after in zip(original["annotations"], exported["annotations"]):
        assert after["frame_dir"] == before["frame_dir"] and after["label"] == before["label"] - 1
        assert after["img_shape"] == tuple(before["img_shape"]) and after["total_frames"] == before["total_frames"]
        np.testing.assert_allclose(after["keypoint"][:1], before["keypoint"].astype(np.float32), atol=2e-4)
        np.testing.assert_array_equal(after["keypoint_score"][:1], before["keypoint_score"].astype(np.float32))
    prepare("pyskl", out, tmp_path / "again", progress=False)
    _assert_same_store(SkeletonStore(tmp_path / "ds"), SkeletonStore(tmp_path / "again"), atol=1e-6)


def test_pyskl_3d_round_trip_of_an_ntu_dataset(shared_data, tmp_path):
    prepare("ntu60", shared_data / "ntu_rgbd_samples" / "raw_skeletons", tmp_path / "ntu", workers=1, progress=False)
    out = export_pyskl(tmp_path / "ntu", tmp_path / "ntu.pkl", progress=False)
    with open(out, "rb") as fh:
        content = pickle.load(fh)
    assert set(content["split"]) == {"xsub_train", "xsub_test", "xview_train", "xview_test"}
    assert content["annotations"][0]["keypoint"].shape[0] == 2 and "img_shape" not in content["annotations"][0]
    report = prepare("pyskl", out, tmp_path / "again", progress=False)
    again = SkeletonStore(tmp_path / "again")
    _assert_same_store(SkeletonStore(tmp_path / "ntu"), again)
    assert again.classes == SkeletonStore(tmp_path / "ntu").classes  # NTU names recognised
    assert "labels 0-based" in report.notes[0]
    with pytest.raises(SkelmaeError, match="choose a protocol with --protocol"):
        export_npz(tmp_path / "ntu", tmp_path / "x.npz", progress=False)
    path = export_npz(tmp_path / "ntu", tmp_path / "NTU60_CS.npz", protocol="xsub", progress=False)
    with np.load(path) as exported:
        assert exported["x_train"].shape == (4, 103, 150) and exported["y_test"].shape == (4, 60)


def test_export_refusals(tmp_path):
    with DatasetWriter(tmp_path / "ds", "coco17", ["x", "y", "score"], 1, ["a"]) as writer:
        writer.add(np.ones((3, 1, 17, 3), np.float32), -1, "clip")
        writer.add_split("train", [0])
    with pytest.raises(SkelmaeError, match="needs the image sizes"):
        export_pyskl(tmp_path / "ds", tmp_path / "x.pkl", progress=False)
    with pytest.raises(SkelmaeError, match="needs a label for every sample"):
        export_npz(tmp_path / "ds", tmp_path / "x.npz", progress=False)
    with pytest.raises(SkelmaeError, match="no splits nope_train/nope_test"):
        export_npz(tmp_path / "ds", tmp_path / "x.npz", protocol="nope", progress=False)
    assert not list(tmp_path.glob("*.npz")) and not list(tmp_path.glob(".*tmp*"))

import io
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skelmae.data.formats import ctrgcn_npz
from skelmae.data.prepare import prepare
from skelmae.data.storage import SkeletonStore
from skelmae.errors import DataFormatError


def _npz_arrays(n_train=5, n_test=3, frames=300, classes=60, persons=2, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for part, n in (("train", n_train), ("test", n_test)):
        x = np.zeros((n, frames, persons * 75), np.float32)
        for i in range(n):
            length = int(rng.integers(frames // 10, frames)) + 1
            x[i, :length] = rng.normal(size=(length, persons * 75))
            if persons == 2 and i % 2:
                x[i, :, 75:] = 0  # one-person sample
        y = np.zeros((n, classes))
        y[np.arange(n), rng.integers(0, classes, n)] = 1
        arrays.update({f"x_{part}": x, f"y_{part}": y})
    return arrays


@pytest.mark.parametrize("compressed", [False, True])
def test_import_trims_padding_and_names_splits(tmp_path, compressed):
    arrays = _npz_arrays()
    path = tmp_path / "NTU60_CS.npz"
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    report = prepare("ctrgcn-npz", path, tmp_path / "ds", progress=False)
    store = SkeletonStore(tmp_path / "ds")
    assert report.split_counts == {"xsub_train": 5, "xsub_test": 3}
    assert store.classes[0] == "drink water" and store.num_persons == 2 and store.layout.name == "ntu25"
    for i, idx in enumerate(store.split("xsub_test")):
        row = arrays["x_test"][i]
        valid = np.flatnonzero(np.abs(row).sum(axis=1) > 0)[-1] + 1
        np.testing.assert_array_equal(store.sequence(idx), row[:valid].reshape(valid, 2, 25, 3))
        assert store.labels[idx] == arrays["y_test"][i].argmax() and store.names[idx] == f"test_{i:06d}"


def test_five_dimensional_arrays_integer_labels_and_protocol_option(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3, 30, 25, 2)).astype(np.float32)
    path = tmp_path / "data.npz"
    np.savez(path, x_train=x, y_train=np.array([0, 2, 1, 2]))
    store = SkeletonStore(prepare("ctrgcn-npz", path, tmp_path / "ds", progress=False, protocol="mine").out)
    assert store.split_names == ["mine_train"] and store.num_classes == 3 and store.classes[2] == "class 2"
    np.testing.assert_array_equal(store.sequence(1), x[1].transpose(1, 3, 2, 0))


@pytest.mark.parametrize(
    "stem, protocol",
    [("NTU60_CS", "xsub"), ("NTU60_CV", "xview"), ("NTU120_CSub", "xsub"), ("NTU120_CSet", "xset"),
     ("NTU60_XView", "xview"), ("PKUv1_XSub", "xsub"), ("my_data", None)],
)
def test_protocol_from_file_name(stem, protocol):
    assert ctrgcn_npz.protocol_from_name(stem) == protocol


def _import_peak(tmp_path, n):
    arrays = _npz_arrays(n_train=n, n_test=0, frames=300)
    path = tmp_path / f"{n}" / "NTU60_CS.npz"
    path.parent.mkdir()
    np.savez_compressed(path, x_train=arrays["x_train"], y_train=arrays["y_train"])
    size = arrays["x_train"].nbytes
    del arrays
    tracemalloc.start()
    prepare("ctrgcn-npz", path, path.parent / "ds", progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, size


def test_streaming_memory_does_not_grow_with_the_array(tmp_path):
    small_peak, _ = _import_peak(tmp_path, 40)
    peak, size = _import_peak(tmp_path, 200)  # x_train: 36 MB
    assert peak < size / 3 and peak < small_peak + 2**20, (small_peak, peak, size)


def test_all_zero_rows_are_left_out_and_reported(tmp_path):
    arrays = _npz_arrays(n_train=3, n_test=0)
    arrays["x_train"][1] = 0
    path = tmp_path / "NTU60_CV.npz"
    np.savez(path, x_train=arrays["x_train"], y_train=arrays["y_train"])
    report = prepare("ctrgcn-npz", path, tmp_path / "ds", progress=False)
    assert report.samples == 2 and report.dropped == ["train_000001: every frame is zero (left out)"]


@pytest.mark.parametrize(
    "arrays, field, message",
    [
        ({"x_train": np.zeros((2, 5, 150), np.float32)}, "array 'y_train'", "is missing"),
        ({"a": np.zeros(3)}, None, "has arrays ['a']"),
        ({"x_train": np.zeros((2, 5, 140), np.float32), "y_train": np.eye(2)}, "array 'x_train'", "has shape (2, 5, 140)"),
        ({"x_train": np.ones((2, 5, 150), np.float32), "y_train": np.array([[1, 1], [0, 1]])}, "array 'y_train', row 0", "not a one-hot"),
        ({"x_train": np.ones((2, 5, 150), np.float32), "y_train": np.array([0, 1, 1])}, "array 'y_train'", "has shape (3,)"),
        ({"x_train": np.full((2, 5, 150), np.nan, np.float32), "y_train": np.array([0, 1])}, "array 'x_train', row 0", "NaN"),
        ({"x_train": np.array([None, 1], dtype=object), "y_train": np.array([0, 1])}, "array 'x_train'", "Python objects"),
        ({"x_train": np.ones((2, 5, 150), np.float32), "y_train": np.array([0, 10**9])}, "array 'y_train', row 1",
         "label is 1000000000 (expected 0..9999: at most 10,000 classes without --class-names)"),
        ({"x_train": np.ones((2, 5, 150), np.float32), "y_train": np.array([np.inf, 0])}, "array 'y_train', row 0", "label is inf"),
        ({"x_train": np.ones((2, 5, 150), np.float32), "y_train": np.zeros((2, 20_000))}, "array 'y_train'", "one-hot over 20,000"),
        ({"x_train": np.full((2, 5, 150), 1e39), "y_train": np.array([0, 1])}, "array 'x_train', row 0", "beyond 1.7e+38"),
        ({"x_train": np.ones((2, 3, 5, 25, 0), np.float32), "y_train": np.array([0, 1])}, "array 'x_train'", "M >= 1"),
    ],
)
def test_malformed_archives(tmp_path, arrays, field, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataFormatError) as info:
        prepare("ctrgcn-npz", path, tmp_path / "ds", progress=False)
    assert info.value.where == field and message in str(info.value)
    assert not (tmp_path / "ds").exists()


def test_truncated_archive(tmp_path):
    path = tmp_path / "NTU60_CS.npz"
    np.savez(path, **_npz_arrays(n_train=3, n_test=2))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="not a readable .npz archive"):
        prepare("ctrgcn-npz", path, tmp_path / "ds", progress=False)


def _member(array, **header):
    """``array`` as the bytes of a ``.npy`` member whose header may claim something else."""
    fh = io.BytesIO()
    np.lib.format.write_array_header_1_0(fh, {"descr": array.dtype.str, "fortran_order": False, "shape": array.shape, **header})
    return fh.getvalue() + array.tobytes()


def _archive(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for key, data in members.items():
            archive.writestr(f"{key}.npy", data)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize(
    "key, shape, where",
    [("x_train", (2, 10**9, 150), "array 'x_train'"), ("y_train", (2, 10**9), "array 'y_train'"),
     ("x_train", (2, -5, 150), "array 'x_train'")],
)
def test_a_header_claiming_more_than_its_member_holds_is_refused(tmp_path, compression, key, shape, where):
    members = {"x_train": _member(np.ones((2, 5, 150), np.float32)), "y_train": _member(np.eye(2))}
    members[key] = _member(np.ones((2, 5, 150), np.float32) if key == "x_train" else np.eye(2), shape=shape)
    path = tmp_path / "NTU60_CS.npz"
    _archive(path, members, compression)
    with pytest.raises(DataFormatError) as info:
        prepare("ctrgcn-npz", path, tmp_path / "ds", progress=False)
    assert info.value.where == where and ("claims shape" in str(info.value) or "dimensions of at least 0" in str(info.value))


def test_encrypted_or_exotically_compressed_members_are_format_errors(tmp_path):
    path = tmp_path / "NTU60_CS.npz"
    np.savez(path, **_npz_arrays(n_train=2, n_test=0, frames=4))
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")  # the central-directory entry of the last member
    data[central + 8] |= 1  # "encrypted"
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="encrypted"):
        prepare("ctrgcn-npz", path, tmp_path / "ds", progress=False)
    data[central + 8] &= ~1
    data[central + 10 : central + 12] = (99).to_bytes(2, "little")  # AES, which zipfile cannot read
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="compression method"):
        prepare("ctrgcn-npz", path, tmp_path / "ds", progress=False)


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, 4000), flip=st.integers(0, 4000))
def test_fuzz_damaged_archives(tmp_path_factory, cut, flip):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "NTU60_CS.npz"
    np.savez(path, **_npz_arrays(n_train=2, n_test=1, frames=4, classes=3))
    data = bytearray(path.read_bytes())
    data[flip % len(data)] ^= 0xFF
    path.write_bytes(bytes(data[: len(data) - cut]))
    try:
        prepare("ctrgcn-npz", path, folder / "ds", progress=False)
    except DataFormatError:
        pass

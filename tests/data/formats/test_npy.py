import io

import numpy as np
import pytest

from skelmae.data.formats import read_pose_file
from skelmae.errors import DataFormatError


def test_a_clip_comes_back_as_float32_in_its_shape(tmp_path):
    clip = np.asfortranarray(np.arange(5 * 2 * 25 * 3, dtype=np.float64).reshape(5, 2, 25, 3))
    np.save(tmp_path / "clip.npy", clip)
    [sample] = read_pose_file(tmp_path / "clip.npy")
    assert sample.name == "clip" and sample.sequence.dtype == np.float32 and sample.layout is None
    assert not sample.preprocessed and sample.joint_names is None  # coordinates as given: prediction preprocesses them
    np.testing.assert_array_equal(sample.sequence, clip.astype(np.float32))
    np.save(tmp_path / "three.npy", np.ones((4, 25, 3), np.int16))
    assert read_pose_file(tmp_path / "three.npy")[0].sequence.shape == (4, 25, 3)


def _claiming(shape, data=b"", descr="<f4"):
    fh = io.BytesIO()
    np.lib.format.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False, "shape": shape})
    return fh.getvalue() + data


@pytest.mark.parametrize(
    "content, message",
    [
        (lambda path: np.save(path, np.full((3, 25, 3), np.nan)), "frame 1: a joint is not finite"),
        (lambda path: np.save(path, np.r_[np.ones((1, 25, 3)), np.full((1, 25, 3), 1e39)]), "frame 2: a joint holds a value beyond"),
        (lambda path: np.save(path, np.ones((3, 75))), "has shape (3, 75)"),
        (lambda path: np.save(path, np.ones((0, 25, 3))), "has shape (0, 25, 3)"),
        (lambda path: np.save(path, np.array([None] * 6).reshape(1, 2, 3), allow_pickle=True), "holds Python objects"),
        (lambda path: np.save(path, np.ones((2, 25, 3), np.complex64)), "has dtype complex64"),
        (lambda path: path.write_bytes(_claiming((10**9, 25, 3), b"\0" * 900)), "claims shape (1000000000, 25, 3)"),
        (lambda path: path.write_bytes(_claiming((-1, 25, 3))), "dimensions of at least 0"),
        (lambda path: path.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{\0\0\0\0\0\0\0\0\0\0\0\0\0\0\n"), "no valid .npy header"),
        (lambda path: path.write_bytes(b"\x00\x01binary"), "no valid .npy header"),
        (lambda path: path.write_bytes(b""), "no valid .npy header"),
    ],
)
def test_bad_clips_are_format_errors(tmp_path, content, message):
    path = tmp_path / "clip.npy"
    content(path)
    with pytest.raises(DataFormatError) as info:
        read_pose_file(path)
    assert info.value.path == str(path) and message in str(info.value)


@pytest.mark.parametrize("text", ["x,y,z\n0.1,0.2,0.3\n", "# export \u00e9\n" + "1 2 3\n" * 40])
def test_a_text_file_named_npy_is_named_as_such(tmp_path, text):
    path = tmp_path / "clip.npy"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        read_pose_file(path)
    assert f"clip.npy: not a NumPy file (it starts with text {text[:40]!r})" in str(info.value)
    assert "header" not in str(info.value)


def test_only_text_is_told_apart_from_a_damaged_header():
    from skelmae.data.formats.npy import not_numpy

    assert not_numpy(b"\x93NUMPY\x01\x00") is None and not_numpy(b"\x89PNG\r\n\x1a\n") is None
    cut = ("\u00e9" * 40).encode()[:63]  # the peek ends inside a character
    assert not_numpy(cut) == f"not a NumPy file (it starts with text {chr(0xe9) * 31!r})"

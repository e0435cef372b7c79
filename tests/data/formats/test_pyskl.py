import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skelmae.data.formats import pyskl
from skelmae.data.prepare import prepare
from skelmae.data.storage import SkeletonStore
from skelmae.errors import DataFormatError


@pytest.fixture(scope="module")
def pickle_path(shared_data):
    return shared_data / "pyskl_format_custom_hrnet" / "ntu60_hrnet.pkl"


@pytest.fixture(scope="module")
def original(pickle_path):
    return pyskl.load_pickle(pickle_path)


@pytest.fixture(scope="module")
def hrnet(pickle_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("pyskl") / "hrnet"
    prepare("pyskl", pickle_path, out, progress=False)
    return SkeletonStore(out)


def test_real_2d_pickle(hrnet, original):
    assert len(hrnet) == 486 and hrnet.layout.name == "coco17" and hrnet.channels == ["x", "y", "score"]
    assert hrnet.num_persons == 2 and hrnet.num_classes == 16
    assert hrnet.split("xsub_train").size == 388 and hrnet.split("xsub_test").size == 98
    assert hrnet.manifest["source"]["label_base"] == 1
    for i in (0, 100, 485):
        ann = original["annotations"][i]
        assert hrnet.names[i] == ann["frame_dir"] and hrnet.labels[i] == ann["label"] - 1
        seq = hrnet.sequence(i)
        h, w = ann["img_shape"]
        kp = ann["keypoint"][0].astype(np.float32)
        expected = (kp - [w / 2, h / 2]) / [w / 2, h / 2]
        detected = ~((kp == 0).all(-1) & (ann["keypoint_score"][0] == 0))
        np.testing.assert_allclose(seq[:, 0, :, :2][detected], expected[detected], rtol=1e-6, atol=1e-6)
        assert (seq[:, 0, :, :2][~detected] == 0).all()
        np.testing.assert_array_equal(seq[:, 0, :, 2], ann["keypoint_score"][0].astype(np.float32))
        assert (seq[:, 1] == 0).all()  # one person, padded to two
        assert (hrnet.meta("img_h")[i], hrnet.meta("img_w")[i]) == (h, w)
    names = np.array(hrnet.names)
    assert sorted(names[hrnet.split("xsub_test")]) == sorted(original["split"]["xsub_test"])
    assert np.abs(hrnet.sequence(0)[..., :2]).max() <= 1.0


def test_annotation_to_sequence_contract(original, hrnet):
    seq, layout = pyskl.annotation_to_sequence(original["annotations"][7])
    assert layout == "coco17" and seq.dtype == np.float32
    np.testing.assert_array_equal(seq, hrnet.sequence(7))


def _ann_3d(persons=2, frames=6, label=3, name="S001C002P003R002A004"):
    rng = np.random.default_rng(persons)
    kp = rng.normal(size=(persons, frames, 25, 3)).astype(np.float32)
    kp[-1, :2] = 0  # the last person appears late
    return {"frame_dir": name, "label": label, "keypoint": kp, "total_frames": frames}


def test_3d_annotations_are_centred_and_persons_cut_or_padded():
    ann = _ann_3d(persons=3)
    seq, layout = pyskl.annotation_to_sequence(ann, num_persons=2)
    assert layout == "ntu25" and seq.shape == (6, 2, 25, 3)
    np.testing.assert_allclose(seq[0, 0, 1], 0)
    np.testing.assert_allclose(seq[:, :2], ann["keypoint"][:2].transpose(1, 0, 2, 3) - ann["keypoint"][0, 0, 1], atol=1e-6)
    seq, _ = pyskl.annotation_to_sequence(_ann_3d(persons=2), num_persons=4)
    assert seq.shape == (6, 4, 25, 3) and (seq[:2, 1] == 0).all() and (seq[:, 2:] == 0).all()


def test_ntu_names_give_ntu_classes_and_metadata(tmp_path):
    anns = [_ann_3d(label=a - 1, name=f"S001C00{c}P001R001A{a:03d}") for a in (1, 5, 60) for c in (1, 2)]
    path = tmp_path / "ntu60_3danno.pkl"
    path.write_bytes(pickle.dumps({"split": {"xview_train": [a["frame_dir"] for a in anns[1::2]],
                                             "xview_val": [a["frame_dir"] for a in anns[::2]] + ["S009C001P001R001A001"]},
                                   "annotations": anns}))
    report = prepare("pyskl", path, tmp_path / "ds", progress=False)
    store = SkeletonStore(tmp_path / "ds")
    assert store.channels == ["x", "y", "z"] and store.classes[59] == "walking apart from each other"
    assert list(store.meta("camera")) == [1, 2, 1, 2, 1, 2] and list(store.labels) == [0, 0, 4, 4, 59, 59]
    assert store.split("xview_val").tolist() == [0, 2, 4]
    assert store.manifest["source"]["label_base"] == 0
    assert "1 split entr(y/ies) name no annotation (ignored, as PYSKL does)" in report.notes


def test_label_base_and_class_names_options(tmp_path):
    anns = [_ann_3d(label=label, name=f"clip{label}") for label in (1, 2, 2)]
    path = tmp_path / "a.pkl"
    path.write_bytes(pickle.dumps({"split": {}, "annotations": anns}))
    auto = SkeletonStore(prepare("pyskl", path, tmp_path / "auto", progress=False).out)
    assert list(auto.labels) == [0, 1, 1] and auto.classes == ["class 0", "class 1"]
    names = tmp_path / "classes.txt"
    names.write_text("zero\none\ntwo\n")
    zero = SkeletonStore(prepare("pyskl", path, tmp_path / "zero", progress=False, label_base="0", class_names=names).out)
    assert list(zero.labels) == [1, 2, 2] and zero.classes == ["zero", "one", "two"]
    names.write_text("zero\none\n")
    with pytest.raises(DataFormatError, match=r"annotations\[1\].label \(sample 'clip2'\): label is 2 \(expected 0..1: one per class"):
        prepare("pyskl", path, tmp_path / "bad", progress=False, label_base="0", class_names=names)


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_with_code_are_refused(tmp_path, capsys):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"split": {}, "annotations": [Evil()]}))
    with pytest.raises(DataFormatError, match="references builtins.print; only numpy arrays"):
        pyskl.load_pickle(path)
    assert "must never run" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"keypoint": np.zeros((1, 0, 17, 2))}, "annotations[0].keypoint", "is (1, 0, 17, 2)"),
        ({"keypoint": np.zeros((1, 4, 18, 2))}, "annotations[0].keypoint", "has 18 joints"),
        ({"keypoint": np.full((1, 4, 17, 2), np.nan)}, "annotations[0].keypoint", "NaN"),
        ({"keypoint_score": np.zeros((1, 3, 17))}, "annotations[0].keypoint_score", "is (1, 3, 17)"),
        ({"img_shape": "big"}, "annotations[0].img_shape", "is 'big'"),
        ({"img_shape": (0, 10)}, "annotations[0].img_shape", "positive"),
        ({"label": "walk"}, "annotations[0].label", "is 'walk'"),
        ({"label": 10**9}, "annotations[0].label (sample 'a')", "label is 1000000000 (expected 0..9999: at most 10,000"),
        ({"label": 2**80}, "annotations[0].label (sample 'a')", f"label is {2**80}"),
        ({"img_shape": (1e30, 1e30)}, "annotations[0].img_shape", "of at most 1,000,000 pixels"),
        ({"frame_dir": "a\nb"}, "annotations[0].frame_dir", "without line breaks"),
        ({"keypoint": np.full((1, 4, 17, 2), 1e39)}, "annotations[0].keypoint", "beyond 1.7e+38"),
    ],
)
def test_malformed_annotations_name_the_field(tmp_path, change, field, message):
    ann = {"frame_dir": "a", "label": 0, "img_shape": (100, 200), "keypoint": np.ones((1, 4, 17, 2), np.float16),
           "keypoint_score": np.ones((1, 4, 17), np.float16)}
    ann.update(change)
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps({"split": {}, "annotations": [ann]}))
    with pytest.raises(DataFormatError) as info:
        prepare("pyskl", path, tmp_path / "ds", progress=False)
    assert info.value.where == field and message in str(info.value)


@pytest.mark.parametrize("name", ["../labels", "a/b", "", ".."])
def test_split_names_must_be_file_names(tmp_path, name):
    """A split is stored as splits/<name>.npy: '../labels' would overwrite the labels."""
    path = tmp_path / "a.pkl"
    path.write_bytes(pickle.dumps({"split": {name: ["clip"]}, "annotations": [_ann_3d(label=0, name="clip")]}))
    with pytest.raises(DataFormatError, match="field 'split': has a split named"):
        prepare("pyskl", path, tmp_path / "ds", progress=False)


class AllocatingArray:
    def __reduce__(self):
        return (np.ndarray, ((10**6, 1000),))  # 8 GB of memory the pickle does not hold


def test_a_pickle_cannot_allocate_an_array_it_does_not_hold(tmp_path):
    path = tmp_path / "a.pkl"
    path.write_bytes(pickle.dumps([{"label": 0, "keypoint": AllocatingArray()}]))
    with pytest.raises(DataFormatError, match="calls numpy.ndarray, which allocates memory"):
        pyskl.load_pickle(path)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_every_pickle_protocol_of_numpy_arrays_is_read(tmp_path, protocol):
    ann = _ann_3d(label=0, name="clip")
    path = tmp_path / "a.pkl"
    path.write_bytes(pickle.dumps([ann], protocol=protocol))
    [loaded] = pyskl.load_pickle(path)["annotations"]
    np.testing.assert_array_equal(loaded["keypoint"], ann["keypoint"])


def test_a_pickle_cannot_size_the_unpicklers_memo(tmp_path):
    """The C unpickler grows its memo table to the index a PUT names: 5e8 would zero 4 GB."""
    path = tmp_path / "a.pkl"
    path.write_bytes(b"\x80\x04]r" + (500_000_000).to_bytes(4, "little") + b".")  # [], LONG_BINPUT 500000000, STOP
    with pytest.raises(DataFormatError, match="stores memo entry 500000000 after only 0 entries"):
        pyskl.load_pickle(path)


def test_not_a_pickle(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataFormatError, match="not a readable PYSKL pickle"):
        pyskl.load_pickle(path)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_pickle_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "f.pkl"
    path.write_bytes(data)
    try:
        pyskl.load_pickle(path)
    except DataFormatError:
        pass


_shapes = st.tuples(st.integers(0, 3), st.integers(0, 4), st.sampled_from([3, 17, 20, 25]), st.integers(1, 4))
_values = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.sampled_from([0.0, 1.0, 500.0])


@settings(max_examples=200, deadline=None)
@given(
    keypoint=_shapes.flatmap(lambda shape: hnp.arrays(np.float32, shape, elements=_values)),
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    extra=st.fixed_dictionaries({}, optional={
        "img_shape": st.one_of(st.tuples(st.integers(-5, 2000) | st.integers(), st.integers(-5, 2000)), st.none(), st.text(max_size=3)),
        "keypoint_score": hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=4, max_side=25), elements=_values),
    }),
)
def test_fuzz_annotation_conversion(keypoint, dtype, extra):
    with np.errstate(over="ignore"):
        keypoint = keypoint.astype(dtype)
    try:
        seq, layout = pyskl.annotation_to_sequence({"keypoint": keypoint, **extra})
    except DataFormatError:
        return
    assert seq.dtype == np.float32 and seq.ndim == 4 and np.isfinite(seq).all() and layout in pyskl.LAYOUT_BY_JOINTS.values()


_leaf = st.none() | st.integers(-2, 3) | st.text(max_size=4) | st.just(np.ones((1, 2, 17, 2), np.float16))
_annotation = st.dictionaries(st.sampled_from(["frame_dir", "label", "keypoint", "keypoint_score", "img_shape"]), _leaf)


@settings(max_examples=60, deadline=None)
@given(content=st.one_of(
    st.fixed_dictionaries({"annotations": st.lists(_annotation | _leaf, max_size=3)},
                          optional={"split": st.dictionaries(st.text(max_size=3), st.lists(_leaf, max_size=2) | _leaf)}),
    st.lists(_annotation, max_size=2), _leaf,
))
def test_fuzz_pickled_content(tmp_path_factory, content):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "f.pkl").write_bytes(pickle.dumps(content))
    try:
        prepare("pyskl", folder / "f.pkl", folder / "ds", progress=False)
    except DataFormatError:
        return
    assert len(SkeletonStore(folder / "ds")) >= 1

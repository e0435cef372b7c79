import json
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skelmae.data.formats import nw_ucla, read_pose_file
from skelmae.data.prepare import prepare, report_path
from skelmae.data.storage import SkeletonStore
from skelmae.data.transforms import build_transforms
from skelmae.errors import DataFormatError


@pytest.fixture(scope="module")
def ucla_dir(shared_data):
    return shared_data / "nw_ucla" / "all_sqe"


@pytest.fixture(scope="module")
def ucla(ucla_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ucla") / "nw-ucla"
    report = prepare("nw-ucla", ucla_dir, out, workers=2, progress=False)
    assert report.report is None and report.skipped == []
    return SkeletonStore(out)


def test_full_set_cross_view_split(ucla, shared_data):
    assert len(ucla) == 1484 and ucla.layout.name == "kinect20" and ucla.num_persons == 1
    assert ucla.split("xview_train").size == 1020 and ucla.split("xview_test").size == 464
    views = ucla.meta("view")
    assert set(views[ucla.split("xview_train")]) == {1, 2} and set(views[ucla.split("xview_test")]) == {3}
    # the test split is exactly CTR-GCN's validation list
    with open(shared_data / "nw_ucla" / "val_label.pkl", "rb") as fh:
        reference = pickle.load(fh)
    names = np.array(ucla.names)
    assert sorted(names[ucla.split("xview_test")]) == sorted(r["file_name"] for r in reference)
    lengths = dict(zip(ucla.names, ucla.lengths))
    assert all(lengths[r["file_name"]] == r["length"] for r in reference)
    labels = dict(zip(ucla.names, ucla.labels))
    assert all(labels[r["file_name"]] == r["label"] - 1 for r in reference)
    counts = np.bincount(ucla.labels, minlength=10)
    assert ucla.num_classes == 10 and counts.sum() == 1484 and counts.min() >= 141 and counts.max() <= 173


def test_stored_sequence_is_the_centred_json(ucla, ucla_dir):
    i = ucla.names.index("a01_s01_e00_v01")
    raw = np.asarray(json.loads((ucla_dir / "a01_s01_e00_v01.json").read_text())["skeletons"], dtype=np.float32)
    seq = ucla.sequence(i)
    assert seq.shape == (len(raw), 1, 20, 3)
    np.testing.assert_array_equal(seq[:, 0], raw - raw[0, 1])  # spine joint of frame 0 is the origin
    np.testing.assert_array_equal(nw_ucla.load_sequence(ucla_dir / "a01_s01_e00_v01.json"), seq)
    assert ucla.labels[i] == 0 and ucla.meta("subject")[i] == 1 and ucla.meta("view")[i] == 1


def test_single_frame_sequence_survives_the_crop_resize(ucla):
    i = ucla.names.index("a02_s09_e04_v02")
    seq = ucla.sequence(i)
    assert seq.shape == (1, 1, 20, 3)
    x = seq.transpose(3, 0, 2, 1)  # (C, T, V, M)
    for train in (True, False):
        out = build_transforms(ucla.layout, window=52, train=train)(x, np.random.default_rng(0))  # min_crop 64
        assert out.shape == (3, 52, 20, 1) and np.isfinite(out).all()
        np.testing.assert_allclose(out, np.broadcast_to(out[:, :1], out.shape), atol=1e-6)  # a still pose


def _doc(**changes):
    doc = {"file_name": "a02_s03_e01_v02", "label": 2, "skeletons": [[[0.1 * j, 0.2, 3.0] for j in range(20)]] * 3}
    doc.update(changes)
    return json.dumps(doc)


@pytest.mark.parametrize(
    "text, where, message",
    [
        ('{"file_name": "a01_s01_e00_v01",\n "label": }', 2, "invalid JSON"),
        ("[1, 2]", None, "top level is a list"),
        (_doc(label=None), "field 'label'", "is None"),
        (_doc(label=3), "field 'label'", "file name says action a02"),
        (_doc(file_name="walk_01"), "field 'file_name'", "'walk_01'"),
        (_doc(skeletons=[]), "field 'skeletons'", "is empty"),
        (_doc(skeletons=[[[0, 0, 0]] * 19]), "field 'skeletons[0]'", "has 19 joints"),
        (_doc(skeletons=[[[0, 0, 1]] * 20, [[0, "x", 1]] * 20]), "field 'skeletons[1][0]'", "[0, 'x', 1]"),
        (_doc(skeletons=[[[0, 0, 1e400]] * 20]), "field 'skeletons[0]'", "not finite"),
        (_doc(skeletons=[[[0, 0, 0]] * 20]), "field 'skeletons'", "every joint is exactly zero"),
        (_doc(skeletons=[[[0, 0, 1]] * 20, [[0, 0, 1e39]] * 20]), "field 'skeletons[1]'", "beyond 1.7e+38"),
        (_doc(file_name="a02_s" + "3" * 30 + "_e01_v02"), "field 'file_name'", "a name like"),
        ('{"label": ' + "1" * 5000 + "}", None, "invalid JSON"),
    ],
)
def test_malformed_files_name_the_field(text, where, message):
    with pytest.raises(DataFormatError) as info:
        nw_ucla.parse_sequence(text, "bad.json")
    assert info.value.path == "bad.json" and info.value.where == where and message in str(info.value)


def test_read_pose_file_never_returns_values_float32_cannot_hold(tmp_path):
    """1e39 is a finite float64 that float32 turns into inf; ``predict`` must get an error instead."""
    path = tmp_path / "a02_s03_e01_v02.json"
    path.write_text(_doc(skeletons=[[[0.1, 0.2, 1e39]] * 20]))
    with pytest.raises(DataFormatError, match="a02_s03_e01_v02.json, field 'skeletons\\[0\\]': a joint holds a value beyond"):
        read_pose_file(path)


def test_skip_mode_reports_bad_files(ucla_dir, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("a01_s01_e00_v01", "a01_s01_e00_v03", "a12_s10_e04_v02"):
        (raw / f"{name}.json").write_bytes((ucla_dir / f"{name}.json").read_bytes())
    (raw / "a04_s01_e00_v01.json").write_text(_doc()[:50])  # truncated
    with pytest.raises(DataFormatError, match="a04_s01_e00_v01.json, line 1: invalid JSON"):
        prepare("nw-ucla", raw, tmp_path / "ds", workers=1, progress=False)
    assert not (tmp_path / "ds").exists()
    report = prepare("nw-ucla", raw, tmp_path / "ds", workers=1, on_error="skip", progress=False)
    store = SkeletonStore(tmp_path / "ds")
    assert len(store) == 3 and report.split_counts == {"xview_train": 2, "xview_test": 1}
    text = report_path(tmp_path / "ds").read_text()
    assert report.report == report_path(tmp_path / "ds") and "a04_s01_e00_v01.json, line 1: invalid JSON" in text
    assert store.manifest["source"]["skipped"] == 1


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    skeletons=st.one_of(_json_values, st.lists(st.lists(st.lists(_json_values, max_size=4), min_size=19, max_size=21), max_size=3)),
    label=_json_values,
    name=st.one_of(_json_values, st.just("a03_s01_e00_v01")),
)
def test_fuzz_structured_json_only_raises_format_errors(skeletons, label, name):
    try:
        seq, lab, _, _ = nw_ucla.parse_sequence(json.dumps({"file_name": name, "label": label, "skeletons": skeletons}))
    except DataFormatError:
        return
    assert seq.dtype == np.float32 and seq.shape[1:] == (1, 20, 3) and lab == 2


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_text_only_raises_format_errors(text):
    try:
        nw_ucla.parse_sequence(text)
    except DataFormatError:
        pass

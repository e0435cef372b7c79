import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skelmae.data.formats import ntu
from skelmae.data.prepare import prepare
from skelmae.data.storage import SkeletonStore
from skelmae.errors import DataFormatError

REFERENCE_NAMES = ["S001C001P001R001A001", "S017C003P020R002A054", "S017C003P020R002A055", "S017C003P020R002A056",
                   "S017C003P020R002A057"]


@pytest.fixture(scope="module")
def ntu_dir(shared_data):
    return shared_data / "ntu_rgbd_samples"


@pytest.fixture(scope="module")
def reference(ntu_dir):
    with open(ntu_dir / "reference_sgn_raw_skes_data" / "raw_skes_data.pkl", "rb") as fh:
        return {sample["name"]: sample for sample in pickle.load(fh)}


# -- parsing against the reference parsers -----------------------------------------------


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_raw_joints_equal_the_sgn_parser_output(ntu_dir, reference, name):
    raw = ntu.read_skeleton(ntu_dir / "raw_skeletons" / f"{name}.skeleton")
    expected = reference[name]
    assert raw.num_frames == expected["num_frames"] and raw.dropped_frames == []
    assert [b.body_id for b in raw.bodies] == list(expected["data"])
    for body in raw.bodies:
        ref = expected["data"][body.body_id]
        assert body.joints.dtype == np.float32
        np.testing.assert_array_equal(body.joints.reshape(-1, 3), ref["joints"])  # exact in float32
        assert list(range(body.start, body.end + 1)) == ref["interval"]
        if "motion" in ref:
            assert body.motion == ref["motion"]
        else:
            assert body.motion is None


def test_raw_joints_equal_the_official_txt2npy_output(ntu_dir):
    ref = np.load(ntu_dir / "reference_txt2npy" / "S001C001P001R001A001.skeleton.npy", allow_pickle=True).item()
    raw = ntu.read_skeleton(ntu_dir / "raw_skeletons" / "S001C001P001R001A001.skeleton")
    np.testing.assert_array_equal(raw.bodies[0].joints, ref["skel_body0"].astype(np.float32))


def test_crlf_and_lf_files_parse_the_same(ntu_dir):
    data = (ntu_dir / "raw_skeletons" / "S001C001P001R001A001.skeleton").read_bytes()
    assert b"\r\n" in data
    crlf = ntu.parse_skeleton(data.decode())
    lf = ntu.parse_skeleton(data.replace(b"\r\n", b"\n").decode())
    np.testing.assert_array_equal(crlf.bodies[0].joints, lf.bodies[0].joints)


# -- the full preprocessing -------------------------------------------------------------


# Actor 1 is the body that moves most after the spread filter. In A055 body ...7959 moves
# more (0.2498 vs 0.2414), but 18 % of its frames are "noisy" and its motion over the
# clean frames (0.2368) puts it second.
@pytest.mark.parametrize(
    "name, first", [("S017C003P020R002A054", "7917"), ("S017C003P020R002A055", "7917"),
                    ("S017C003P020R002A056", "7917"), ("S017C003P020R002A057", "7959")],
)
def test_two_person_samples_are_ordered_by_motion_and_centred(ntu_dir, reference, name, first):
    bodies = reference[name]["data"]
    ids = sorted(bodies, key=lambda body_id: not body_id.endswith(first))
    joints = np.stack([bodies[i]["joints"].reshape(-1, 25, 3) for i in ids], axis=1)
    expected = joints - joints[0, 0, 1]  # joint 2 of actor 1 in the first frame
    seq = ntu.load_sequence(ntu_dir / "raw_skeletons" / f"{name}.skeleton")
    assert seq.dtype == np.float32
    np.testing.assert_array_equal(seq, expected)


def test_one_person_sample_and_the_second_actor_option(ntu_dir, reference):
    path = ntu_dir / "raw_skeletons" / "S001C001P001R001A001.skeleton"
    joints = reference["S001C001P001R001A001"]["data"]["72057594037931101"]["joints"].reshape(-1, 25, 3)
    zeros = ntu.load_sequence(path)
    np.testing.assert_array_equal(zeros[:, 0], joints - joints[0, 1])
    assert (zeros[:, 1] == 0).all()
    duplicate = ntu.load_sequence(path, second_actor="duplicate")
    np.testing.assert_array_equal(duplicate[:, 1], duplicate[:, 0])


# Synthetic files for the denoising rules the real samples do not exercise.

def _pose(offset=0.0, wide=False, rng=None):
    """A standing (or, with wide=True, a lying, 'noisy') body: 25 joints, x-extent vs y-extent."""
    rng = rng or np.random.default_rng(0)
    x = np.linspace(-0.2, 0.2, 25) * (6 if wide else 1)
    y = np.linspace(-0.8, 0.8, 25) * (0.2 if wide else 1)
    pose = np.stack([x, y, np.full(25, 3.0)], axis=1) + rng.normal(0, 0.01, (25, 3))
    pose[:, 0] += offset
    return pose


def _body(frames, motion=0.05, wide=False, seed=0):
    rng = np.random.default_rng(seed)
    return {t: _pose(motion * np.sin(t), wide, rng) for t in frames}


def _skeleton_text(num_frames, bodies, crlf=False):
    """bodies: {body_id: {frame: (25, 3) joints}} -> .skeleton text."""
    lines = [str(num_frames)]
    for t in range(num_frames):
        present = [(bid, frames[t]) for bid, frames in bodies.items() if t in frames]
        lines.append(str(len(present)))
        for bid, joints in present:
            lines.append(f"{bid} 0 1 1 1 1 0 0.1 0.2 2")
            lines.append("25")
            lines += [" ".join(f"{v:.6f}" for v in (*xyz, 1, 2, 3, 4, 0.5, 0.1, 0.2, 0.3)) + " 2" for xyz in joints]
    return ("\r\n" if crlf else "\n").join(lines) + "\n"


def _run(text, **kwargs):
    return ntu.preprocess(ntu.parse_skeleton(text), **kwargs)


def _f32(joints):
    return np.float32(np.round(joints, 6))


def test_frames_without_bodies_are_dropped():
    bodies = {"1": _body([0, 1, 3, 4])}
    raw = ntu.parse_skeleton(_skeleton_text(5, bodies))
    assert raw.num_frames == 4 and raw.dropped_frames == [2]
    assert _run(_skeleton_text(5, bodies)).shape == (4, 2, 25, 3)


def test_short_bodies_are_dropped_and_their_frames_removed():
    long_body, short_body = _body(range(0, 30), seed=1), _body(range(25, 36), motion=0.5, seed=2)  # 11 frames
    seq = _run(_skeleton_text(36, {"1": long_body, "2": short_body}))
    assert seq.shape == (30, 2, 25, 3) and (seq[:, 1] == 0).all()  # frames 30..35 held only the short body
    np.testing.assert_allclose(seq[:, 0], np.stack([_f32(long_body[t]) for t in range(30)]) - _f32(long_body[0][1]), atol=1e-6)
    # when every body is that short none is dropped (the reference would crash)
    seq = _run(_skeleton_text(20, {"1": _body(range(0, 10)), "2": _body(range(10, 20), motion=0.2, seed=3)}))
    assert seq.shape == (20, 2, 25, 3) and (seq[:, 0] != 0).any(axis=(1, 2)).all()


def test_noisy_wide_body_is_dropped_even_if_it_moves_most():
    person, noise = _body(range(40), motion=0.02, seed=1), _body(range(40), motion=1.0, wide=True, seed=2)
    seq = _run(_skeleton_text(40, {"ghost": noise, "person": person}))
    assert (seq[:, 1] == 0).all()
    np.testing.assert_allclose(seq[0, 0] + _f32(person[0][1]), _f32(person[0]), atol=1e-6)


def test_id_switch_joins_actor_one_and_touching_intervals_overwrite():
    a, b = _body(range(0, 21), motion=0.3, seed=1), _body(range(20, 40), motion=0.01, seed=2)
    for option in ("zeros", "duplicate"):  # two slots were used: actor 2 stays empty, never duplicated
        seq = _run(_skeleton_text(40, {"a": a, "b": b}), second_actor=option)
        assert seq.shape == (40, 2, 25, 3) and (seq[:, 1] == 0).all()
        origin = _f32(a[0][1])
        np.testing.assert_allclose(seq[20, 0], _f32(b[20]) - origin, atol=1e-6)  # b (later) overwrote frame 20
        np.testing.assert_allclose(seq[19, 0], _f32(a[19]) - origin, atol=1e-6)


def test_third_overlapping_body_is_discarded_and_actor_two_interval_quirk():
    a = _body(range(0, 40), motion=0.5, seed=1)
    b = _body(range(25, 40), motion=0.2, seed=2)  # overlaps a -> actor 2, whose interval becomes [0, 39]
    c = _body(range(0, 15), motion=0.1, seed=3)  # overlaps a, and the virtual actor-2 interval -> discarded
    seq = _run(_skeleton_text(40, {"a": a, "b": b, "c": c}))
    assert seq.shape == (40, 2, 25, 3)
    assert (seq[:25, 1] == 0).all() and (seq[25:, 1] != 0).any(axis=(1, 2)).all()


def test_centring_uses_actor_one_first_present_frame():
    a = _body(range(10, 40), motion=0.5, seed=1)  # most motion, appears at frame 10
    b = _body(range(0, 40), motion=0.05, seed=2)
    seq = _run(_skeleton_text(40, {"b": b, "a": a}))
    origin = _f32(a[10][1])
    assert (seq[:10, 0] == 0).all()  # actor 1 absent: stays zero
    np.testing.assert_allclose(seq[10, 0, 1], 0, atol=1e-6)
    np.testing.assert_allclose(seq[0, 1], _f32(b[0]) - origin, atol=1e-6)


# -- malformed input ----------------------------------------------------------------------

_GOOD = _skeleton_text(3, {"7": _body(range(3))})


def _lines(text):
    return text.split("\n")


def _replace_line(text, index, new):
    lines = _lines(text)
    lines[index] = new
    return "\n".join(lines)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("", 1, "frame count is ''"),
        ("x\n", 1, "frame count is 'x'"),
        ("-2\n", 1, "frame count is -2"),
        ("3\n0\n0\n0\n", None, "no frame contains a body"),
        ("\n".join(_lines(_GOOD)[:20]), 20, "file ends inside the joints of frame 1"),
        ("\n".join(_lines(_GOOD)[:29]), 30, "file ends where the body count of frame 2 should be"),
        (_replace_line(_GOOD, 3, "24"), 4, "joint count is 24"),
        (_replace_line(_GOOD, 2, "7 0 1 1"), 3, "body line of frame 1 has 4 values"),
        (_replace_line(_GOOD, 10, "0.1 0.2 abc 1 2 3 4 5 6 7 8 2"), 11, "value 3 is 'abc'"),
        (_replace_line(_GOOD, 10, "0.1 0.2 0.3 1 2 3 4 5 6 7 8"), 11, "joint line has 11 values"),
        (_replace_line(_GOOD, 10, "0.1 nan 0.3 1 2 3 4 5 6 7 8 2"), 11, "not finite"),
        (_replace_line(_GOOD, 10, ""), 11, "joint line has 0 values"),
        (_GOOD + "5\n", len(_lines(_GOOD)), "unexpected content after the 3 declared frames"),
    ],
)
def test_malformed_files_name_the_line(text, line, message):
    with pytest.raises(DataFormatError) as info:
        ntu.parse_skeleton(text, "bad.skeleton")
    assert info.value.path == "bad.skeleton" and info.value.where == line and message in str(info.value)


def test_binary_file_is_a_format_error(tmp_path):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_bytes(b"3\n\xff\xfe\n")
    with pytest.raises(DataFormatError, match="line 2: byte 0xff is not text"):
        ntu.load_sequence(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from("0123456789 .-e\nnaxi\r\t"), max_size=400) | st.text(max_size=100))
def test_fuzz_random_text_only_raises_format_errors(text):
    try:
        ntu.preprocess(ntu.parse_skeleton(text))
    except DataFormatError:
        pass


_VALID = _skeleton_text(14, {"1": _body(range(14), seed=1), "2": _body(range(2, 14), motion=0.3, seed=2)})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_files_only_raise_format_errors(data):
    tokens = _VALID.split(" ")
    kind = data.draw(st.sampled_from(["truncate", "token", "drop_line", "dup_line"]))
    if kind == "truncate":
        text = _VALID[: data.draw(st.integers(0, len(_VALID)))]
    elif kind == "token":
        i = data.draw(st.integers(0, len(tokens) - 1))
        tokens[i] = data.draw(st.text(max_size=6))
        text = " ".join(tokens)
    else:
        lines = _lines(_VALID)
        i = data.draw(st.integers(0, len(lines) - 1))
        lines[i : i + 1] = [] if kind == "drop_line" else [lines[i], lines[i]]
        text = "\n".join(lines)
    try:
        seq = ntu.preprocess(ntu.parse_skeleton(text))
    except DataFormatError:
        return
    assert seq.dtype == np.float32 and seq.shape[1:] == (2, 25, 3) and np.isfinite(seq).all()


# -- splits on the full metadata ---------------------------------------------------------


def _statistics(ntu_dir, dataset):
    folder = ntu_dir / "sgn_statistics" / dataset
    names = (folder / "skes_available_name.txt").read_text().split()
    columns = {field: np.array((folder / f"{field}.txt").read_text().split(), dtype=np.int64)
               for field in ("setup", "camera", "performer", "replication", "label")}
    return names, columns


@pytest.mark.parametrize(
    "dataset, counts",
    [
        ("ntu60", {"xsub": (40_091, 16_487), "xview": (37_646, 18_932)}),
        ("ntu120", {"xsub": (63_026, 50_919), "xset": (54_468, 59_477)}),
    ],
)
def test_split_sizes_on_the_full_metadata(ntu_dir, dataset, counts):
    names, columns = _statistics(ntu_dir, dataset)
    assert len(names) == ntu.DATASETS[dataset].available
    missing = ntu.missing_skeletons(dataset)
    assert len(missing) == {"ntu60": 302, "ntu120": 535}[dataset] and not missing & set(names)
    # the per-sample metadata files agree with the file names the importer parses
    parsed = [ntu.parse_name(name) for name in names]
    for field in ("setup", "camera", "performer", "replication"):
        np.testing.assert_array_equal([p[field] for p in parsed], columns[field])
    np.testing.assert_array_equal([p["action"] for p in parsed], columns["label"])
    masks = ntu.split_masks(dataset, columns["setup"], columns["camera"], columns["performer"])
    assert {name: int(mask.sum()) for name, mask in masks.items()} == {
        f"{protocol}_{part}": n for protocol, (train, test) in counts.items() for part, n in (("train", train), ("test", test))
    }


def test_class_names():
    assert len(ntu.class_names("ntu60")) == 60 and len(ntu.class_names("ntu120")) == 120
    assert ntu.class_names("ntu60")[0] == "drink water" and ntu.class_names("ntu120")[60] == "put on headphone"


# -- the importer ------------------------------------------------------------------------


def test_prepare_ntu60_from_the_raw_files(ntu_dir, tmp_path):
    raw = ntu_dir / "raw_skeletons"
    report = prepare("ntu60", raw, tmp_path / "ntu60", workers=2, progress=False)
    store = SkeletonStore(tmp_path / "ntu60")
    assert len(store) == 8 and store.layout.name == "ntu25" and store.num_classes == 60
    assert store.names == sorted(p.stem for p in raw.glob("*.skeleton"))
    assert report.split_counts == {"xsub_train": 4, "xsub_test": 4, "xview_train": 4, "xview_test": 4}
    for i, name in enumerate(store.names):
        np.testing.assert_array_equal(store.sequence(i), ntu.load_sequence(raw / f"{name}.skeleton"))
        meta = ntu.parse_name(name)
        assert store.labels[i] == meta["action"] - 1
        assert all(store.meta(field)[i] == value for field, value in meta.items())
        assert (i in store.split("xview_train")) == (meta["camera"] in (2, 3))
        assert (i in store.split("xsub_train")) == (meta["performer"] in ntu.XSUB60_TRAIN)
    assert store.manifest["source"]["second_actor"] == "zeros"


def test_prepare_leaves_out_missing_and_foreign_samples(ntu_dir, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    data = (ntu_dir / "raw_skeletons" / "S001C001P001R001A001.skeleton").read_bytes()
    for name in ("S001C001P001R001A001", "S001C002P005R002A008", "S018C001P008R001A061", "S001C001P001R002A001"):
        (raw / f"{name}.skeleton").write_bytes(data)
    report = prepare("ntu60", raw, tmp_path / "ntu60", workers=1, progress=False)
    assert SkeletonStore(tmp_path / "ntu60").names == ["S001C001P001R001A001", "S001C001P001R002A001"]
    assert any("1 sample(s) on the official missing-skeleton list" in n for n in report.notes)
    assert any("1 file(s) of setups/actions outside ntu60" in n for n in report.notes)
    store = SkeletonStore(prepare("ntu120", raw, tmp_path / "ntu120", workers=1, progress=False).out)
    assert store.names == ["S001C001P001R001A001", "S001C001P001R002A001", "S018C001P008R001A061"]
    assert store.split("xset_train").tolist() == [2] and store.labels[2] == 60
    (raw / "sub").mkdir()
    (raw / "sub" / "S001C001P001R001A001.skeleton").write_bytes(data)
    with pytest.raises(DataFormatError, match="sample S001C001P001R001A001 is also at"):
        prepare("ntu60", raw, tmp_path / "again", workers=1, progress=False)


def test_badly_named_and_truncated_files_are_skipped_with_a_report(ntu_dir, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    data = (ntu_dir / "raw_skeletons" / "S001C001P001R001A001.skeleton").read_bytes()
    (raw / "S001C001P001R001A001.skeleton").write_bytes(data)
    (raw / "S001C001P001R001A002.skeleton").write_bytes(data[: len(data) // 3])
    (raw / "walking.skeleton").write_bytes(data)
    report = prepare("ntu60", raw, tmp_path / "ds", workers=1, on_error="skip", progress=False)
    assert report.samples == 1 and len(report.skipped) == 2
    text = report.report.read_text()
    assert "walking.skeleton, file name: 'walking' is not an NTU sample name" in text
    assert "S001C001P001R001A002.skeleton, line " in text and "file ends inside" in text


def test_ntu120_fills_the_second_actor_like_the_reference(ntu_dir, tmp_path):
    """The CTR-GCN/SGN NTU 120 script copies actor 1 into the empty second slot; NTU 60 leaves it zero."""
    raw = ntu_dir / "raw_skeletons"
    one_actor = raw / "S001C001P001R001A001.skeleton"
    ntu120 = SkeletonStore(prepare("ntu120", raw, tmp_path / "ntu120", workers=1, progress=False).out)
    assert ntu120.manifest["source"]["second_actor"] == "duplicate"
    seq = ntu120.sequence(ntu120.names.index("S001C001P001R001A001"))
    np.testing.assert_array_equal(seq, ntu.load_sequence(one_actor, second_actor="duplicate"))
    np.testing.assert_array_equal(seq[:, 1], seq[:, 0])
    two_actors = ntu120.sequence(ntu120.names.index("S017C003P020R002A054"))
    np.testing.assert_array_equal(two_actors, ntu.load_sequence(raw / "S017C003P020R002A054.skeleton"))  # never copied
    zeros = SkeletonStore(prepare("ntu120", raw, tmp_path / "zeros", workers=1, progress=False, second_actor="zeros").out)
    assert zeros.manifest["source"]["second_actor"] == "zeros"
    assert (zeros.sequence(zeros.names.index("S001C001P001R001A001"))[:, 1] == 0).all()
    [sample] = ntu.Ntu120(ntu.NtuOptions()).read(one_actor)
    np.testing.assert_array_equal(sample.sequence, seq)


# -- input the reference would crash on or turn into garbage --------------------------------


def _twice_in_frame_two():
    lines = _lines(_skeleton_text(14, {"1": _body(range(14), seed=1)}))
    frame2 = 1 + 28  # frame count, then 28 lines per one-body frame
    lines[frame2] = "2"
    lines[frame2 + 1 : frame2 + 28] = lines[frame2 + 1 : frame2 + 28] * 2
    return "\n".join(lines), frame2 + 28 + 1


def _scaled(value):
    body = _body(range(14), seed=1)
    body[3][5] = (value, 0.0, 3.0)
    return _skeleton_text(14, {"1": body}), 1 + 3 * 28 + 3 + 5 + 1


def test_a_body_twice_in_one_frame_names_the_line():
    text, line = _twice_in_frame_two()
    with pytest.raises(DataFormatError) as info:
        ntu.parse_skeleton(text, "x.skeleton")
    assert info.value.where == line and "body 1 appears twice in frame 2" in str(info.value)


def test_a_multi_body_file_of_zeros_is_refused():
    zero = {t: np.zeros((25, 3)) for t in range(14)}
    with pytest.raises(DataFormatError, match="x.skeleton: every joint of the main actor is exactly zero"):
        ntu.preprocess(ntu.parse_skeleton(_skeleton_text(14, {"1": zero, "2": dict(zero)})), path="x.skeleton")


# 1e39 is finite in float64 but not in float32; 3e38 is finite in float32, but centring on -3e38 overflows
@pytest.mark.parametrize("value, message", [(1e39, "beyond 1.7e+38"), (3e38, "beyond 1.7e+38"), (float("nan"), "not finite")])
def test_coordinates_float32_cannot_hold_or_centre_name_the_line(value, message):
    text, line = _scaled(value)
    with pytest.raises(DataFormatError) as info:
        ntu.parse_skeleton(text, "x.skeleton")
    assert info.value.where == line and message in str(info.value)


def test_refused_files_are_skipped_and_the_rest_imported(ntu_dir, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    good = "S001C001P001R001A001"
    (raw / f"{good}.skeleton").write_bytes((ntu_dir / "raw_skeletons" / f"{good}.skeleton").read_bytes())
    zero = {t: np.zeros((25, 3)) for t in range(14)}
    bad = {
        "S001C001P001R001A002": _twice_in_frame_two()[0],
        "S001C001P001R001A003": _skeleton_text(14, {"1": zero, "2": dict(zero)}),
        "S001C001P001R001A004": _scaled(1e39)[0],
        "S001C001P001R001A000": _skeleton_text(14, {"1": _body(range(14))}),
    }
    for name, text in bad.items():
        (raw / f"{name}.skeleton").write_text(text)
    with pytest.raises(DataFormatError, match="A000.skeleton, file name: action is 0"):
        prepare("ntu60", raw, tmp_path / "ds", workers=1, progress=False)
    report = prepare("ntu60", raw, tmp_path / "ds", workers=1, on_error="skip", progress=False)
    assert report.samples == 1 and SkeletonStore(tmp_path / "ds").names == [good]
    assert sorted(Path(message.split(",")[0].split(":")[0]).stem for message in report.skipped) == sorted(bad)

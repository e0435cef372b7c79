"""``skelmae data prepare files``: generated folders of text, array and JSON files."""

import json
from pathlib import Path

import numpy as np
import pytest

from skelmae.data.formats import FormatOptionError, read_pose_file
from skelmae.data.formats.files import NamePattern, SplitRule
from skelmae.data.prepare import prepare, report_path
from skelmae.data.storage import SkeletonStore
from skelmae.errors import DataFormatError

PATTERN = "a{label:d}_s{subject:d}_e{rep:d}_skeleton3D.txt"
JOINTS = 20


def _clip(rng, frames=12, persons=1, offset=5.0):
    return rng.normal(size=(frames, persons, JOINTS, 3)) + offset


def _write_txt(path: Path, clip: np.ndarray, confidence=True, header=None):
    rows = clip.reshape(-1, 3)
    if confidence:
        rows = np.concatenate([rows, np.ones((len(rows), 1))], axis=1)
    lines = ([header] if header else []) + [" ".join(f"{v:.5f}" for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def text_folder(tmp_path):
    """UTKinect-like: x y z confidence per line, 20 lines per frame, action/subject/repetition in the name."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "raw"
    raw.mkdir()
    clips = {}
    for action in (1, 3, 4):  # a gap in the numbering
        for subject in (1, 2, 3, 4):
            for rep in (1, 2):
                name = f"a{action:02d}_s{subject:02d}_e{rep:02d}_skeleton3D"
                clips[name] = _clip(rng)
                _write_txt(raw / f"{name}.txt", clips[name])
    return raw, clips


def _prepare(raw, out, **options):
    return prepare("files", raw, out, workers=1, progress=False, **options)


def test_text_files_import_with_labels_fields_splits_and_centring(text_folder, tmp_path):
    raw, clips = text_folder
    report = _prepare(
        raw, tmp_path / "ds", joints=JOINTS, columns="x,y,z,c", name_pattern=PATTERN,
        split=["xsub_train:subject % 2 == 1", "xsub_test:subject in [2, 4]"],
    )
    store = SkeletonStore(tmp_path / "ds")
    assert report.samples == 24 and store.layout.name == "kinect20" and store.channels == ["x", "y", "z"]
    assert store.classes == ["1", "3", "4"]  # distinct numbers in order: no empty class for a02
    assert report.split_counts == {"all": 24, "xsub_train": 12, "xsub_test": 12}
    i = store.names.index("a03_s02_e01_skeleton3D")
    assert store.labels[i] == 1 and store.meta("subject")[i] == 2 and store.meta("rep")[i] == 1
    assert i in set(store.split("xsub_test")) and i not in set(store.split("xsub_train"))
    raw_clip = clips["a03_s02_e01_skeleton3D"]
    expected = raw_clip - raw_clip[0, 0, store.layout.center]  # centred like the built-in 3D formats
    np.testing.assert_allclose(store.sequence(i), expected, atol=1e-4)
    assert store.manifest["preprocessing"]["centre_joint"] == "spine"  # recorded, so predict centres raw clips too


def test_class_names_file_is_indexed_by_numeric_labels(text_folder, tmp_path):
    raw, _ = text_folder
    names = tmp_path / "classes.txt"
    names.write_text("walk\nsit\nstand\npick up\n")
    _prepare(raw, tmp_path / "ds", joints=JOINTS, columns="x,y,z,c", name_pattern=PATTERN, class_names=names)
    store = SkeletonStore(tmp_path / "ds")
    assert store.classes == ["walk", "sit", "stand", "pick up"]  # 1-based: a01 -> walk, a04 -> pick up
    assert store.labels[store.names.index("a04_s01_e01_skeleton3D")] == 3


def test_index_file_with_text_labels_and_a_split_file(tmp_path):
    rng = np.random.default_rng(1)
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = ["name,label,subject"]
    for k in range(6):
        np.save(raw / f"clip{k}.npy", _clip(rng)[:, 0])  # (T, V, C)
        rows.append(f"clip{k}.npy,{'jump' if k % 2 else 'wave'},{k}")
    (raw / "index.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "test.txt").write_text("clip4\nclip5\n")
    _prepare(raw, tmp_path / "ds", layout="kinect20", index=raw / "index.csv", split=[f"test:@{tmp_path / 'test.txt'}"])
    store = SkeletonStore(tmp_path / "ds")
    assert len(store) == 6  # the index itself is no sequence
    assert store.classes == ["jump", "wave"] and store.labels[store.names.index("clip1")] == 0
    assert sorted(store.names[i] for i in store.split("test")) == ["clip4", "clip5"]


def test_one_row_per_frame_csv_with_a_header_naming_joints_and_two_persons(tmp_path):
    rng = np.random.default_rng(2)
    raw = tmp_path / "raw"
    raw.mkdir()
    clip = _clip(rng, persons=2)
    layout_joints = [f"j{v}" for v in range(JOINTS)]
    header = ",".join(f"{j}_{c}" for _ in range(2) for j in layout_joints for c in "xyz")
    body = "\n".join(",".join(f"{v:.5f}" for v in frame.reshape(-1)) for frame in clip)
    (raw / "take_1.csv").write_text(header + "\n" + body + "\n")
    _prepare(raw, tmp_path / "ds", joints=JOINTS, rows="frame", max_persons=2, center=False)
    store = SkeletonStore(tmp_path / "ds")
    assert store.num_persons == 2
    np.testing.assert_allclose(store.sequence(0), clip, atol=1e-4)
    assert store.labels[0] == -1 and store.classes == []  # no label source: unlabelled, for pre-training


def test_2d_columns_keep_a_score_channel(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    xy = np.random.default_rng(3).normal(size=(5, 17, 2))
    np.savetxt(raw / "c1.txt", xy.reshape(-1, 2))
    _prepare(raw, tmp_path / "ds", layout="coco17", columns="x,y")
    store = SkeletonStore(tmp_path / "ds")
    assert store.channels == ["x", "y", "score"]
    np.testing.assert_allclose(store.sequence(0)[:, 0, :, :2], xy, atol=1e-5)
    assert (store.sequence(0)[..., 2] == 1).all()


def test_json_and_npz_arrays(tmp_path):
    rng = np.random.default_rng(4)
    raw = tmp_path / "raw"
    raw.mkdir()
    clip = _clip(rng)[:, 0]
    (raw / "a1.json").write_text(json.dumps({"fps": 30, "frames": clip.tolist()}))
    np.savez(raw / "a2.npz", skeleton=clip)
    _prepare(raw, tmp_path / "ds", joints=JOINTS, center=False, name_pattern="a{label:d}")
    store = SkeletonStore(tmp_path / "ds")
    for i in range(2):
        np.testing.assert_allclose(store.sequence(i)[:, 0], clip, atol=1e-5)


def test_predict_reads_a_text_file_with_the_same_options(text_folder, tmp_path):
    raw, clips = text_folder
    name = "a01_s01_e01_skeleton3D"
    [sample] = read_pose_file(raw / f"{name}.txt", "auto", layout="kinect20", columns="x,y,z,c")
    assert sample.layout == "kinect20" and sample.name == name
    assert np.allclose(sample.sequence[0, 0, 1], 0)  # centred on the spine (kinect20's centre), as prepared


def test_unmatched_names_are_named_on_fail_and_listed_on_skip(text_folder, tmp_path):
    raw, _ = text_folder
    _write_txt(raw / "extra_take.txt", _clip(np.random.default_rng(5)))
    options = dict(joints=JOINTS, columns="x,y,z,c", name_pattern=PATTERN)
    with pytest.raises(DataFormatError, match=r"extra_take.txt.*does not match --name-pattern.*1 of 25"):
        _prepare(raw, tmp_path / "ds", **options)
    assert not (tmp_path / "ds").exists()
    report = _prepare(raw, tmp_path / "ds", on_error="skip", **options)
    assert report.samples == 24 and "extra_take" in report_path(tmp_path / "ds").read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1 2 3 1\n" * 39, r"line 21: frame 2 has 19 of its 20 joint lines"),  # a frame with a missing joint line
        ("1 2 3\n" * 20, r"line 1: has 3 values \(expected 4"),  # wrong column count
        ("1 2 3 1\n" * 5 + "1 2 x 1\n" + "1 2 3 1\n" * 14, r"line 6, value 3: is 'x'"),
        ("1 2 3 1\n" * 5 + "1 2 3\n" + "1 2 3 1\n" * 14, r"line 6: has 3 values \(expected 4 like line 1"),
        ("\n# only a comment\n", r"holds no rows of numbers"),
        ("x,y,q\n1,2,3\n", r"line 1: .*column 'q' is not one of"),
    ],
)
def test_bad_text_files_name_the_line_and_field(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    columns = None if content.startswith("x,") else "x,y,z,c"
    with pytest.raises(DataFormatError, match=message) as info:
        read_pose_file(path, "files", layout="kinect20", **({"columns": columns} if columns else {}))
    assert str(path) in str(info.value)


def test_a_bad_file_is_skipped_and_the_rest_imported(text_folder, tmp_path):
    raw, _ = text_folder
    (raw / "a01_s09_e01_skeleton3D.txt").write_text("1 2 3 1\n" * 7)
    report = _prepare(raw, tmp_path / "ds", joints=JOINTS, columns="x,y,z,c", name_pattern=PATTERN, on_error="skip")
    assert report.samples == 24 and len(report.skipped) == 1 and "s09" in report.skipped[0]


def test_name_patterns():
    pattern = NamePattern(PATTERN)
    assert pattern.match(Path("a12_s03_e02_skeleton3D.txt")) == {"label": "12", "subject": "03", "rep": "02"}
    assert pattern.match(Path("a12_s03_e02_skeleton3D.csv")) is None
    assert NamePattern("{label}_{_}_p{person:d}").match(Path("wave_cam2_p7.json")) == {"label": "wave", "person": "7"}
    for bad, why in [("{subject}_x", "must be a number"), ("{a:d}{a:d}", "appears twice"), ("plain", "no {field}")]:
        with pytest.raises(FormatOptionError, match=why):
            NamePattern(bad)


def test_split_rules_evaluate_fields_and_never_run_code():
    meta = [{"subject": s, "view": v} for s in (1, 2, 3) for v in (1, 2)]
    names = [str(i) for i in range(len(meta))]
    assert SplitRule.parse("a:subject % 2 == 1 and view <= 1").members(names, meta) == [True, False, False, False, True, False]
    assert SplitRule.parse("b:subject not in [1, 3]").members(names, meta) == [False, False, True, True, False, False]
    assert SplitRule.parse("c: 1 < subject <= 3").members(names, meta) == [False, False, True, True, True, True]
    for bad in ["x:__import__('os').system('true')", "x:subject.real", "x:'text' == 'text'", "no rule", "x:subject ==="]:
        with pytest.raises(FormatOptionError):
            SplitRule.parse(bad)


def test_option_errors(text_folder, tmp_path):
    raw, _ = text_folder
    with pytest.raises(FormatOptionError, match="give --layout"):
        _prepare(raw, tmp_path / "ds")
    with pytest.raises(FormatOptionError, match="no built-in layout has 21 joints"):
        _prepare(raw, tmp_path / "ds", joints=21)
    with pytest.raises(FormatOptionError, match="uses \\['view'\\]"):
        _prepare(raw, tmp_path / "ds", joints=JOINTS, columns="x,y,z,c", name_pattern=PATTERN, split=["t:view == 1"])
    with pytest.raises(FormatOptionError, match="in that order"):
        _prepare(raw, tmp_path / "ds", joints=JOINTS, columns="z,y,x")


def test_split_rules_that_fail_on_a_sample_and_damaged_archives_are_clear_errors(tmp_path):
    with pytest.raises(FormatOptionError, match=r"split a: rule 'subject % 0 == 1' fails for sample 'n' \(ZeroDivisionError"):
        SplitRule.parse("a:subject % 0 == 1").members(["n"], [{"subject": 3}])
    with pytest.raises(FormatOptionError, match="TypeError"):
        SplitRule.parse("a:subject < [1]").members(["n"], [{"subject": 3}])
    path = tmp_path / "clip.npz"
    np.savez_compressed(path, skeleton=np.random.default_rng(0).normal(size=(50, 20, 3)))
    data = bytearray(path.read_bytes())
    data[80:200] = bytes(b ^ 0x5A for b in data[80:200])
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="clip.npz"):
        read_pose_file(path, "files", layout="kinect20")


def test_a_two_person_header_names_the_joints_of_one_person(tmp_path):
    names = [f"j{v}" for v in range(JOINTS)]
    header = ",".join(f"{j}_{c}" for _ in range(2) for j in names for c in "xyz")
    (tmp_path / "two.csv").write_text(header + "\n" + ",".join(["1.0"] * (2 * JOINTS * 3)) + "\n")
    [sample] = read_pose_file(tmp_path / "two.csv", "files", layout="kinect20", rows="frame", max_persons=2, center=False)
    assert sample.joint_names == tuple(names) and sample.sequence.shape == (1, 2, JOINTS, 3)


def test_a_checkpoint_of_another_format_does_not_set_the_lines_per_frame(tmp_path):
    rows = np.random.default_rng(1).normal(size=(4 * JOINTS, 3))
    np.savetxt(tmp_path / "one.txt", rows)
    preparation = {"format": "ntu60", "options": {}}
    [sample] = read_pose_file(tmp_path / "one.txt", preparation=preparation, max_persons=2, layout="kinect20")
    assert sample.sequence.shape == (4, 1, JOINTS, 3)  # four one-person frames, padded to the model's persons later

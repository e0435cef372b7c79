import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skelmae.data.formats import pku_mmd
from skelmae.data.prepare import prepare
from skelmae.data.storage import SkeletonStore
from skelmae.errors import DataFormatError


@pytest.fixture(scope="module")
def pku_dir(shared_data):
    return shared_data / "pku_mmd_v1_samples"


@pytest.fixture(scope="module")
def pku(pku_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pku") / "pku"
    report = prepare("pku-mmd", pku_dir, out, workers=2, progress=False)
    assert report.skipped == [] and report.dropped == []
    assert "phase 1: 15 video(s) with skeleton and labels" in report.notes
    assert "1061 label file(s) without a skeleton file ignored" in report.notes
    return SkeletonStore(out)


def test_instances_and_splits(pku):
    assert len(pku) == 147 and pku.layout.name == "ntu25" and pku.num_persons == 2 and pku.num_classes == 51
    assert pku.manifest["name"] == "pku-mmd-v1" and pku.manifest["source"]["phase"] == 1
    assert len(set(pku.labels)) == 24
    videos = np.array([name.split("_")[0] for name in pku.names])
    train = set(videos[pku.split("xsub_train")])
    assert {v[:4] for v in train} == {"0005", "0006", "0160"} and pku.split("xsub_train").size == 96
    assert {v[:4] for v in videos[pku.split("xsub_test")]} == {"0299", "0300"} and pku.split("xsub_test").size == 51
    assert {v[-1] for v in videos[pku.split("xview_test")]} == {"M"} and pku.split("xview_test").size == 49
    assert set(pku.meta("view")[pku.split("xview_train")]) == {1, 3}
    assert pku.split("xview_train").size == 98


def test_instances_are_the_labelled_frames_uncentred(pku, pku_dir):
    for video in ("0005-L", "0160-M"):
        frames = np.loadtxt(pku_dir / "Data" / "PKU_Skeleton_Renew" / f"{video}.txt", dtype=np.float64)
        labels = np.loadtxt(pku_dir / "Label" / "Train_Label_PKU_final" / f"{video}.txt", delimiter=",", dtype=int)
        for k, (label, start, end, confidence) in enumerate(labels):
            i = pku.names.index(f"{video}_{k}")
            expected = frames[start:end].astype(np.float32).reshape(-1, 2, 25, 3)
            np.testing.assert_array_equal(pku.sequence(i), expected)
            assert pku.labels[i] == label - 1
            assert (pku.meta("start")[i], pku.meta("end")[i], pku.meta("confidence")[i]) == (start, end, confidence)
    single = pku.sequence(pku.names.index("0160-M_0"))
    assert (single[:, 1] == 0).all() and (single[:, 0] != 0).any()


def _copy(pku_dir, dest, videos=("0005-L", "0299-M")):
    for sub in ("Data/PKU_Skeleton_Renew", "Label/Train_Label_PKU_final"):
        (dest / sub).mkdir(parents=True)
        for v in videos:
            shutil.copy(pku_dir / sub / f"{v}.txt", dest / sub / f"{v}.txt")
    shutil.copytree(pku_dir / "Split", dest / "Split")


def test_centring_option_and_out_of_range_instances(pku_dir, tmp_path):
    raw = tmp_path / "raw"
    _copy(pku_dir, raw)
    label_file = raw / "Label" / "Train_Label_PKU_final" / "0005-L.txt"
    # 0005-L has 1494 frames; the reversed range is as in the official 0043-L.txt, line 21
    label_file.write_text(label_file.read_text() + "5,1490,1600,1\n5,2000,2100,1\n1,925,436,2\n")
    report = prepare("pku-mmd", raw, tmp_path / "ds", workers=1, progress=False, center=True)
    store = SkeletonStore(tmp_path / "ds")
    assert len(store) == 17 and report.dropped == [
        "0005-L_9: frames 2000..2100 of 1494 hold no skeleton (left out, as the reference does)",
        "0005-L_10: frames 925..436 end before they start (left out, as the reference does)"]
    clipped = store.names.index("0005-L_8")
    assert store.lengths[clipped] == 4 and store.meta("end")[clipped] == 1494
    for i in range(len(store)):
        assert np.abs(store.sequence(i)[0, 0, 1]).max() == 0  # spine of body 1 in frame 0 is the origin
    assert "0005-L_9: frames 2000..2100" in report.report.read_text()


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("26,229,293\n", 1, "label line has 3 fields"),
        ("26,229,293,2\n26,a,293,2\n", 2, "label line is '26,a,293,2'"),
        ("52,1,2,1\n", 1, "class is 52"),
        ("3,-20,10,1\n", 1, "frames -20..10"),
        ("3,10,99999999999,1\n", 1, "frames 10..99999999999"),
        ("3,10,20," + "9" * 30 + "\n", 1, "confidence is 999"),
        ("\n\n", 1, "the label file is empty"),
    ],
)
def test_malformed_label_files(text, line, message):
    with pytest.raises(DataFormatError) as info:
        pku_mmd.parse_labels(text, "x.txt")
    assert info.value.where == line and message in str(info.value)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("", 1, "the file has no frames"),
        ("0 " * 150 + "\n" + "0 " * 149 + "\n", 2, "frame has 149 values"),
        ("0 " * 150 + "\n" + "0 " * 148 + "x 0\n", 2, "value 149 is 'x'"),
        ("0 " * 149 + "inf\n", 1, "not finite"),
        ("0 " * 150 + "\n" + "0 " * 149 + "1e39\n", 2, "beyond 1.7e+38"),  # finite in float64, not in float32
    ],
)
def test_malformed_skeleton_files(text, line, message):
    with pytest.raises(DataFormatError) as info:
        pku_mmd.parse_skeleton(text, "x.txt")
    assert info.value.where == line and message in str(info.value)


def test_split_files_and_missing_pieces(pku_dir, tmp_path):
    sections = pku_mmd.parse_split((pku_dir / "Split" / "cross-view.txt").read_text())
    assert len(sections["train"]) == 717 and len(sections["test"]) == 359
    with pytest.raises(DataFormatError, match="no 'Training videos:' section"):
        pku_mmd.parse_split("Validation videos:\n0002-L\n")
    raw = tmp_path / "raw"
    _copy(pku_dir, raw)
    (raw / "Split" / "cross-view.txt").unlink()
    with pytest.raises(DataFormatError, match="found 0 cross-view split files"):
        prepare("pku-mmd", raw, tmp_path / "ds", progress=False)


def test_phase_two_layout_and_a_bad_video_is_skipped(pku_dir, tmp_path):
    raw = tmp_path / "v2"
    (raw / "skeleton").mkdir(parents=True)
    (raw / "label").mkdir()
    names = {"0005-L": "A01N01-L", "0299-M": "A01N02-M", "0160-R": "A02N01-R"}
    for old, new in names.items():
        shutil.copy(pku_dir / "Data" / "PKU_Skeleton_Renew" / f"{old}.txt", raw / "skeleton" / f"{new}.txt")
        shutil.copy(pku_dir / "Label" / "Train_Label_PKU_final" / f"{old}.txt", raw / "label" / f"{new}.txt")
    (raw / "label" / "A02N01-R.txt").write_text("4,10,x,1\n")
    (raw / "cross_subject_v2.txt").write_text("Training videos: \nA01N01-L, A02N01-R\nValidataion videos: \nA01N02-M\n")
    (raw / "cross_view_v2.txt").write_text("Training videos: \nA01N01-L, A02N01-R\nValidataion videos: \nA01N02-M\n")
    report = prepare("pku-mmd", raw, tmp_path / "ds", workers=1, on_error="skip", progress=False)
    store = SkeletonStore(tmp_path / "ds")
    assert store.manifest["name"] == "pku-mmd-v2" and "video" not in store.meta_fields
    assert len(store) == 16 and report.split_counts["xsub_train"] == 8 and report.split_counts["xsub_test"] == 8
    assert len(report.skipped) == 1 and "A02N01-R.txt, line 1: label line is '4,10,x,1'" in report.skipped[0]


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789,-. \nx"), max_size=200) | st.text(max_size=60))
def test_fuzz_label_parser(text):
    try:
        for label, start, end, _ in pku_mmd.parse_labels(text):
            assert 1 <= label <= 51 and start >= 0 and end >= 0
    except DataFormatError:
        pass


_TOKENS = st.sampled_from(["0", "1.5", "-2e-3", "nan", "x", "", "1e999", "0 0", "\t"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(148, 151), st.lists(st.tuples(st.integers(0, 150), _TOKENS), max_size=3)),
                max_size=4), st.sampled_from(["\n", "\r\n"]))
def test_fuzz_skeleton_parser(rows, newline):
    lines = []
    for width, edits in rows:
        tokens = ["0.25"] * width
        for position, token in edits:
            tokens[min(position, width - 1)] = token
        lines.append(" ".join(tokens))
    try:
        seq = pku_mmd.parse_skeleton(newline.join(lines))
    except DataFormatError:
        return
    assert seq.shape[1:] == (2, 25, 3) and np.isfinite(seq).all()


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=120))
def test_fuzz_split_parser(text):
    try:
        pku_mmd.parse_split(text)
    except DataFormatError:
        pass


def test_every_official_label_file_parses(pku_dir):
    """All 1,076 shipped label files, including the one reversed range of 0043-L."""
    files = sorted((pku_dir / "Label" / "Train_Label_PKU_final").glob("*.txt"))
    assert len(files) > 1000
    reversed_ranges = [(f.stem, start, end) for f in files
                       for _, start, end, _ in pku_mmd.parse_labels(f.read_text(), f) if start >= end]
    assert reversed_ranges == [("0043-L", 4925, 4036)]

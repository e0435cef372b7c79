import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from skelmae.data.layouts import get_layout
from skelmae.data.prepare import ImportPlan, Loaded, Sample, prepare, report_path, run_import
from skelmae.data.storage import DatasetWriter, SkeletonStore
from skelmae.errors import DataFormatError, SkelmaeError

UCLA_NAMES = [f"a{a:02d}_s0{s}_e00_v0{v}" for a in (1, 4, 12) for s in (1, 2) for v in (1, 2, 3)]


@pytest.fixture()
def ucla_raw(shared_data, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in UCLA_NAMES:
        (raw / f"{name}.json").write_bytes((shared_data / "nw_ucla" / "all_sqe" / f"{name}.json").read_bytes())
    return raw


def _content(root):
    manifest = json.loads((root / "manifest.json").read_text())
    return {name: info["sha256"] for name, info in manifest["files"].items()}


def test_worker_count_does_not_change_the_dataset(ucla_raw, tmp_path):
    prepare("nw-ucla", ucla_raw, tmp_path / "one", workers=1, progress=False)
    prepare("nw-ucla", ucla_raw, tmp_path / "two", workers=2, progress=False)
    assert _content(tmp_path / "one") == _content(tmp_path / "two")
    assert SkeletonStore(tmp_path / "one").names == sorted(UCLA_NAMES)


def test_failed_run_keeps_the_previous_dataset_and_skip_reports_are_refreshed(ucla_raw, tmp_path):
    out = tmp_path / "ds"
    bad = ucla_raw / "a06_s01_e00_v01.json"
    bad.write_text("{")
    prepare("nw-ucla", ucla_raw, out, workers=1, on_error="skip", progress=False)
    assert report_path(out).exists() and len(SkeletonStore(out)) == len(UCLA_NAMES)
    with pytest.raises(DataFormatError, match="a06_s01_e00_v01.json, line 1: invalid JSON"):
        prepare("nw-ucla", ucla_raw, out, workers=2, overwrite=True, progress=False)
    assert len(SkeletonStore(out)) == len(UCLA_NAMES) and report_path(out).exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    bad.unlink()
    report = prepare("nw-ucla", ucla_raw, out, workers=1, overwrite=True, progress=False)
    assert report.report is None and not report_path(out).exists()  # the old report described other data


def test_nothing_imported_is_an_error(ucla_raw, tmp_path):
    for path in ucla_raw.iterdir():
        path.write_text("[]")
    with pytest.raises(DataFormatError, match=r"no samples were imported \(18 files read, 18 skipped\)"):
        prepare("nw-ucla", ucla_raw, tmp_path / "ds", on_error="skip", workers=1, progress=False)
    assert list(tmp_path.glob("*ds*")) == []


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda raw, out: prepare("kinetics", raw, out), SkelmaeError, "unknown dataset format 'kinetics'"),
        (lambda raw, out: prepare("nw-ucla", raw, out, second_actor="zeros"), SkelmaeError,
         "option 'second_actor' does not apply to format 'nw-ucla'"),
        (lambda raw, out: prepare("ntu60", raw, out, dataset="ntu120"), SkelmaeError, "option 'dataset' does not apply"),
        (lambda raw, out: prepare("ntu60", raw, out, second_actor="copy"), SkelmaeError, "zeros"),
        (lambda raw, out: prepare("ntu60", raw / "nowhere", out), DataFormatError, "does not exist"),
        (lambda raw, out: prepare("nw-ucla", raw, out, on_error="ignore"), SkelmaeError, "on_error must be one of"),
    ],
)
def test_option_errors(ucla_raw, tmp_path, call, error, message):
    with pytest.raises(error, match=message):
        call(ucla_raw, tmp_path / "ds")


def _tiny_plan(items, load):
    return ImportPlan(
        format="test", name="tiny", raw="memory", layout="kinect20", channels=["x", "y", "z"], num_persons=1,
        classes=["a", "b"], split_names=["train"], source={}, items=items, load=load, total=len(items),
    )


def _interrupting_load(item):
    if item == 3:
        raise KeyboardInterrupt
    return Loaded([Sample(np.ones((2, 1, 20, 3), np.float32), item % 2, f"s{item}", {}, ("train",))])


def test_interrupted_run_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_import(_tiny_plan(list(range(6)), _interrupting_load), tmp_path / "ds", workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


KILLED_SCRIPT = """
import sys, time
import numpy as np
from skelmae.data.prepare import ImportPlan, Loaded, Sample, run_import

def load(item):
    time.sleep(0.02)
    return Loaded([Sample(np.full((5, 1, 20, 3), item, np.float32), 0, f"s{item}", {}, ("train",))])

if __name__ == "__main__":
    plan = ImportPlan(format="test", name="slow", raw="memory", layout="kinect20", channels=["x", "y", "z"],
                      num_persons=1, classes=["a"], split_names=["train"], source={}, items=list(range(100000)),
                      load=load, total=100000)
    run_import(plan, sys.argv[1], workers=1, progress=False)
"""


def test_killed_run_never_looks_complete(tmp_path):
    script = tmp_path / "slow_import.py"
    script.write_text(textwrap.dedent(KILLED_SCRIPT))
    out = tmp_path / "ds"
    process = subprocess.Popen([sys.executable, str(script), str(out)], cwd=tmp_path)
    try:
        deadline = time.time() + 60
        while not list(tmp_path.glob(".ds.partial-*/frames.npy")) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert list(tmp_path.glob(".ds.partial-*")) and not out.exists()
    out.mkdir()  # even a folder at the destination is not taken for a dataset
    with pytest.raises(DataFormatError, match="not a complete skelmae dataset folder; an unfinished preparation left"):
        SkeletonStore(out)


def _load_with_bad_samples(item):
    values = {1: np.nan, 3: 1e39}.get(item, float(item))  # 1e39: finite in float64, inf in float32
    name = "s\u2028x" if item == 4 else f"s{item}"
    return Loaded([Sample(np.full((2, 1, 20, 3), values), item % 2, name, {}, ("train",))])


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_samples_are_bad_items_skipped_without_poisoning_the_rest(tmp_path, workers):
    plan = _tiny_plan(list(range(6)), _load_with_bad_samples)
    report = run_import(plan, tmp_path / "ds", workers=workers, on_error="skip", progress=False)
    assert report.samples == 3 and SkeletonStore(tmp_path / "ds").names == ["s0", "s2", "s5"]
    assert len(report.skipped) == 3 and all("memory, sample" in message for message in report.skipped)
    assert any("line break" in m for m in report.skipped) and any("float32 range" in m for m in report.skipped)
    with pytest.raises(DataFormatError, match="sample 's1': contains NaN"):
        run_import(_tiny_plan(list(range(6)), _load_with_bad_samples), tmp_path / "ds2", workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_prepare_cleans_what_a_killed_run_left_and_info_reports_it(ucla_raw, tmp_path):
    from skelmae.data.info import summarize
    from skelmae.data.storage import OWNER

    out = tmp_path / "ds"
    prepare("nw-ucla", ucla_raw, out, workers=1, progress=False)
    stale = tmp_path / ".ds.partial-dead"
    stale.mkdir()
    (stale / OWNER).write_text(json.dumps({"pid": 999999999, "host": __import__("socket").gethostname()}))
    assert summarize(SkeletonStore(out))["leftovers"] == [".ds.partial-dead"]
    report = prepare("nw-ucla", ucla_raw, out, workers=1, progress=False, overwrite=True)
    assert any("removed .ds.partial-dead" in note for note in report.notes) and not stale.exists()
    assert summarize(SkeletonStore(out))["leftovers"] == []


def test_export_names_a_bad_output_path(tmp_path):
    from skelmae.data.formats.export import export_npz, export_pyskl

    out = tmp_path / "ds"
    with DatasetWriter(out, "kinect20", ["x", "y", "z"], 1, ["a"]) as w:
        for i in range(2):
            w.add(np.ones((3, 1, 20, 3), np.float32), 0, f"s{i}")
        w.add_split("train", [0])
        w.add_split("test", [1])
    with pytest.raises(SkelmaeError, match="is a folder; give the file to write"):
        export_npz(out, tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SkelmaeError, match="is a file, so it cannot hold"):
        export_pyskl(out, tmp_path / "file" / "data.pkl")
    assert export_npz(out, tmp_path / "new" / "deeper" / "data.npz", progress=False).is_file()


def test_manifest_records_the_preprocessing_and_every_option(ucla_raw, tmp_path):
    from skelmae.data.preprocessing import Preprocessing

    store = SkeletonStore(prepare("nw-ucla", ucla_raw, tmp_path / "ucla", workers=1, progress=False).out)
    assert store.preprocessing.centre == "first_frame" and store.preprocessing.centre_joint == "spine"
    assert store.preprocessing.persons == 1 and store.manifest["source"]["options"] == {}
    pyskl = _prepare_pyskl_3d(tmp_path, max_persons=1, layout="ntu25", class_names=_class_file(tmp_path))
    manifest = json.loads((pyskl / "manifest.json").read_text())
    assert manifest["source"]["options"] == {
        "max_persons": 1, "label_base": "auto", "layout": "ntu25", "class_names": str(tmp_path / "classes.txt"),
    }
    assert Preprocessing.from_dict(manifest["preprocessing"]) == Preprocessing.centred(get_layout("ntu25"), persons=1)
    assert SkeletonStore(run_import(_tiny_plan([0], _interrupting_load), tmp_path / "plan", progress=False).out
                         ).preprocessing == Preprocessing()  # a plan that says nothing did nothing


def _class_file(tmp_path):
    (tmp_path / "classes.txt").write_text("".join(f"action {i}\n" for i in range(5)))
    return tmp_path / "classes.txt"


def _prepare_pyskl_3d(tmp_path, **options):
    import pickle

    rng = np.random.default_rng(0)
    anns = [{"frame_dir": f"clip{i}", "label": i, "keypoint": rng.normal(size=(2, 6, 25, 3)).astype(np.float32)}
            for i in range(3)]
    (tmp_path / "anns.pkl").write_bytes(pickle.dumps({"split": {"train": ["clip0", "clip1", "clip2"]}, "annotations": anns}))
    return prepare("pyskl", tmp_path / "anns.pkl", tmp_path / "pyskl", progress=False, **options).out


def test_options_become_json_values():
    from dataclasses import dataclass, field
    from pathlib import Path

    from skelmae.data.formats.base import options_to_json
    from skelmae.data.layouts import SkeletonLayout

    custom = SkeletonLayout("pair", ("a", "b"), (0, 0), {"all": (0, 1)})

    @dataclass(frozen=True)
    class Options:
        path: Path = Path("/data/classes.txt")
        columns: tuple[str, ...] = ("x", "y")
        layout: object = field(default_factory=lambda: get_layout("coco17"))
        rig: object = custom
        nested: dict = field(default_factory=lambda: {"sizes": (1, 2)})

    record = options_to_json(Options())
    assert record == {"path": "/data/classes.txt", "columns": ["x", "y"], "layout": "coco17", "rig": custom.to_dict(),
                      "nested": {"sizes": [1, 2]}}
    assert json.loads(json.dumps(record)) == record and options_to_json(None) == {}


def _centred_rows(n, duplicate_one_person):
    """(n, 300, 150) NTU rows centred like SGN's output: spine_mid of person 1 at 0 in its first frame."""
    rng = np.random.default_rng(2)
    x = np.zeros((n, 300, 2, 25, 3), np.float32)
    for i in range(n):
        x[i, :40] = rng.normal(size=(40, 2, 25, 3))
        x[i, :40] -= x[i, 0, 0, 1]
        if i % 2:
            x[i, :40, 1] = x[i, :40, 0] if duplicate_one_person else 0
    return x.reshape(n, 300, 150)


@pytest.mark.parametrize("duplicate", [False, True])
def test_npz_producer_centring_is_recognised(tmp_path, duplicate):
    x = _centred_rows(4, duplicate)
    np.savez(tmp_path / "NTU60_CS.npz", x_train=x, y_train=np.eye(60)[[0, 1, 2, 3]])
    prepare("ctrgcn-npz", tmp_path / "NTU60_CS.npz", tmp_path / "ds", progress=False)
    recorded = SkeletonStore(tmp_path / "ds").preprocessing
    assert (recorded.centre, recorded.centre_joint, recorded.persons) == ("first_frame", "spine_mid", 2)
    assert recorded.second_actor == ("duplicate" if duplicate else "zeros")
    x[0, 0, 3] += 0.5  # spine_mid of the first row leaves the origin: not the SGN output
    np.savez(tmp_path / "other.npz", x_train=x, y_train=np.eye(60)[[0, 1, 2, 3]])
    other = SkeletonStore(prepare("ctrgcn-npz", tmp_path / "other.npz", tmp_path / "other", progress=False).out)
    assert not other.preprocessing.known and "not recognised" in other.preprocessing.describe()


def test_pyskl_2d_records_the_image_size_the_annotations_share(tmp_path):
    import pickle

    rng = np.random.default_rng(1)

    def ann(i, shape):
        return {"frame_dir": f"c{i}", "label": 0, "img_shape": shape,
                "keypoint": rng.uniform(0, 400, (1, 5, 17, 2)).astype(np.float32),
                "keypoint_score": np.ones((1, 5, 17), np.float32)}

    for name, shapes, size in (("same", [(480, 640)] * 2, (480.0, 640.0)), ("mixed", [(480, 640), (720, 1280)], None)):
        (tmp_path / f"{name}.pkl").write_bytes(pickle.dumps([ann(i, s) for i, s in enumerate(shapes)]))
        store = SkeletonStore(prepare("pyskl", tmp_path / f"{name}.pkl", tmp_path / name, progress=False).out)
        assert store.preprocessing.normalise_2d == "image_size" and store.preprocessing.image_size == size

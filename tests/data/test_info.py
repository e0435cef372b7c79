"""``skelmae data info``: the layout's joints and the recorded preprocessing are shown."""

import json

import numpy as np
from rich.console import Console

from skelmae.data.info import describe, summarize
from skelmae.data.layouts import get_layout
from skelmae.data.preprocessing import Preprocessing
from skelmae.data.storage import DatasetWriter, SkeletonStore


def _dataset(out, **writer):
    with DatasetWriter(out, "kinect20", ["x", "y", "z"], 1, ["a"], source={"format": "test", "options": {"value": 2}},
                       **writer) as w:
        w.add(np.ones((3, 1, 20, 3), np.float32), 0, "s0")
        w.add_split("train", [0])
    return out


def _printed(root):
    console = Console(width=200, record=True)
    console.print(describe(root))
    return console.export_text()


def test_info_lists_the_joints_with_their_parents(tmp_path):
    root = _dataset(tmp_path / "ds", preprocessing=Preprocessing.centred(get_layout("kinect20"), persons=1))
    info = summarize(SkeletonStore(root))
    assert info["joint_tree"][0] == {"index": 0, "name": "hip_center", "parent": "spine"}
    assert info["joint_tree"][2] == {"index": 2, "name": "shoulder_center", "parent": None}  # the root
    assert info["preprocessing"]["centre_joint"] == "spine" and info["source"]["options"] == "value=2"
    json.dumps(info)
    text = _printed(root)
    assert "joints of layout kinect20" in text and "left_wrist" in text and "left_elbow" in text
    assert "centred on spine of person 1 in its first present frame; 1 person" in text


def test_info_says_when_the_preprocessing_is_unknown(tmp_path):
    root = _dataset(tmp_path / "ds")
    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["preprocessing"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert "unknown (not recorded" in _printed(root)

"""The commands that show and use models: data show, visualize, embed, predict, export."""

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from skelmae.cli import app
from skelmae.data.storage import SkeletonStore

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_help_lists_the_commands():
    output = invoke("--help").output
    for command in ("visualize", "embed", "predict", "export"):
        assert command in output
    assert "show" in invoke("data", "--help").output


def test_data_show_writes_animation_and_sheet(tiny_synth, tmp_path):
    result = invoke("data", "show", tiny_synth, "--split", "test", "--index", "2", "--out", tmp_path / "s.gif",
                    "--stride", "8", "--sheet-frames", "3")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.gif").is_file() and (tmp_path / "s.png").is_file()
    name = SkeletonStore(tiny_synth).names[0]
    assert invoke("data", "show", tiny_synth, "--name", name, "--out", tmp_path / "n.png").exit_code == 0
    bad = invoke("data", "show", tiny_synth, "--index", "999", "--out", tmp_path / "x.gif")
    assert bad.exit_code == 2 and "index 999 outside the dataset" in bad.output


def test_visualize_shows_input_mask_and_reconstruction(tiny_checkpoints, tiny_synth, tmp_path):
    result = invoke("visualize", tiny_checkpoints["mae"], "--data", tiny_synth, "--index", "1",
                    "--out", tmp_path / "r.mp4", "--sheet-frames", "2")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.mp4").stat().st_size > 0
    with Image.open(tmp_path / "r.png") as sheet:  # two frames of three equal panels, one above the other
        width, height = sheet.size
        assert height == 2 * (16 * 20 + 48) + 4 and width % 3 == 0 and width // 3 >= 160
    np.save(tmp_path / "clip.npy", SkeletonStore(tiny_synth).sequence(1))
    from_file = invoke("visualize", tiny_checkpoints["mae"], "--file", tmp_path / "clip.npy", "--out", tmp_path / "f.png")
    assert from_file.exit_code == 0, from_file.output
    both = invoke("visualize", tiny_checkpoints["mae"], "--out", tmp_path / "z.gif")
    assert both.exit_code == 2 and "exactly one of --data" in both.output
    wrong = invoke("visualize", tiny_checkpoints["classifier"], "--data", tiny_synth, "--out", tmp_path / "w.gif")
    assert wrong.exit_code == 2 and "needs a pre-training (MAE) checkpoint" in wrong.output


def test_embed_writes_scatter_and_points(tiny_checkpoints, tiny_synth, tmp_path):
    result = invoke("embed", tiny_checkpoints["mae"], "--data", tiny_synth, "--out", tmp_path / "e.png",
                    "--max-samples", "20")
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "e.csv").read_text().splitlines()
    assert rows[0] == "name,label,class,x,y" and len(rows) == 21
    assert (tmp_path / "e.png").is_file()


def test_predict_text_json_and_per_file_errors(tiny_checkpoints, tiny_synth, tmp_path):
    store = SkeletonStore(tiny_synth)
    np.save(tmp_path / "good.npy", store.sequence(0))
    np.save(tmp_path / "bad.npy", store.sequence(0)[:, :, :20])
    ok = invoke("predict", tiny_checkpoints["classifier"], tmp_path / "good.npy", "-k", "3")
    assert ok.exit_code == 0 and "good.npy" in ok.output
    result = invoke("predict", tiny_checkpoints["classifier"], tmp_path / "good.npy", tmp_path / "bad.npy", "--json", "-k", "2")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    good, bad = doc["results"]
    assert good["sample"] == "good" and len(good["top"]) == 2 and good["top"][0]["class"] == good["label"]
    assert good["top"][0]["probability"] >= good["top"][1]["probability"]
    assert "bad.npy" in bad["error"] and "25 joints" in bad["error"]
    mae = invoke("predict", tiny_checkpoints["mae"], tmp_path / "good.npy")
    assert mae.exit_code == 2 and "no classifier head" in mae.output


def test_export_command(tiny_checkpoints, tmp_path):
    result = invoke("export", tiny_checkpoints["classifier"], "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.onnx").is_file() and (tmp_path / "m.onnx.json").is_file()
    bad = invoke("export", tiny_checkpoints["classifier"], "--format", "tflite")
    assert bad.exit_code == 2 and "unknown export format" in bad.output


def test_predict_real_pose_files(tiny_checkpoints, shared_data, tmp_path):
    skeleton = shared_data / "ntu_rgbd_samples" / "raw_skeletons" / "S001C001P001R001A050.skeleton"
    ucla = shared_data / "nw_ucla" / "all_sqe" / "a01_s01_e00_v01.json"
    pyskl = shared_data / "pyskl_format_custom_hrnet" / "ntu60_hrnet.pkl"
    result = invoke("predict", tiny_checkpoints["classifier"], skeleton, ucla, "--json")
    assert result.exit_code == 2
    good, bad = json.loads(result.stdout)["results"]
    assert good["sample"] == "S001C001P001R001A050" and len(good["top"]) == 5
    assert "a01_s01_e00_v01.json, layout: holds kinect20 skeletons" in bad["error"] and "25 joints" in bad["error"]
    unsafe = invoke("predict", tiny_checkpoints["classifier"], pyskl)
    assert unsafe.exit_code == 2 and "--format pyskl" in unsafe.output

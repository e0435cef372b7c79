import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from skelmae.cli import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "pretrain", "linear", "data", "layouts", "presets", "config"):
        assert command in result.output


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "skelmae", "layouts"], capture_output=True, text=True)
    assert out.returncode == 0 and "ntu25" in out.stdout and "coco17" in out.stdout


def test_layout_and_presets():
    assert "spine_shoulder" in runner.invoke(app, ["layouts", "ntu25"]).output
    assert "demo/pretrain" in runner.invoke(app, ["presets"]).output


def test_config_prints_resolved_values():
    result = runner.invoke(app, ["config", "pretrain", "-c", "demo/pretrain", "train.epochs=7"])
    assert result.exit_code == 0 and "epochs: 7" in result.output


def test_data_synth_and_info(tmp_path):
    out = tmp_path / "s"
    result = runner.invoke(app, ["data", "synth", "--out", str(out), "--subjects", "4", "--test-subjects", "2",
                                 "--repetitions", "1"])
    assert result.exit_code == 0, result.output
    info = runner.invoke(app, ["data", "info", str(out)])
    assert info.exit_code == 0 and "train 28, test 28" in info.output and "meet then part" in info.output
    again = runner.invoke(app, ["data", "synth", "--out", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "info", "/no/such/dir"], "dataset folder does not exist"),
        (["pretrain", "train.epochz=1"], "epochz"),
        (["layouts", "ntu99"], "unknown layout"),
    ],
)
def test_user_errors_are_one_line_with_status_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_demo_end_to_end_tiny(tmp_path):
    args = ["demo", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "runs"),
            "data.window=16", "data.min_crop=8", "data.num_workers=0", "train.progress=false",
            "model.transformer.dim=32", "model.transformer.depth=1", "model.transformer.heads=4", "pretrain.method.mae.decoder_dim=16",
            "pretrain.method.mae.decoder_depth=1", "pretrain.method.mae.decoder_heads=2", "pretrain.train.epochs=1",
            "linear.train.epochs=3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "pre-trained" in result.output and "random" in result.output and "margin" in result.output
    summary = json.loads((tmp_path / "runs" / "demo_summary.json").read_text())
    row = summary["rows"][0]
    probe = json.loads((tmp_path / "runs" / "seed0" / "linear-pretrained" / "summary.json").read_text())
    assert row["pretrained_top1"] == probe["test"]["top1"] and probe["init"].endswith("last.pt")
    assert summary["margin_mean"] == row["pretrained_top1"] - row["random_top1"]
    assert (tmp_path / "runs" / "seed0" / "pretrain" / "curves.png").is_file()
    cached = runner.invoke(app, args)  # second run reuses the generated data
    assert "using cached synthetic data" in cached.output


def test_data_prepare_info_export(shared_data, tmp_path):
    raw = shared_data / "ntu_rgbd_samples" / "raw_skeletons"
    out = tmp_path / "ntu60"
    result = runner.invoke(app, ["data", "prepare", "ntu60", "--raw", str(raw), "--out", str(out), "--workers", "1",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "8 samples (xsub_train 4, xsub_test 4, xview_train 4, xview_test 4)" in result.output
    assert "the full ntu60 release has 56,578" in result.output
    info = runner.invoke(app, ["data", "info", str(out), "--json"])
    summary = json.loads(info.output)
    assert summary["splits"]["xview_test"] == 4 and summary["source"]["second_actor"] == "zeros"
    exported = runner.invoke(app, ["data", "export", str(out), "--to", "npz", "--protocol", "xview", "--out",
                                   str(tmp_path / "NTU60_CV.npz"), "--frames", "300", "--no-progress"])
    assert exported.exit_code == 0, exported.output
    again = runner.invoke(app, ["data", "prepare", "ctrgcn-npz", "--raw", str(tmp_path / "NTU60_CV.npz"), "--out",
                                str(tmp_path / "back"), "--no-progress"])
    assert again.exit_code == 0 and "xview_train 4, xview_test 4" in again.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "prepare", "kinetics", "--raw", ".", "--out", "x"], "unknown dataset format 'kinetics'"),
        (["data", "prepare", "nw-ucla", "--raw", ".", "--out", "x", "--second-actor", "zeros"],
         "option 'second_actor' does not apply to format 'nw-ucla'"),
        (["data", "prepare", "pyskl", "--raw", "/no/such.pkl", "--out", "x"], "/no/such.pkl: does not exist"),
        (["data", "export", "/no/such", "--to", "npz", "--out", "x.npz"], "dataset folder does not exist"),
        (["data", "export", "/no/such", "--to", "csv", "--out", "x.csv"], "--to must be one of"),
    ],
)
def test_data_command_errors_are_one_line(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


@pytest.mark.slow  # the demo configuration: about 8 minutes on 2 CPU cores
def test_demo_pretraining_beats_a_random_encoder(tmp_path):
    from skelmae.demo import run_demo

    summary = run_demo(seed=0, data_dir=tmp_path / "data", out_dir=tmp_path / "runs", overrides=["train.progress=false"])
    assert summary["margin_mean"] > 5, summary["rows"]

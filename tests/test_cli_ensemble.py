"""``skelmae ensemble`` on real ``skelmae evaluate`` outputs: labels from the data store, the
report and fused scores on disk, and one-line errors."""

import json

import numpy as np
from typer.testing import CliRunner

from skelmae.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_ensemble_of_evaluations(tiny_checkpoints, tmp_path):
    classifier = tiny_checkpoints["classifier"]
    for name, split in (("joint", "test"), ("bone", "test"), ("other", "train")):
        result = invoke("evaluate", "--checkpoint", classifier, "--split", split, "--out", tmp_path / name,
                        "--device", "cpu", "--batch-size", 16)
        assert result.exit_code == 0, result.output
    fused = invoke("ensemble", tmp_path / "joint", tmp_path / "bone", "--weights", "1,2", "--out", tmp_path / "fused")
    assert fused.exit_code == 0, fused.output
    report = json.loads((tmp_path / "fused" / "ensemble.json").read_text())
    evaluated = json.loads((tmp_path / "joint" / "metrics.json").read_text())
    assert report["samples"] == evaluated["samples"] == 28 and report["split"] == "test"
    for row in report["streams"]:  # labels read from the store, in the evaluated order
        assert row["top1"] == evaluated["top1"] and row["top5"] == evaluated["top5"]
    assert report["fusion"]["top1"] == evaluated["top1"]  # one network evaluated twice: the same ranking
    np.testing.assert_allclose(np.load(tmp_path / "fused" / "logits.npy"), 3 * np.load(tmp_path / "joint" / "logits.npy"),
                               rtol=1e-5)

    other_split = invoke("ensemble", tmp_path / "joint", tmp_path / "other")
    assert other_split.exit_code == 2 and "evaluated different splits: 'train' vs 'test'" in other_split.output
    bad_weights = invoke("ensemble", tmp_path / "joint", tmp_path / "bone", "--weights", "1")
    assert bad_weights.exit_code == 2 and "1 weight(s) for 2 evaluation folder(s)" in bad_weights.output
    missing = invoke("ensemble", tmp_path / "joint", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "nowhere/logits.npy not found" in missing.output
    assert "Traceback" not in other_split.output + bad_weights.output + missing.output

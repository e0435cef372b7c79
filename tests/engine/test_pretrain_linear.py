"""End to end on a tiny synthetic set: pre-train, probe, run directory contents."""

import json

import pytest

from skelmae.config import LinearConfig, PretrainConfig, load_config
from skelmae.engine.checkpoint import load_checkpoint
from skelmae.protocols.linear import run_linear
from skelmae.protocols.pretrain import run_pretrain
from skelmae.errors import CheckpointError, ConfigError

@pytest.fixture(scope="module")
def pretrained(tiny_synth, tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "pre"
    cfg = load_config(PretrainConfig, None, tiny.pretrain + [f"data.root={tiny_synth}", f"train.output_dir={out}",
                                                            "train.epochs=2", "optim.warmup_epochs=1"])
    return run_pretrain(cfg), out


def test_pretrain_writes_a_complete_run_dir(pretrained):
    summary, out = pretrained
    assert summary["epochs"] == 2 and summary["final_loss"] > 0
    for name in ("config.yaml", "environment.json", "data.json", "metrics.jsonl", "summary.json", "last.pt"):
        assert (out / name).is_file(), name
    assert list((out / "tb").iterdir())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    env = json.loads((out / "environment.json").read_text())
    assert {"torch", "git_sha", "device", "world_size"} <= set(env)
    ckpt = load_checkpoint(out / "last.pt", kind="pretrain")
    assert ckpt["epoch"] == 1 and ckpt["backbone"]["name"] == "transformer" and ckpt["method"]["name"] == "mae"
    assert ckpt["trainer"]["epoch"] == 1 and "optimizer" in ckpt["trainer"]
    assert ckpt["data"]["window"] == 16 and len(ckpt["data"]["classes"]) == 14


@pytest.mark.parametrize("augment", [False, True])
def test_linear_probe_on_pretrained_encoder(pretrained, tiny_synth, tiny, tmp_path, augment):
    _, pre_dir = pretrained
    cfg = load_config(LinearConfig, None, tiny.training + [
        f"data.root={tiny_synth}", f"init={pre_dir / 'last.pt'}", f"train.output_dir={tmp_path / 'lin'}",
        "train.epochs=3", f"augment={str(augment).lower()}",
    ])
    summary = run_linear(cfg)
    test = summary["test"]
    assert test["samples"] == 28 and test["top5"] >= test["top1"]
    records = [json.loads(line) for line in (tmp_path / "lin" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["train/loss"] < records[0]["train/loss"]  # the probe learns
    assert records[-1]["test/top1"] == test["top1"]
    ckpt = load_checkpoint(tmp_path / "lin" / "last.pt", kind="classifier")
    assert ckpt["head"]["name"] == "linear" and ckpt["backbone"]["config"]["dim"] == 32


def test_linear_probe_on_several_layers_per_step_and_a_share_of_the_labels(pretrained, tiny_synth, tiny, tmp_path):
    """The probe's variants end to end: the head sees 2 layers x 4 steps x 32 features,
    trained on the semi protocol's class-stratified half of the labels."""
    import numpy as np

    _, pre_dir = pretrained
    subset = tmp_path / "half.npy"
    cfg = load_config(LinearConfig, None, tiny.training + [
        f"data.root={tiny_synth}", f"init={pre_dir / 'last.pt'}", f"train.output_dir={tmp_path / 'lin'}",
        "train.epochs=2", "augment=false", "pool=steps", "layers=2", "semi.fraction=0.5",
        f"semi.subset_file={subset}", "data.val_fraction=0",
    ])
    summary = run_linear(cfg)
    assert summary["train_samples"] == np.load(subset).size == 28 and summary["test"]["samples"] == 28
    ckpt = load_checkpoint(tmp_path / "lin" / "last.pt", kind="classifier")
    assert ckpt["head"]["config"] == {"pool": "steps", "layers": 2}
    assert ckpt["model"]["head.norm.running_mean"].shape == (2 * 4 * 32,)


def test_linear_probe_rejects_mismatched_data(pretrained, tiny, tmp_path):
    import numpy as np

    from skelmae.data.storage import DatasetWriter

    other = tmp_path / "k20"
    with DatasetWriter(other, "kinect20", ["x", "y", "z"], 1, ["a", "b"]) as w:
        for i in range(4):
            w.add(np.random.rand(20, 1, 20, 3), i % 2, f"s{i}")
        w.add_split("train", [0, 1])
        w.add_split("test", [2, 3])
    _, pre_dir = pretrained
    cfg = load_config(LinearConfig, None, tiny.training + [f"data.root={other}", f"init={pre_dir / 'last.pt'}",
                                                  f"train.output_dir={tmp_path / 'x'}"])
    with pytest.raises(CheckpointError, match=r"pre-trained on layout .ntu25. \(25 joints\).*kinect20"):
        run_linear(cfg)


def test_missing_data_root_is_a_config_error(tiny, tmp_path):
    cfg = load_config(PretrainConfig, None, tiny.pretrain + [f"train.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="data.root is empty"):
        run_pretrain(cfg)

"""Fine-tune, semi, scratch, transfer, kNN and evaluate on the tiny synthetic set."""

import json

import numpy as np
import pytest

from skelmae.config import FinetuneConfig, KnnConfig, load_config
from skelmae.data.storage import DatasetWriter, SkeletonStore
from skelmae.engine.checkpoint import load_checkpoint
from skelmae.errors import CheckpointError, ConfigError
from skelmae.eval.knn import knn_predict
from skelmae.protocols.evaluate import run_evaluate
from skelmae.protocols.finetune import run_finetune
from skelmae.protocols.knn import run_knn
from skelmae.viz.callbacks import run_plots

@pytest.fixture(scope="module")
def pretrained(tiny_checkpoints):
    return tiny_checkpoints["mae"]


@pytest.fixture
def _ft(tiny_synth, tiny):
    def make(out, *extra):
        return load_config(FinetuneConfig, None, tiny.training + [f"data.root={tiny_synth}", f"train.output_dir={out}",
                                                                  "train.epochs=2", "optim.warmup_epochs=1", *extra])

    return make


def test_finetune_reports_last_and_best_on_validation(tiny_synth, pretrained, _ft, tmp_path):
    summary = run_finetune(_ft(tmp_path / "ft", f"init={pretrained}", "data.val_fraction=0.25"))
    store = SkeletonStore(tiny_synth)
    n_train = len(store.split("train"))
    assert summary["val_samples"] > 0 and summary["train_samples"] + summary["val_samples"] == n_train
    assert summary["test"]["samples"] == len(store.split("test"))
    best = summary["best_on_val"]
    assert best["epoch"] in (1, 2) and set(best) == {"epoch", "val", "test"}
    records = [json.loads(x) for x in (tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()]
    assert all("val/top1" in r for r in records)
    ckpt = load_checkpoint(tmp_path / "ft" / "best.pt", kind="classifier")
    assert ckpt["epoch"] + 1 == best["epoch"] and ckpt["head"]["name"] == "mlp" and "trainer" not in ckpt


def test_best_test_epoch_is_reported_only_when_asked_and_chooses_nothing(tiny_synth, pretrained, _ft, tmp_path):
    plain = run_finetune(_ft(tmp_path / "plain", f"init={pretrained}", "data.val_fraction=0.25", "train.epochs=3"))
    asked = run_finetune(_ft(tmp_path / "asked", f"init={pretrained}", "data.val_fraction=0.25", "train.epochs=3",
                             "train.report_best_test=true"))
    assert "best_test_epoch" not in plain
    assert asked["test"] == plain["test"] and asked["best_on_val"] == plain["best_on_val"]
    records = [json.loads(x) for x in (tmp_path / "asked" / "metrics.jsonl").read_text().splitlines()]
    tested = {r["epoch"]: r["test/top1"] for r in records if "test/top1" in r}
    assert sorted(tested) == [1, 2, 3]
    best = asked["best_test_epoch"]
    assert best["test"]["top1"] == max(tested.values()) and tested[best["epoch"]] == best["test"]["top1"]


def test_layer_decay_groups(tiny_synth, pretrained, tmp_path):
    from skelmae.engine.common import downstream_model
    from skelmae.engine.optim import classifier_param_groups

    model, _ = downstream_model(str(pretrained), None, {"name": "mlp", "config": {}}, SkeletonStore(tiny_synth), 16)
    groups = classifier_param_groups(model, 0.05, 0.8)
    scales = sorted({round(g["lr_scale"], 6) for g in groups})
    assert scales == [round(0.8 ** k, 6) for k in (3, 2, 1, 0)]  # embeddings, block 0, block 1, head/norm


def test_semi_writes_and_reuses_a_stratified_subset(tiny_synth, pretrained, _ft, tmp_path):
    subset = tmp_path / "subset.npy"
    cfg = _ft(tmp_path / "semi", f"init={pretrained}", "semi.fraction=0.5", f"semi.subset_file={subset}",
              "data.val_fraction=0")
    first = run_finetune(cfg, "semi")
    chosen = np.load(subset)
    labels = SkeletonStore(tiny_synth).labels[chosen]
    assert first["train_samples"] == chosen.size == 28 and np.bincount(labels).tolist() == [2] * 14
    again = run_finetune(_ft(tmp_path / "semi2", f"init={pretrained}", "semi.fraction=0.5",
                             f"semi.subset_file={subset}", "data.val_fraction=0"), "semi")
    assert again["subset_file"] == str(subset) and np.array_equal(np.load(subset), chosen)


def test_protocol_argument_checks(tiny_synth, pretrained, _ft, tmp_path):
    with pytest.raises(ConfigError, match="semi needs"):
        run_finetune(_ft(tmp_path / "a", f"init={pretrained}"), "semi")
    with pytest.raises(ConfigError, match="leave init empty"):
        run_finetune(_ft(tmp_path / "b", f"init={pretrained}"), "scratch")
    with pytest.raises(ConfigError, match="set init"):
        run_finetune(_ft(tmp_path / "c"), "transfer")


def test_scratch_trains_without_init(tiny_synth, _ft, tmp_path):
    summary = run_finetune(_ft(tmp_path / "s", "data.val_fraction=0", "train.epochs=4"), "scratch")
    assert summary["init"] == "none" and summary["best_on_val"] is None
    records = [json.loads(x) for x in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["train/loss"] < records[0]["train/loss"]  # learns from random initialisation


def test_scratch_on_a_share_of_the_labels_uses_the_semi_subset(tiny_synth, pretrained, _ft, tmp_path):
    """The baseline of the semi protocol: the same labelled clips, no pre-training."""
    subset = tmp_path / "subset.npy"
    semi = run_finetune(_ft(tmp_path / "semi", f"init={pretrained}", "semi.fraction=0.5", f"semi.subset_file={subset}",
                            "data.val_fraction=0"), "semi")
    scratch = run_finetune(_ft(tmp_path / "scratch", "semi.fraction=0.5", f"semi.subset_file={subset}",
                               "data.val_fraction=0"), "scratch")
    assert scratch["init"] == "none" and scratch["subset_file"] == semi["subset_file"] == str(subset)
    assert scratch["train_samples"] == semi["train_samples"] == 28
    with pytest.raises(ConfigError, match="only applies to the semi and scratch"):
        run_finetune(_ft(tmp_path / "ft", f"init={pretrained}", "semi.fraction=0.5"), "finetune")


def test_transfer_checks_layouts(pretrained, tiny, tmp_path):
    other = tmp_path / "k20"
    with DatasetWriter(other, "kinect20", ["x", "y", "z"], 1, ["a", "b"]) as w:
        for i in range(8):
            w.add(np.random.rand(20, 1, 20, 3), i % 2, f"s{i}")
        w.add_split("train", range(6))
        w.add_split("test", [6, 7])
    cfg = load_config(FinetuneConfig, None, tiny.training + [f"data.root={other}", f"init={pretrained}",
                                                       f"train.output_dir={tmp_path / 't'}"])
    with pytest.raises(CheckpointError, match="layout 'ntu25'.*layout 'kinect20'"):
        run_finetune(cfg, "transfer")


def test_knn_prediction_rule():
    import torch

    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    test = torch.tensor([[0.1, 1.0], [1.0, 0.05]])
    assert knn_predict(train, labels, test, 1, 2, 0.07).tolist() == [1, 0]
    assert knn_predict(train, labels, test, 3, 2, 0.07).tolist() == [1, 0]


def test_knn_and_evaluate(tiny_synth, pretrained, tiny, _ft, tmp_path):
    data_only = tiny.data
    knn = run_knn(load_config(KnnConfig, None, data_only + [f"data.root={tiny_synth}", f"init={pretrained}",
                                                          f"train.output_dir={tmp_path / 'knn'}", "k=[1,5]"]))
    assert set(knn["top1"]) == {"k1", "k5"} and knn["test_samples"] == 28
    ft = run_finetune(_ft(tmp_path / "ft", f"init={pretrained}", "data.val_fraction=0"))
    result = run_evaluate(ft["checkpoint"], batch_size=8, num_workers=0, callbacks=run_plots())
    assert result["split"] == "test" and result["samples"] == 28
    assert abs(result["top1"] - ft["test"]["top1"]) < 1e-6  # same preprocessing as in training
    csv = (tmp_path / "ft" / "eval-test" / "confusion.csv").read_text().splitlines()
    assert len(csv) == 15 and sum(int(v) for row in csv[1:] for v in row.split(",")[1:]) == 28

"""CTR-GCN and InfoGCN trained from scratch with their recipes on the tiny synthetic set: the
loss falls and the classifier beats chance, InfoGCN's regulariser is part of every training
step, the checkpoints evaluate and export to ONNX; and SkeletonCLR pre-trains CTR-GCN for a
fine-tuning run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from skelmae.config import FinetuneConfig, PretrainConfig, load_config
from skelmae.engine.checkpoint import load_checkpoint
from skelmae.engine.optim import build_optimizer
from skelmae.errors import ConfigError
from skelmae.export import export_classifier
from skelmae.models.infogcn import InfoGCNClassifier
from skelmae.protocols.evaluate import run_evaluate
from skelmae.protocols.finetune import run_finetune
from skelmae.protocols.pretrain import run_pretrain

CTRGCN = ["model.ctrgcn.channels=8", "model.ctrgcn.dim=32"]
INFOGCN = ["model.infogcn.channels=8", "model.infogcn.dim=32", "head.infogcn.z_dim=32"]
# 10 epochs of 7 steps (56 training clips, batch 8), lr x0.1 for the last two
SHORT = ["train.epochs=10", "optim.warmup_epochs=1", "optim.milestones=[8]", "data.batch_size=8", "data.val_fraction=0",
         "train.eval_every=5"]
CHANCE = 100 / 14


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _scratch(recipe, root, out, tiny, *overrides):
    cfg = load_config(FinetuneConfig, recipe, tiny.data + SHORT + [f"data.root={root}", f"train.output_dir={out}",
                                                                 *overrides])
    return run_finetune(cfg, "scratch")


@pytest.fixture(scope="module")
def ctrgcn(tiny_synth, tiny, tmp_path_factory):
    return _scratch("recipes/ctrgcn_scratch", tiny_synth, tmp_path_factory.mktemp("ctrgcn") / "run", tiny, *CTRGCN)


@pytest.fixture(scope="module")
def infogcn(tiny_synth, tiny, tmp_path_factory):
    """The run, and the regulariser of each training step (InfoGCNClassifier.auxiliary_loss spied on)."""
    taken = []
    original = InfoGCNClassifier.auxiliary_loss

    def spy(self, labels):
        value = original(self, labels)
        taken.append((self.training, value))
        return value

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(InfoGCNClassifier, "auxiliary_loss", spy)
        summary = _scratch("recipes/infogcn_scratch", tiny_synth, tmp_path_factory.mktemp("infogcn") / "run", tiny,
                           *INFOGCN)
    return summary, taken


def test_ctrgcn_learns_the_synthetic_actions(ctrgcn):
    losses = [r["train/loss"] for r in _records(Path(ctrgcn["run_dir"]))]
    assert np.mean(losses[-2:]) < 0.6 * losses[0]
    assert ctrgcn["test"]["top1"] >= 3 * CHANCE


def test_infogcn_learns_with_its_regulariser_in_every_training_step(infogcn):
    summary, taken = infogcn
    losses = [r["train/loss"] for r in _records(Path(summary["run_dir"]))]
    assert np.mean(losses[-2:]) < 0.6 * losses[0]
    assert summary["test"]["top1"] >= 2 * CHANCE
    assert len(taken) == 10 * 7  # once per optimiser step, never during evaluation
    assert all(training and value is not None and value.requires_grad for training, value in taken)


@pytest.mark.parametrize("run", ["ctrgcn", "infogcn"])
def test_checkpoint_evaluates_and_exports_to_onnx(run, request, tmp_path):
    summary = request.getfixturevalue(run)
    summary = summary[0] if run == "infogcn" else summary
    ckpt = load_checkpoint(summary["checkpoint"], kind="classifier")
    assert ckpt["backbone"]["name"] == run and ckpt["head"]["name"] == ("fc" if run == "ctrgcn" else "infogcn")
    evaluated = run_evaluate(summary["checkpoint"], out_dir=str(tmp_path / "eval"), batch_size=8, num_workers=0)
    assert evaluated["top1"] == pytest.approx(summary["test"]["top1"])  # evaluation is deterministic (z = mu)
    assert (tmp_path / "eval" / "logits.npy").is_file()
    pytest.importorskip("onnxruntime")
    exported = export_classifier(summary["checkpoint"], tmp_path / "model.onnx", "onnx")
    assert exported.max_abs_diff <= 1e-4


def test_skeletonclr_pretrains_ctrgcn_for_fine_tuning(tiny_synth, tiny, tmp_path):
    pre = tmp_path / "pre"
    run_pretrain(load_config(PretrainConfig, "recipes/skeletonclr_pretrain", tiny.data + CTRGCN + [
        "model.arch=ctrgcn", f"data.root={tiny_synth}", f"train.output_dir={pre}", "train.epochs=1",
        "method.skeletonclr.queue=32", "method.skeletonclr.feature_dim=16",
    ]))
    assert load_checkpoint(pre / "last.pt", kind="pretrain")["backbone"]["name"] == "ctrgcn"
    tuned = run_finetune(load_config(FinetuneConfig, "recipes/ctrgcn_scratch", tiny.data + [
        f"init={pre / 'last.pt'}", f"data.root={tiny_synth}", f"train.output_dir={tmp_path / 'ft'}", "train.epochs=1",
        "optim.warmup_epochs=0",
    ]), "finetune")
    assert tuned["test"]["samples"] == 28 and np.isfinite(_records(tmp_path / "ft")[-1]["train/loss"])
    # the fine-tuned network is the pre-trained one (its weights are loaded strictly), with CTR-GCN's head
    ckpt = load_checkpoint(tuned["checkpoint"], kind="classifier")
    assert ckpt["backbone"] == load_checkpoint(pre / "last.pt", kind="pretrain")["backbone"]
    assert ckpt["head"]["name"] == "fc"


def test_presets_carry_the_published_recipes():
    ctr = load_config(FinetuneConfig, "ntu60_xview/ctrgcn_scratch")
    assert (ctr.model.arch, ctr.model.ctrgcn.channels, ctr.head.name, ctr.data.window, ctr.data.batch_size) == (
        "ctrgcn", 64, "fc", 64, 64)
    assert (ctr.optim.name, ctr.optim.nesterov, ctr.optim.lr, ctr.optim.weight_decay, ctr.optim.milestones,
            ctr.optim.warmup_epochs, ctr.train.epochs, ctr.label_smoothing) == ("sgd", True, 0.1, 4e-4, [35, 55], 5, 65, 0.0)
    info = load_config(FinetuneConfig, "ntu120_xset/infogcn_scratch")
    assert (info.model.arch, info.model.infogcn.k_hop, info.head.name, info.head.infogcn.lambda_mmd,
            info.head.infogcn.lambda_l2, info.label_smoothing) == ("infogcn", 1, "infogcn", 0.1, 1e-4, 0.1)
    assert (info.optim.weight_decay, info.optim.milestones, info.train.epochs, info.data.batch_size,
            info.data.test_split) == (5e-4, [90, 100], 110, 128, "xset_test")
    for name in ("nwucla/ctrgcn_scratch", "nwucla/infogcn_scratch"):
        ucla = load_config(FinetuneConfig, name)
        assert (ucla.train.epochs, ucla.data.window, ucla.optim.nesterov) == (20, 32, True)


def test_sgd_takes_nesterov_momentum():
    layer = torch.nn.Linear(2, 2)
    cfg = load_config(FinetuneConfig, "recipes/ctrgcn_scratch").optim
    optimizer = build_optimizer(cfg, [{"params": list(layer.parameters())}], torch.device("cpu"))
    assert optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.9
    cfg.momentum = 0.0
    with pytest.raises(ConfigError, match="optim.nesterov=true needs optim.momentum > 0"):
        build_optimizer(cfg, [{"params": list(layer.parameters())}], torch.device("cpu"))

"""SkeletonCLR / SkeAttnCLR end to end on the tiny synthetic set: the loss falls, the encoder
beats a random one, and the checkpoint feeds every downstream protocol and tool."""

import json

import numpy as np
import pytest

from skelmae.config import LinearConfig, PretrainConfig, load_config
from skelmae.engine.checkpoint import load_checkpoint
from skelmae.export import export_classifier
from skelmae.protocols.linear import run_linear
from skelmae.protocols.pretrain import run_pretrain

STGCN = ["model.arch=stgcn", "model.stgcn.channels=8", "model.stgcn.dim=32"]
SGD = ["optim.name=sgd", "optim.lr=0.1", "optim.momentum=0.9", "optim.weight_decay=1e-4", "optim.warmup_epochs=0"]


def _pretrain(root, out, tiny, method, epochs, *extra):
    cfg = load_config(PretrainConfig, None, tiny.data + STGCN + SGD + [
        f"data.root={root}", f"train.output_dir={out}", f"train.epochs={epochs}", f"method.name={method}",
        f"method.{method}.queue=32", f"method.{method}.feature_dim=16", "data.shear=0.5", *extra,
    ])
    return run_pretrain(cfg)


def _linear(root, out, tiny, *extra):
    cfg = load_config(LinearConfig, None, tiny.data + STGCN + [
        f"data.root={root}", f"train.output_dir={out}", "train.epochs=30", "augment=false", *extra,
    ])
    return run_linear(cfg)


@pytest.fixture(scope="module")
def skeletonclr(tiny_synth, tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("clr") / "pre"
    _pretrain(tiny_synth, out, tiny, "skeletonclr", 10)
    return out


def test_contrastive_loss_falls_and_the_encoder_beats_a_random_one(skeletonclr, tiny_synth, tiny, tmp_path):
    losses = [json.loads(line)["train/loss"] for line in (skeletonclr / "metrics.jsonl").read_text().splitlines()]
    # epoch 1 starts against a queue of random keys (easy negatives); from epoch 2 it holds real ones
    assert np.mean(losses[-3:]) < np.mean(losses[1:4])
    pretrained = _linear(tiny_synth, tmp_path / "lin", tiny, f"init={skeletonclr / 'last.pt'}")
    random = _linear(tiny_synth, tmp_path / "rand", tiny)
    assert pretrained["test"]["top1"] >= random["test"]["top1"] + 10


def test_checkpoint_stores_queue_and_key_encoder(skeletonclr):
    ckpt = load_checkpoint(skeletonclr / "last.pt", kind="pretrain")
    assert ckpt["method"]["name"] == "skeletonclr" and ckpt["backbone"]["name"] == "stgcn"
    assert ckpt["model"]["queue"].shape == (32, 16) and "queue_ptr" in ckpt["model"]
    assert any(k.startswith("key_encoder.") for k in ckpt["model"])


def test_checkpoint_feeds_every_downstream_protocol_and_tool(skeletonclr, run_downstream, tmp_path):
    results = run_downstream(skeletonclr / "last.pt")
    exported = export_classifier(results["finetune"]["checkpoint"], tmp_path / "model.pt", "torchscript")
    assert exported.max_abs_diff <= 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")
def test_skeattnclr_pretrains_a_transformer_and_feeds_the_probe(tiny_synth, tiny, tmp_path):
    cfg = load_config(PretrainConfig, None, tiny.training + SGD + [
        f"data.root={tiny_synth}", f"train.output_dir={tmp_path / 'pre'}", "train.epochs=2", "method.name=skeattnclr",
        "method.skeattnclr.queue=32", "method.skeattnclr.heads=4",
    ])
    summary = run_pretrain(cfg)
    assert np.isfinite(summary["final_loss"])
    probe = run_linear(load_config(LinearConfig, None, tiny.training + [
        f"data.root={tiny_synth}", f"init={tmp_path / 'pre' / 'last.pt'}", f"train.output_dir={tmp_path / 'lin'}",
        "train.epochs=2",
    ]))
    assert probe["test"]["samples"] == 28

"""Hi-TRS end to end on the tiny synthetic set: the encoder beats a random one, the checkpoint
feeds every downstream protocol and tool, and a SIGKILLed run resumes to the same result."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from skelmae.config import LinearConfig, PretrainConfig, load_config
from skelmae.engine.checkpoint import load_checkpoint
from skelmae.export import export_classifier
from skelmae.protocols.linear import run_linear
from skelmae.protocols.pretrain import run_pretrain

# 16-frame windows in clips of 4 frames: 4 clips, 3 of context and the future one
HITRS = ["model.arch=hitrs", "model.hitrs.dim=16", "model.hitrs.depth=2", "model.hitrs.heads=2",
         "model.hitrs.clip_len=4", "model.hitrs.dilation=1", "model.hitrs.stride=4"]
SCHEDULE = ["optim.lr=2e-3", "optim.min_lr=1e-4", "optim.warmup_epochs=1"]


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _linear(root, out, tiny, *init):
    cfg = load_config(LinearConfig, None, tiny.data + list(init) + [
        f"data.root={root}", f"train.output_dir={out}", "train.epochs=30", "augment=false",
    ])
    return run_linear(cfg)


@pytest.fixture(scope="module")
def hitrs(tiny_synth, tiny, tmp_path_factory):
    """20 epochs of the published recipe's tasks and optimiser, tiny model, batch 8 (140 steps)."""
    out = tmp_path_factory.mktemp("hitrs") / "pre"
    run_pretrain(load_config(PretrainConfig, "recipes/hitrs_pretrain", tiny.data + HITRS + SCHEDULE + [
        f"data.root={tiny_synth}", f"train.output_dir={out}", "train.epochs=20", "data.batch_size=8",
    ]))
    return out


def test_loss_falls_and_the_encoder_beats_a_random_one(hitrs, tiny_synth, tiny, tmp_path):
    losses = [r["train/loss"] for r in _records(hitrs)]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    pretrained = _linear(tiny_synth, tmp_path / "lin", tiny, f"init={hitrs / 'last.pt'}")
    random = _linear(tiny_synth, tmp_path / "rand", tiny, *HITRS)
    assert pretrained["test"]["top1"] >= random["test"]["top1"] + 8  # 46.4 against 35.7: 3 of the 28 test clips


def test_checkpoint_describes_a_hitrs_encoder(hitrs):
    ckpt = load_checkpoint(hitrs / "last.pt", kind="pretrain")
    assert ckpt["backbone"]["name"] == "hitrs" and ckpt["method"]["name"] == "hitrs"
    assert ckpt["backbone"]["config"]["clip_len"] == 4 and ckpt["method"]["config"]["mask_ratio"] == 0.15
    assert {"mask_value", "pose_head.weight", "future_head.weight"} <= set(ckpt["model"])


def test_checkpoint_feeds_every_downstream_protocol_and_tool(hitrs, run_downstream, tmp_path):
    results = run_downstream(hitrs / "last.pt", ("model.hitrs.drop_path=0.1",))
    ckpt = load_checkpoint(results["finetune"]["checkpoint"], kind="classifier")
    assert ckpt["backbone"]["config"]["drop_path"] == 0.1  # a tunable option of the pre-trained encoder
    pytest.importorskip("onnxruntime")
    exported = export_classifier(results["finetune"]["checkpoint"], tmp_path / "model.onnx", "onnx")
    assert exported.max_abs_diff <= 1e-4


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


def _skelmae(args, **kw):
    return subprocess.run([sys.executable, "-m", "skelmae", *args], env=_env(), capture_output=True, text=True,
                          check=True, timeout=600, **kw)


def test_sigkill_then_resume_ends_like_an_uninterrupted_run(tiny_synth, tiny, tmp_path):
    common = ["--config", "recipes/hitrs_pretrain", *tiny.data, *HITRS, *SCHEDULE, f"data.root={tiny_synth}",
              "data.batch_size=4", "train.epochs=4", "train.deterministic=true"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    _skelmae(["pretrain", *common, f"train.output_dir={whole}"])
    proc = subprocess.Popen([sys.executable, "-m", "skelmae", "pretrain", *common, f"train.output_dir={broken}"],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not ((broken / "metrics.jsonl").is_file() and _records(broken)):
        if proc.poll() is not None:
            raise AssertionError(f"run ended before it could be killed: {proc.stderr.read()}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # during epoch 2
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (broken / "summary.json").exists()
    _skelmae(["pretrain", "--resume", *common, f"train.output_dir={broken}"])
    a, b = _records(whole), _records(broken)
    assert [r["epoch"] for r in b] == [1, 2, 3, 4]
    assert [r["train/loss"] for r in a] == [r["train/loss"] for r in b]
    wa, wb = (torch.load(d / "last.pt", weights_only=False)["model"] for d in (whole, broken))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)

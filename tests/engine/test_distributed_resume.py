"""Multi-process (torchrun + gloo) equivalence and SIGKILL + --resume, through the real CLI."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

TINY = ["data.window=16", "data.min_crop=8", "data.num_workers=0", "model.transformer.dim=32", "model.transformer.depth=2",
        "model.transformer.heads=4", "train.progress=false"]
DECODER = ["method.mae.decoder_dim=16", "method.mae.decoder_depth=1", "method.mae.decoder_heads=2"]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


def _skelmae(args, nproc=1, check=True, **kw):
    if nproc == 1:
        cmd = [sys.executable, "-m", "skelmae", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "skelmae", *args]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=check, timeout=600, **kw)


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_process_gloo_run_matches_one_process(tiny_synth, tmp_path):
    """Same global batch (16 = 1 x 16 = 2 x 8): same samples, augmentations and masks per step."""
    results = {}
    for nproc in (1, 2):
        pre, lin = tmp_path / f"pre{nproc}", tmp_path / f"lin{nproc}"
        _skelmae(["pretrain", *TINY, *DECODER, f"data.root={tiny_synth}", "data.batch_size=16", "train.epochs=2",
                  "optim.warmup_epochs=1", f"train.output_dir={pre}"], nproc)
        _skelmae(["linear", *TINY, f"data.root={tiny_synth}", "data.batch_size=16", "train.epochs=3",
                  f"init={pre / 'last.pt'}", f"train.output_dir={lin}", "augment=false"], nproc)
        env = json.loads((pre / "environment.json").read_text())
        assert env["world_size"] == nproc
        results[nproc] = (_records(pre), json.loads((lin / "summary.json").read_text()))
    (pre1, lin1), (pre2, lin2) = results[1], results[2]
    for a, b in zip(pre1, pre2):  # identical maths up to float summation order
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-3)
    assert lin1["test"]["samples"] == lin2["test"]["samples"] == 28  # every test sample exactly once
    assert lin1["val_samples"] == lin2["val_samples"]
    # the probe head's BatchNorm sees 8 instead of 16 samples per process, so allow a little slack
    assert abs(lin1["test"]["top1"] - lin2["test"]["top1"]) <= 15


def _kill_during_epoch(cmd_args, run: Path, epoch: int) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "skelmae", *cmd_args], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        if (run / "metrics.jsonl").is_file() and len(_records(run)) >= epoch:
            break
        if proc.poll() is not None:
            raise AssertionError(f"run ended before it could be killed: {proc.stderr.read()}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # in the middle of the next epoch
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


CONTRASTIVE = ["method.name=skeletonclr", "method.skeletonclr.queue=24", "model.arch=stgcn", "model.stgcn.channels=4",
               "model.stgcn.dim=16", "model.stgcn.dropout=0.5", "data.shear=0.5"]


@pytest.mark.parametrize("protocol", ["pretrain", "contrastive", "finetune", "linear"])
def test_sigkill_then_resume_ends_like_an_uninterrupted_run(tiny_synth, tiny_checkpoints, tmp_path, protocol):
    common = [*TINY, f"data.root={tiny_synth}", "data.batch_size=4", "train.epochs=4", "optim.warmup_epochs=1",
              "train.deterministic=true"]
    if protocol == "pretrain":
        common += DECODER
    elif protocol == "contrastive":  # the queue, its pointer and the key encoder must resume too
        common += CONTRASTIVE
    elif protocol == "finetune":
        common += ["data.val_fraction=0.25", "model.transformer.drop_path=0.1"]  # dropout and drop path use the RNG
    else:
        common += [f"init={tiny_checkpoints['mae']}", "data.val_fraction=0.25", "train.epochs=6"]  # augmented features
    command = "pretrain" if protocol == "contrastive" else protocol
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    _skelmae([command, *common, f"train.output_dir={whole}"])
    _kill_during_epoch([command, *common, f"train.output_dir={broken}"], broken, epoch=2)
    assert not (broken / "summary.json").exists()
    _skelmae([command, "--resume", *common, f"train.output_dir={broken}"])
    a, b = _records(whole), _records(broken)
    assert [r["epoch"] for r in b] == list(range(1, len(a) + 1))
    for ra, rb in zip(a, b):
        assert ra["train/loss"] == rb["train/loss"]
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (whole, broken))
    if protocol in ("finetune", "linear"):
        assert sa["test"] == sb["test"] and sa["best_on_val"] == sb["best_on_val"]
    if protocol == "contrastive":
        wa, wb = (torch.load(d / "last.pt", weights_only=False)["model"] for d in (whole, broken))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_corrupt_checkpoint_on_resume_is_a_clear_error(tiny_synth, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"not a checkpoint")
    out = _skelmae(["pretrain", "--resume", *TINY, *DECODER, f"data.root={tiny_synth}", f"train.output_dir={run}"],
                   check=False)
    assert out.returncode == 2 and "last.pt: not a readable PyTorch checkpoint" in out.stderr

"""The Trainer on a toy protocol: accumulation, resume, the NaN stop, teardown on errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from skelmae.config import OptimConfig, TrainConfig
from skelmae.engine import trainer as trainer_module
from skelmae.engine.optim import param_groups
from skelmae.engine.trainer import Protocol, StepContext, Trainer, TrainingDiverged


class Regression(Protocol):
    """Least squares on fixed data; ``poison`` makes the loss NaN from that epoch on."""

    name = "toy"

    def __init__(self, out, epochs=3, batch=8, accum=1, poison_epoch=None, fail_in_setup=False):
        self.train_cfg = TrainConfig(epochs=epochs, output_dir=str(out), accum_steps=accum, progress=False, device="cpu")
        self.optim_cfg = OptimConfig(name="sgd", lr=0.05, momentum=0.0, warmup_epochs=0.0, schedule="step")
        self.config = self.train_cfg
        self.batch, self.poison_epoch, self.fail_in_setup = batch, poison_epoch, fail_in_setup
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(32, 4, generator=generator)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(32, generator=generator)
        self.epochs_seen: list[int] = []

    def setup(self, trainer):
        if self.fail_in_setup:
            raise RuntimeError("setup failed")
        torch.manual_seed(0)
        self.model = nn.Linear(4, 1)

    def param_groups(self):
        return param_groups(self.model, 0.0)

    def steps_per_epoch(self):
        return len(self.x) // self.batch

    def batches(self, epoch):
        self.epochs_seen.append(epoch)
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(epoch))
        return [(self.x[i], self.y[i]) for i in order.split(self.batch)]

    def training_step(self, batch, ctx: StepContext):
        x, y = batch
        loss = ((ctx.net(x).squeeze(1) - y) ** 2).mean()
        return loss * math.nan if ctx.epoch == self.poison_epoch else loss

    def model_description(self):
        return {"kind": "pretrain", "input": {}, "backbone": {"name": "linear", "config": {}},
                "method": {"name": "least_squares", "config": {}}}

    def summary(self, trainer):
        return {"final_loss": trainer.record.get("train/loss")}


def _records(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_accumulation_equals_one_big_batch(tmp_path):
    big = Regression(tmp_path / "big", batch=16)
    Trainer(big).run()
    accumulated = Regression(tmp_path / "acc", batch=8, accum=2)
    Trainer(accumulated).run()
    for a, b in zip(big.model.parameters(), accumulated.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    single = Regression(tmp_path / "single", batch=8)
    Trainer(single).run()
    assert not torch.allclose(single.model.weight, big.model.weight, atol=1e-4)  # the test can tell them apart


def test_loss_falls_and_resume_continues_where_the_run_stopped(tmp_path):
    whole = Regression(tmp_path / "whole", epochs=4)
    Trainer(whole).run()
    losses = [r["train/loss"] for r in _records(tmp_path / "whole")]
    assert losses[-1] < losses[0] / 2

    first = Regression(tmp_path / "split", epochs=2)
    Trainer(first).run()
    second = Regression(tmp_path / "split", epochs=4)
    Trainer(second).run(resume=True)
    assert second.epochs_seen == [2, 3]
    assert [r["epoch"] for r in _records(tmp_path / "split")] == [1, 2, 3, 4]
    assert [r["train/loss"] for r in _records(tmp_path / "split")] == pytest.approx(losses, rel=1e-6)
    assert torch.allclose(second.model.weight, whole.model.weight)


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_checkpoint(tmp_path):
    protocol = Regression(tmp_path / "nan", epochs=3, poison_epoch=1)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 1; .*last.pt \(epoch 1\) is kept"):
        Trainer(protocol).run()
    saved = torch.load(tmp_path / "nan" / "last.pt", weights_only=True)
    assert saved["epoch"] == 0 and all(torch.isfinite(v).all() for v in saved["model"].values())


def test_teardown_runs_on_errors(tmp_path, monkeypatch):
    cleaned = []
    monkeypatch.setattr(trainer_module, "cleanup", lambda info: cleaned.append(info))
    with pytest.raises(TrainingDiverged):
        Trainer(Regression(tmp_path / "a", poison_epoch=0)).run()
    with pytest.raises(RuntimeError, match="setup failed"):
        Trainer(Regression(tmp_path / "b", fail_in_setup=True)).run()
    assert len(cleaned) == 2
    closed = []
    original = trainer_module.RunDir.close
    monkeypatch.setattr(trainer_module.RunDir, "close", lambda self: (closed.append(self.path), original(self)))
    with pytest.raises(TrainingDiverged):
        Trainer(Regression(tmp_path / "c", poison_epoch=0)).run()
    assert closed == [tmp_path / "c"]

"""Plots that attach to a run: training curves at the end, a confusion matrix per test evaluation."""

from __future__ import annotations

from typing import Any

import torch

from skelmae.engine.trainer import Callback, Trainer
from skelmae.eval.metrics import confusion_matrix
from skelmae.viz.plots import plot_training_curves, write_confusion_matrix


class RunPlots(Callback):
    """``curves.png`` from metrics.jsonl and ``confusion.png/.csv`` (the last test pass is the one kept)."""

    def on_evaluation(self, trainer: Trainer, split: str, logits: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> None:
        cm = confusion_matrix(logits.argmax(1).numpy(), labels.numpy(), len(classes))
        write_confusion_matrix(cm, classes, trainer.path / "confusion", title=f"{trainer.protocol.name}, {split}")

    def on_run_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        metrics = trainer.path / "metrics.jsonl"
        if metrics.is_file():
            plot_training_curves(metrics, trainer.path / "curves.png")


def run_plots() -> list[Callback]:
    """The callbacks the command line attaches to every run."""
    return [RunPlots()]

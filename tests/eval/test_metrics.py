"""Top-k, mean-class accuracy and the confusion matrix against values worked out by hand."""

import numpy as np
import pytest
import torch

from skelmae.eval.metrics import classification_metrics, confusion_matrix, mean_class_accuracy, topk_accuracy


def _logits_ranking(rankings: list[list[int]], num_classes: int) -> torch.Tensor:
    """Logits whose classes, best first, are each row of ``rankings``."""
    logits = torch.zeros(len(rankings), num_classes)
    for row, ranking in enumerate(rankings):
        for place, c in enumerate(ranking):
            logits[row, c] = num_classes - place
    return logits


def test_metrics_match_a_hand_computed_example():
    # 6 classes; class 0 has 3 samples, class 1 has 1, class 2 has 2, classes 3-5 none
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    logits = _logits_ranking([
        [0, 1, 2, 3, 4, 5],  # right
        [1, 0, 2, 3, 4, 5],  # wrong, true class second
        [1, 2, 3, 4, 5, 0],  # wrong, true class sixth: outside the top 5
        [1, 0, 2, 3, 4, 5],  # right
        [0, 1, 3, 4, 5, 2],  # wrong, true class sixth
        [2, 0, 1, 3, 4, 5],  # right
    ], 6)
    metrics = classification_metrics(logits, labels, 6)
    assert metrics["top1"] == pytest.approx(100 * 3 / 6)
    assert metrics["top5"] == pytest.approx(100 * 4 / 6)
    # per-class recall 1/3, 1/1, 1/2 over the classes that have samples
    assert metrics["mean_class"] == pytest.approx(100 * (1 / 3 + 1 + 1 / 2) / 3)
    assert metrics["samples"] == 6
    cm = confusion_matrix(logits.argmax(1).numpy(), labels.numpy(), 6)
    assert cm[0].tolist() == [1, 2, 0, 0, 0, 0] and cm[2].tolist() == [1, 0, 1, 0, 0, 0] and cm.sum() == 6


def test_top_k_beyond_the_class_count_and_empty_confusion():
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2]])
    assert topk_accuracy(logits, torch.tensor([0, 1]), 5) == 100.0
    assert topk_accuracy(logits, torch.tensor([0, 1]), 1) == 0.0
    assert mean_class_accuracy(np.zeros((3, 3), np.int64)) == 0.0

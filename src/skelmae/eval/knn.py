"""k-nearest-neighbour classification on features (cosine similarity, weighted votes)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def knn_predict(
    train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor, k: int,
    num_classes: int, temperature: float, chunk: int = 1024,
) -> torch.Tensor:
    """Predicted class of each test feature; features need not be normalised.

    Each test sample votes with its ``k`` most similar training samples, weighted by
    ``exp(cosine / temperature)`` (k = 1 is plain nearest-neighbour retrieval).
    """
    train_n = F.normalize(train_feats, dim=1)
    preds = []
    for block in F.normalize(test_feats, dim=1).split(chunk):
        sims, idx = (block @ train_n.T).topk(min(k, train_n.shape[0]), dim=1)
        votes = torch.zeros(block.shape[0], num_classes, device=block.device)
        votes.scatter_add_(1, train_labels[idx], torch.exp(sims / temperature))
        preds.append(votes.argmax(1))
    return torch.cat(preds)

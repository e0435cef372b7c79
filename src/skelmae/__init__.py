"""skelmae: self-supervised skeleton action recognition with masked autoencoders."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from skelmae.inference import SkeletonModel

__version__ = "0.1.0"


def load(checkpoint: str | Path, device: str | torch.device = "cpu") -> SkeletonModel:
    """Load a checkpoint for use in Python: ``.encode(x)``, ``.predict(x)``, ``.reconstruct(x)``.

    See :mod:`skelmae.inference`; torch is imported only when this is called, so that
    ``import skelmae`` and the command line stay fast.
    """
    from skelmae.inference import load as load_model

    return load_model(checkpoint, device)

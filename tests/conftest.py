"""Shared fixtures: small synthetic datasets and the location of the real third-party data."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Real datasets live outside the repository (never copied in): ../shared/data or $SKELMAE_SHARED_DATA."""
    return Path(os.environ.get("SKELMAE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real test data not found at {path} (set SKELMAE_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """A small synthetic dataset: 6 subjects (4 train, 2 test), 1 repetition, 14 classes."""
    from skelmae.data.synthetic import SynthConfig, write_synthetic

    out = tmp_path_factory.mktemp("synth") / "tiny"
    return write_synthetic(out, SynthConfig(subjects=6, test_subjects=2, repetitions=1), progress=False)


TINY_DATA = ["data.window=16", "data.min_crop=8", "data.batch_size=16", "data.num_workers=0", "train.progress=false"]
TINY_BACKBONE = ["model.transformer.dim=32", "model.transformer.depth=2", "model.transformer.heads=4"]
TINY_DECODER = ["method.mae.decoder_dim=16", "method.mae.decoder_depth=1", "method.mae.decoder_heads=2"]
TINY_TRAINING = TINY_DATA + TINY_BACKBONE  # the one tiny configuration of downstream tests
TINY_PRETRAIN = TINY_TRAINING + TINY_DECODER  # ... and of pre-training


@pytest.fixture(scope="session")
def tiny() -> SimpleNamespace:
    """The shared tiny configuration as override lists: ``data``, ``backbone``, ``decoder``,
    ``training`` (data + backbone) and ``pretrain`` (training + decoder)."""
    return SimpleNamespace(data=TINY_DATA, backbone=TINY_BACKBONE, decoder=TINY_DECODER, training=TINY_TRAINING,
                           pretrain=TINY_PRETRAIN)


@pytest.fixture(scope="session")
def tiny_checkpoints(tiny_synth, tmp_path_factory) -> dict[str, Path]:
    """A one-epoch MAE on ``tiny_synth`` and a two-epoch linear probe on it (window 16, width 32).

    Keys: ``mae`` and ``classifier`` (checkpoint files), ``pretrain_dir`` and ``linear_dir`` (run folders).
    """
    from skelmae.config import LinearConfig, PretrainConfig, load_config
    from skelmae.protocols.linear import run_linear
    from skelmae.protocols.pretrain import run_pretrain
    from skelmae.viz.callbacks import run_plots

    runs = tmp_path_factory.mktemp("tiny_runs")
    run_pretrain(load_config(PretrainConfig, None, TINY_PRETRAIN + [
        f"data.root={tiny_synth}", f"train.output_dir={runs / 'pre'}", "train.epochs=1", "optim.warmup_epochs=0",
    ]), callbacks=run_plots())
    run_linear(load_config(LinearConfig, None, TINY_TRAINING + [
        f"data.root={tiny_synth}", f"init={runs / 'pre' / 'last.pt'}", f"train.output_dir={runs / 'lin'}",
        "train.epochs=2", "augment=false",
    ]), callbacks=run_plots())
    return {
        "mae": runs / "pre" / "last.pt", "classifier": runs / "lin" / "last.pt",
        "pretrain_dir": runs / "pre", "linear_dir": runs / "lin",
    }

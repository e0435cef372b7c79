"""Shared fixtures: small synthetic datasets and the location of the real third-party data."""

from __future__ import annotations

import os
from pathlib import Path

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

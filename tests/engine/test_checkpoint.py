import json
from pathlib import Path

import numpy as np
import pytest
import torch

from skelmae.engine.checkpoint import load_checkpoint, save_checkpoint
from skelmae.errors import CheckpointError


def _state():
    return {"kind": "pretrain", "input": {}, "backbone": {"name": "transformer", "config": {}},
            "method": {"name": "mae", "config": {}}, "model": {"w": torch.ones(2)}, "data": {"window": 8}}


def test_round_trip_and_atomic_write(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", _state())
    state = load_checkpoint(path, kind="pretrain")
    assert torch.equal(state["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    path = save_checkpoint(tmp_path / "a.pt", _state())
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt: not a readable PyTorch checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="a 'pretrain' checkpoint, expected a 'classifier' one"):
        load_checkpoint(path, kind="classifier")
    torch.save({"model": {"w": torch.ones(1)}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_checkpoint(tmp_path / "list.pt")


V1 = Path(__file__).resolve().parents[1] / "fixtures" / "v1"


@pytest.mark.parametrize("name", ["mae", "lin", "gmae", "strl"])
def test_version_1_checkpoints_still_load_and_compute_the_same(name):
    """Checkpoints written by skelmae 0.1.0 (tests/fixtures/v1/make_v1.py) give the same outputs."""
    from skelmae.inference import load

    reference = json.loads((V1 / "reference.json").read_text())[name]
    model = load(V1 / f"{name}.pt")
    clip = np.load(V1 / "clip.npy")
    assert np.allclose(model.encode(clip), reference["features"], atol=1e-5)
    if "probabilities" in reference:
        assert np.allclose(model.probabilities(clip), reference["probabilities"], atol=1e-5)
    state = load_checkpoint(V1 / f"{name}.pt")
    assert state["version"] == 2 and state["backbone"]["name"] in ("transformer", "gin")

import pytest
import torch

from skelmae.engine.checkpoint import load_checkpoint, save_checkpoint
from skelmae.errors import CheckpointError


def _state():
    return {"kind": "mae", "model_args": {"dim": 8}, "model": {"w": torch.ones(2)}, "data": {"window": 8}}


def test_round_trip_and_atomic_write(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", _state())
    state = load_checkpoint(path, kind="mae")
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
    with pytest.raises(CheckpointError, match="a 'mae' checkpoint, expected a 'classifier' one"):
        load_checkpoint(path, kind="classifier")
    torch.save({"model": {"w": torch.ones(1)}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_checkpoint(tmp_path / "list.pt")

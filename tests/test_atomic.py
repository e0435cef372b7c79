"""Write-then-rename: a failed write leaves the previous file and no temporary file."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from skelmae.atomic import atomic_output, write_bytes_atomic, write_json_atomic, write_text_atomic


def test_writes_create_folders_and_replace_files(tmp_path):
    path = write_text_atomic(tmp_path / "new" / "a.txt", "first\n")
    assert path.read_text() == "first\n"
    write_text_atomic(path, "second: é\n")
    assert path.read_bytes() == "second: é\n".encode()
    assert write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "b.bin", "new"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "figure.png"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(path) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png"  # writers choose the format by suffix
        tmp.write_text("half of a new fi")
        raise RuntimeError("the writer failed")
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]


def test_json_converts_numpy_torch_and_paths(tmp_path):
    data = {"n": np.int64(3), "x": np.float32(0.5), "a": np.arange(3), "t": torch.tensor([1.5, 2.0]), "p": Path("d/f")}
    path = write_json_atomic(tmp_path / "s.json", data)
    assert json.loads(path.read_text()) == {"n": 3, "x": 0.5, "a": [0, 1, 2], "t": [1.5, 2.0], "p": "d/f"}
    assert path.read_text().endswith("}\n")
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text())["n"] == 3 and list(tmp_path.iterdir()) == [path]

"""docs/own-data.md's walk-through, run as written (with a tiny model and one epoch) in a
temporary folder, and the README's complete ``DatasetWriter`` example."""

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import REPO, TINY_DATA, TINY_PRETRAIN
from skelmae.cli import app
from skelmae.data.storage import SkeletonStore

FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)
TINY = {"pretrain": [*TINY_PRETRAIN, "train.epochs=1"], "linear": [*TINY_DATA, "train.epochs=1"]}


def _blocks(document: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(document.read_text()) if lang == language]


def _commands(block: str) -> list[list[str]]:
    joined = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line)[1:] for line in joined.splitlines() if line.strip().startswith("skelmae ")]


def _run(args: list[str]):
    args = [*args, *TINY.get(args[0], [])]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, f"skelmae {shlex.join(args)}\n{result.output}"
    return result


def test_the_own_data_walk_through_runs_as_written(tmp_path, monkeypatch):
    document = REPO / "docs" / "own-data.md"
    monkeypatch.chdir(tmp_path)
    [generate] = [b for b in _blocks(document, "python") if "savetxt" in b]
    exec(compile(generate, "own-data.md", "exec"), {})
    [walk_through] = [b for b in _blocks(document, "bash") if "data prepare files" in b]
    outputs = [_run(args).output for args in _commands(walk_through)]
    assert "18 samples" in outputs[0] or "36 samples" in outputs[0]
    assert "xsub_train 18" in outputs[0] and "xsub_test 18" in outputs[0]
    assert "spine" in outputs[1]  # data info shows the layout's joints and the recorded centring
    assert re.search(r"1\.\s+\d+\.\d%\s+[123]\b", outputs[-1])  # predict ranks the three classes


def test_the_readme_dataset_writer_example_runs(tmp_path, monkeypatch):
    readme = REPO / "README.md"
    monkeypatch.chdir(tmp_path)
    [layout] = [b for b in _blocks(readme, "yaml") if "name: my_rig" in b]
    (tmp_path / "my_rig.yaml").write_text(layout)
    [example] = [b for b in _blocks(readme, "python") if "DatasetWriter(" in b]
    printed = []
    exec(compile(example, "README.md", "exec"), {"print": lambda *a: printed.append(a)})
    assert printed == [(8, ["wave", "clap"], ["train", "test"])]
    assert _run(["data", "info", "data/my_rig"]).output


@pytest.mark.parametrize("document", sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"], ids=lambda p: p.name)
def test_documents_name_existing_docs(document):
    for target in re.findall(r"\]\((docs/[\w.-]+\.md|[\w.-]+\.md)", document.read_text()):
        base = REPO if target.startswith("docs/") else document.parent
        assert (base / target).is_file(), f"{document.name} links to {target}, which does not exist"


def _openpose_output(root: Path, takes: int = 10) -> None:
    """OpenPose --write_json folders (BODY_25, one person) and the index the document's command reads."""
    rng = np.random.default_rng(0)
    rows = ["name,label,take"]
    for take in range(takes):
        folder = root / "openpose_json" / f"clip_{take:04d}"
        folder.mkdir(parents=True)
        for frame in range(6):
            keypoints = np.concatenate([rng.uniform(100, 500, (25, 2)), rng.uniform(0.5, 1, (25, 1))], axis=1)
            person = {"person_id": [-1], "pose_keypoints_2d": keypoints.reshape(-1).round(2).tolist()}
            (folder / f"clip_{take:04d}_{frame:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": [person]}))
        rows.append(f"clip_{take:04d},{'wave' if take % 2 else 'clap'},{take}")
    (root / "takes.csv").write_text("\n".join(rows) + "\n")


def test_the_pose_estimator_command_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _openpose_output(tmp_path)
    [block] = [b for b in _blocks(REPO / "docs" / "own-data.md", "bash") if "prepare openpose" in b]
    [command] = _commands(block)
    output = _run(command).output
    assert "10 samples" in output and "train 8" in output and "test 2" in output
    store = SkeletonStore(tmp_path / "data" / "videos")
    assert store.layout.name == "openpose_body25" and store.classes == ["clap", "wave"]

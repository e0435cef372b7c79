"""Checkpoints: written atomically, read with clear errors, self-describing.

A checkpoint is a dict that rebuilds its model without any other file::

    format, version      "skelmae-checkpoint", 1
    kind                 "mae" (pre-training) or "classifier" (probe / fine-tune)
    model_args           constructor arguments of the model
    model                state_dict
    data                 layout, channels, persons, window, classes, preprocessing
    optimizer, epoch     for --resume (absent from exported weights)
    rng                  torch RNG state(s), for bit-exact resumption on CPU
    config               the resolved run configuration

Only plain containers and tensors are stored, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import os
import pickle
import uuid
import zipfile
from pathlib import Path
from typing import Any

import torch

from skelmae.errors import CheckpointError

FORMAT = "skelmae-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write to a temporary name in the same folder, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: checkpoint holds a {type(state).__name__}, expected a dict")
    if state.get("format") != FORMAT:
        if "model" in state and isinstance(state["model"], dict):
            raise CheckpointError(
                f"{path}: a foreign checkpoint with a 'model' state dict; MAMP checkpoints are imported "
                "with `skelmae import-mamp`"
            )
        raise CheckpointError(f"{path}: not a skelmae checkpoint (field 'format' is {state.get('format')!r})")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')!r}, this skelmae reads {VERSION}")
    for key in ("kind", "model_args", "model", "data"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint lacks field {key!r}")
    if kind is not None and state["kind"] != kind:
        raise CheckpointError(f"{path}: a {state['kind']!r} checkpoint, expected a {kind!r} one")
    return state


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

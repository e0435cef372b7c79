"""Checkpoints: written atomically, read with clear errors, self-describing.

A checkpoint is a dict that rebuilds its model without any other file::

    format, version      "skelmae-checkpoint", 2
    kind                 "pretrain" (a method around a backbone) or "classifier"
    input                layout, channels, num_frames the model is built for
    backbone             {"name", "config"} of the registered backbone
    method | head        {"name", "config"} of the registered method, or of the head (+ num_classes)
    model                state_dict
    data                 layout, channels, persons, window, classes, preprocessing
    protocol, config     the protocol that wrote it and its resolved configuration
    trainer              epoch, step, optimizer, rng, protocol state: for --resume (last.pt only)

Only plain containers and tensors are stored, so ``torch.load(weights_only=True)`` reads it.
Version 1 (``model_args``) is upgraded on load.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from skelmae.atomic import atomic_output
from skelmae.errors import CheckpointError
from skelmae.models.build import upgrade_v1

FORMAT = "skelmae-checkpoint"
VERSION = 2
KINDS = ("pretrain", "classifier")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Never a half-written file: a killed run leaves the previous checkpoint or the new one."""
    with atomic_output(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
    return Path(path)


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
                f"{path}: a foreign checkpoint with a 'model' state dict (e.g. from the MAMP code base); "
                "skelmae reads only checkpoints it wrote"
            )
        raise CheckpointError(f"{path}: not a skelmae checkpoint (field 'format' is {state.get('format')!r})")
    if state.get("version") == 1:
        for key in ("kind", "model_args", "model", "data"):
            if key not in state:
                raise CheckpointError(f"{path}: checkpoint lacks field {key!r}")
        state = {**state, **upgrade_v1(state, str(path)), "version": VERSION}
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')!r}, this skelmae reads 1 and {VERSION}")
    check_fields(state, str(path))
    if kind is not None and state["kind"] != kind:
        raise CheckpointError(f"{path}: a {state['kind']!r} checkpoint, expected a {kind!r} one")
    return state


def check_fields(state: dict[str, Any], source: str) -> None:
    """The fields that rebuild the model are all there (a checkpoint edited by hand may lack some)."""
    for key in ("kind", "input", "backbone", "model", "data"):
        if key not in state:
            raise CheckpointError(f"{source}: checkpoint lacks field {key!r}")
    if state["kind"] not in KINDS:
        raise CheckpointError(f"{source}: unknown checkpoint kind {state['kind']!r}; expected one of {KINDS}")
    needed = ("head", "num_classes") if state["kind"] == "classifier" else ("method",)
    missing = [key for key in needed if key not in state]
    if missing:
        raise CheckpointError(f"{source}: {state['kind']} checkpoint lacks field(s) {missing}")


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

"""The run directory: provenance, metrics and summary of one training run.

Every run writes (rank 0 only)::

    config.yaml        the resolved configuration
    environment.json   versions, git SHA, device, world size, command line
    data.json          dataset path and manifest hash
    metrics.jsonl      one JSON object per logged step / epoch
    tb/                TensorBoard events
    last.pt, best.pt   checkpoints
    summary.json       final figures (written atomically at the end)

Plots (training curves, confusion matrices) are drawn by callbacks (``skelmae.viz.callbacks``).
"""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import sys
import time
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skelmae.atomic import jsonable, write_json_atomic, write_text_atomic
from skelmae.config import to_yaml


def default_run_dir(protocol: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / protocol / stamp


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: torch.device, world_size: int) -> dict[str, Any]:
    return {
        "skelmae": version("skelmae"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "cuda": torch.version.cuda,
        "world_size": world_size,
        "threads": torch.get_num_threads(),
        "git_sha": git_sha(),
        "argv": sys.argv,
        "started": datetime.now().isoformat(timespec="seconds"),
    }


class RunDir:
    """Writes a run's files. On ranks other than 0 every method is a no-op."""

    def __init__(self, path: str | Path, active: bool = True, tensorboard: bool = True):
        self.path = Path(path)
        self.active = active
        self._tb = None
        self._metrics = None
        if active:
            self.path.mkdir(parents=True, exist_ok=True)
            self._metrics = open(self.path / "metrics.jsonl", "a", encoding="utf-8")
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(self.path / "tb")

    def write_provenance(self, cfg: Any, device: torch.device, world_size: int, data: dict[str, Any]) -> None:
        if not self.active:
            return
        write_text_atomic(self.path / "config.yaml", to_yaml(cfg))
        write_json_atomic(self.path / "environment.json", environment(device, world_size))
        write_json_atomic(self.path / "data.json", data)

    def log(self, step: int, **values: Any) -> None:
        """Append a record to metrics.jsonl and numbers to TensorBoard (keys like 'train/loss')."""
        if not self.active:
            return
        record = {"step": step, "time": round(time.time(), 3), **values}
        self._metrics.write(json.dumps(record, default=jsonable) + "\n")
        self._metrics.flush()
        if self._tb is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(key, value, step)

    def drop_records_after(self, epoch: int) -> None:
        """On resume: forget metrics of epochs after the checkpoint (they are run again)."""
        if not self.active:
            return
        path = self.path / "metrics.jsonl"
        self._metrics.close()
        kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("epoch", 0) <= epoch]
        write_text_atomic(path, "".join(line + "\n" for line in kept))
        self._metrics = open(path, "a", encoding="utf-8")

    def summary(self, data: dict[str, Any]) -> None:
        if self.active:
            write_json_atomic(self.path / "summary.json", data)

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

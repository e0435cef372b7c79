"""Write-then-rename for files produced by third-party writers (Pillow, ffmpeg, matplotlib, ONNX).

The temporary name keeps the target's suffix, because those writers pick the format from it,
and lives in the target's folder, so the final ``os.replace`` is atomic: a killed command
leaves either the previous file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path to write to; renames it to ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()

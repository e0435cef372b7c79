"""Write-then-rename: the one way skelmae writes a file.

The temporary file lives in the target's folder, so the final ``os.replace`` is atomic: a
killed command leaves either the previous file or the new one, never half of one, and a
writer that raises leaves the previous file untouched and no temporary file behind. The
temporary name keeps the target's suffix, because third-party writers (Pillow, ffmpeg,
matplotlib, ONNX, ``np.save``) pick the format from it.

Use :func:`write_text_atomic`, :func:`write_bytes_atomic` or :func:`write_json_atomic`
for content in memory, and :func:`atomic_output` for a writer that wants a path.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_output", "write_text_atomic", "write_bytes_atomic", "write_json_atomic", "jsonable"]


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
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Writes ``text`` as UTF-8."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def jsonable(value: Any) -> Any:
    """``json.dumps`` default for what run records hold besides plain data: numpy scalars
    and arrays and torch tensors (all have ``tolist``), and paths."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Indented JSON with a final newline; numpy, torch and path values are converted."""
    return write_text_atomic(path, json.dumps(data, indent=2, default=jsonable) + "\n")

"""Errors a user can act on. The CLI prints their message without a traceback."""

from __future__ import annotations

from pathlib import Path


class SkelmaeError(Exception):
    """Base class: the message alone must tell the user what is wrong and where."""


class ConfigError(SkelmaeError, ValueError):
    """A configuration value or override is invalid."""


class CheckpointError(SkelmaeError, ValueError):
    """A checkpoint is unreadable, corrupt, or does not match the requested model."""


class DataFormatError(SkelmaeError, ValueError):
    """Input data does not have the expected format.

    ``where`` is a line number (text files) or a field name (JSON, manifests, pickles);
    ``expected`` says what would have been valid.
    """

    def __init__(self, path: str | Path, where: str | int | None, problem: str, expected: str | None = None):
        self.path = str(path)
        self.where = where
        self.problem = problem
        self.expected = expected
        location = self.path
        if isinstance(where, int):
            location += f", line {where}"
        elif where:
            location += f", {where}"
        message = f"{location}: {problem}"
        if expected:
            message += f" (expected {expected})"
        super().__init__(message)

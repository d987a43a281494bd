"""Errors a user can act on. Every message says what was wrong, where, and (when useful) what to do.

Entry points catch :class:`L3NetError` and print its message instead of a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path


class L3NetError(Exception):
    """Base class: an error whose message is meant for the user, not a traceback."""


class InputError(L3NetError, ValueError):
    """An array or argument that cannot be used (NaN, wrong layout, empty, bad sample rate...)."""


class MediaError(L3NetError):
    """A media file that cannot be used, with the file and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelFileError(L3NetError):
    """A model file or directory that is missing, corrupt, or of another architecture."""


class DatasetError(L3NetError):
    """A dataset folder or shard directory in the wrong layout, with empty classes or folds, etc."""


class OutputError(L3NetError):
    """An output location that cannot be written (not writable, disk full)."""

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


class StreamDecodeError(MediaError):
    """A stream of a media file that FFmpeg could not decode: which stream, from when, and FFmpeg's
    own reason (the other streams of the file are not the cause).

    ``kind``: 'audio' or 'video'; ``index``: among the file's streams of that kind; ``container_index``:
    among all its streams (ffprobe's #N); ``at``: seconds on the file's timeline of the first failure
    (None when the packet had no timestamp); ``ffmpeg``: FFmpeg's reason; ``what``: what it cost.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, kind: str, index: int, container_index: int, codec: str,
        at: float | None, ffmpeg: str, what: str,
    ) -> None:
        self.kind, self.index, self.container_index, self.codec = kind, index, container_index, codec
        self.at, self.ffmpeg, self.what = at, ffmpeg, what
        when = "" if at is None else f" at {at:.2f} s"
        super().__init__(path, f"{kind} stream {index} (#{container_index}, {codec}) failed{when}: {what} (FFmpeg: {ffmpeg})")

    def to_dict(self) -> dict[str, object]:
        """The manifest's ``failure`` field."""
        return {
            "stream": self.kind, "index": self.index, "container_index": self.container_index, "codec": self.codec,
            "at_s": None if self.at is None else round(self.at, 3), "ffmpeg": self.ffmpeg, "what": self.what,
        }


class ModelFileError(L3NetError):
    """A model file or directory that is missing, corrupt, or of another architecture."""


class DatasetError(L3NetError):
    """A dataset folder or shard directory in the wrong layout, with empty classes or folds, etc."""


class OutputError(L3NetError):
    """An output location that cannot be written (not writable, disk full)."""

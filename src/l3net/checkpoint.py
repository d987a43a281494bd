"""Checkpoints: the one format and the one writer for every resumable loop.

Training (:mod:`l3net.train`), the supervised baselines and the streamed probe each save their state
here, as one file written atomically (:func:`l3net.fileio.atomic_path`: a crash, ``kill -9`` or a
full disk leaves the previous checkpoint whole and no temporary file behind). A checkpoint is a dict
that ``torch.load(weights_only=True)`` reads (plain tensors, numbers, strings; nothing arbitrary is
unpickled)::

    {"l3net_checkpoint": KIND, "version": VERSION, "fingerprint": "<JSON>", "state": {...}}

``KIND`` names the loop ("train", "baselines", "probe"), so one loop never resumes another's file.
The fingerprint is what the state belongs to (settings, data, model) as a JSON object: a loop resumes
only under an equal fingerprint, and a refusal names each entry that differs. Checkpoints of the
earlier formats (a top-level ``"format": 1`` or ``"version": 1`` without ``"l3net_checkpoint"``) are
refused with a message that says so; they are not converted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Union

import torch

from .errors import InputError, OutputError
from .fileio import atomic_path, remove_stale_temporaries

#: The checkpoint format this l3net writes and reads.
VERSION = 2
_MARK = "l3net_checkpoint"

#: How a mismatch of one fingerprint entry is told: a label ("--batch-size" -> "--batch-size was 32,
#: now 16") or a function of the saved and the current value that returns the whole phrase.
Name = Union[str, Callable[[Any, Any], str]]


class CheckpointMismatch(InputError):
    """A checkpoint written for other settings, data or model than the ones it would resume."""

    def __init__(self, path: Path, differences: list[str], advice: str) -> None:
        self.path = path
        self.differences = differences
        super().__init__(f"cannot resume from {path}: it was written for other data or settings ("
                         + "; ".join(differences) + ")" + (f". {advice}" if advice else ""))


@dataclass(frozen=True)
class SavedCheckpoint:
    """A checkpoint read back: which loop wrote it, what it belongs to, and the loop's state."""

    path: Path
    kind: str
    fingerprint: dict[str, Any]
    state: dict[str, Any]


def _as_json(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    # Tuples become lists, as they come back from the file: equal settings compare equal.
    return json.loads(json.dumps(dict(fingerprint)))


def save_checkpoint(path: str | os.PathLike[str], kind: str, fingerprint: Mapping[str, Any],
                    state: Mapping[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, lists and dicts of them) as a ``kind`` checkpoint
    belonging to ``fingerprint`` (JSON values) to ``path``, atomically.

    Raises :class:`OutputError` naming ``path`` when it cannot be written (unwritable directory,
    full disk); the checkpoint already at ``path``, if any, is then left as it was.
    """
    path = Path(path)
    payload = {_MARK: kind, "version": VERSION, "fingerprint": json.dumps(_as_json(fingerprint)), "state": dict(state)}
    remove_stale_temporaries(path.parent, [path.name])  # left by writers killed before
    with atomic_path(path) as tmp:  # an OSError (ENOSPC, EACCES...) becomes an OutputError there
        try:
            torch.save(payload, tmp)
        except RuntimeError as exc:  # torch's zip writer reports a failed write (a full disk) this way
            raise OutputError(f"cannot write {path}: {exc} (is the disk full?)") from exc


def read_checkpoint(path: str | os.PathLike[str], kind: str, *,
                    map_location: str | torch.device = "cpu") -> SavedCheckpoint:
    """Read the ``kind`` checkpoint at ``path`` (tensors moved to ``map_location``).

    Raises :class:`InputError` naming ``path`` when it is missing, corrupt, of another loop, or of
    another format version. Its fingerprint is not checked here: see :func:`check_fingerprint`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no checkpoint there")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a damaged zip, a truncated file, a foreign pickle: all mean unusable
        raise InputError(f"{path}: corrupt or not an l3net checkpoint ({exc})") from exc
    if not isinstance(payload, dict):
        raise InputError(f"{path}: not an l3net checkpoint")
    if _MARK not in payload:
        if payload.get("format") == 1 or payload.get("version") == 1:
            raise InputError(f"{path}: a checkpoint of an earlier l3net (format 1), which this version (format "
                             f"{VERSION}) does not resume; finish that run with the l3net that wrote it, or start "
                             "a new one")
        raise InputError(f"{path}: not an l3net checkpoint")
    if payload[_MARK] != kind:
        raise InputError(f"{path}: a {payload[_MARK]!r} checkpoint, not a {kind!r} one")
    if payload.get("version") != VERSION:
        raise InputError(f"{path}: checkpoint format version {payload.get('version')!r}; this l3net reads "
                         f"version {VERSION} only")
    try:
        fingerprint = json.loads(payload["fingerprint"])
        state = payload["state"]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: corrupt l3net checkpoint (no readable fingerprint or state: {exc})") from exc
    if not isinstance(fingerprint, dict) or not isinstance(state, dict):
        raise InputError(f"{path}: corrupt l3net checkpoint (fingerprint and state must be objects)")
    return SavedCheckpoint(path, kind, fingerprint, state)


def fingerprint_differences(saved: Mapping[str, Any], current: Mapping[str, Any],
                            names: Mapping[str, Name] | None = None) -> list[str]:
    """One phrase per entry where ``saved`` and ``current`` differ ("lr was 0.001, now 0.01"), in the
    order of ``current`` then of entries only ``saved`` has; ``names`` tells entries as users know them."""
    names = names or {}
    current = _as_json(current)
    out = []
    for key in [*current, *(k for k in saved if k not in current)]:
        old, new = saved.get(key), current.get(key)
        if old != new:
            name = names.get(key, key)
            out.append(name(old, new) if callable(name) else f"{name} was {old!r}, now {new!r}")
    return out


def check_fingerprint(checkpoint: SavedCheckpoint, fingerprint: Mapping[str, Any], *,
                      names: Mapping[str, Name] | None = None, advice: str = "") -> None:
    """Raise :class:`CheckpointMismatch` (naming every difference, then ``advice``) unless
    ``checkpoint`` belongs to ``fingerprint``."""
    differences = fingerprint_differences(checkpoint.fingerprint, fingerprint, names)
    if differences:
        raise CheckpointMismatch(checkpoint.path, differences, advice)


def resume_checkpoint(path: str | os.PathLike[str], kind: str, fingerprint: Mapping[str, Any], *,
                      names: Mapping[str, Name] | None = None, advice: str = "",
                      map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The state of the ``kind`` checkpoint at ``path``, which must belong to ``fingerprint``
    (:func:`read_checkpoint` then :func:`check_fingerprint`)."""
    checkpoint = read_checkpoint(path, kind, map_location=map_location)
    check_fingerprint(checkpoint, fingerprint, names=names, advice=advice)
    return checkpoint.state

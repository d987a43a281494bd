"""The streamed probe's checkpoints (:mod:`l3net.evaluate.probe.stream`), in the one checkpoint format
(:mod:`l3net.checkpoint`: atomic, versioned), resumed only when data, model and settings are the same.

A checkpoint holds the step reached, per row (an object with ``state()`` and ``load(state)``: the
linear layer, its BatchNorm statistics, Adam and the schedule), the files skipped so far, and the
fingerprint of :func:`checkpoint_fingerprint`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from ... import checkpoint
from ...models import L3Net
from .data import ProbeImages

#: The loop's name in its checkpoint (l3net.checkpoint).
CHECKPOINT_KIND = "probe"


def checkpoint_fingerprint(images: ProbeImages, config: Any, rows: dict[str, L3Net]) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed (epochs may grow; workers, progress may change)."""
    return {
        "classes": len(images.classes), "class_names_hash": hash_strings(images.classes),
        "train": len(images.train), "val": len(images.val),
        "rows": list(rows), "model": next(iter(rows.values())).config.name, "weights": _weights_stamp(rows),
        **{k: getattr(config, k) for k in ("lr", "lr_decay", "lr_decay_epochs", "label_smoothing", "batch_size",
                                           "seed", "n_splits", "precision")},
    }


def hash_strings(items: tuple[str, ...]) -> str:
    """A short stable digest of a list of names."""
    return hashlib.sha256("\n".join(items).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def save_checkpoint(path: Path, rows: dict[str, Any], step: int, fingerprint: dict[str, Any],
                    skipped: dict[str, str]) -> None:
    """Write the training state after ``step`` steps to ``path``, atomically (an
    :class:`~l3net.errors.OutputError` naming it on a full disk or an unwritable folder)."""
    state = {"step": step, "rows": {name: row.state() for name, row in rows.items()}, "skipped": dict(skipped)}
    checkpoint.save_checkpoint(path, CHECKPOINT_KIND, fingerprint, state)


def load_checkpoint(path: Path, rows: dict[str, Any], fingerprint: dict[str, Any], device: torch.device,
                    ) -> tuple[int, dict[str, str]]:
    """Load ``path`` into ``rows``; ``(step, skipped files)``. An :class:`InputError` when it is not a
    checkpoint or was written for other data, model or settings (it says which)."""
    state = checkpoint.resume_checkpoint(path, CHECKPOINT_KIND, fingerprint, map_location=device,
                                         advice="Use the same ones to resume, or delete it to start over")
    for name, row in rows.items():
        row.load(state["rows"][name])
    return int(state["step"]), dict(state["skipped"])


def _weights_stamp(rows: dict[str, L3Net]) -> list[str]:
    """A cheap stamp of each row's vision weights (sum and sum of squares): another model is refused."""
    stamps = []
    for net in rows.values():
        with torch.no_grad():
            values = torch.cat([p.detach().double().flatten().cpu() for p in net.vision.parameters()])
        stamps.append(f"{float(values.sum()):.9e}/{float((values * values).sum()):.9e}")
    return stamps

"""The streamed probe's checkpoints (:mod:`l3net.evaluate.probe.stream`): written atomically with
:func:`l3net.fileio.atomic_path`, resumed only when data, model and settings are the same.

A checkpoint holds the step reached, per row (an object with ``state()`` and ``load(state)``: the
linear layer, its BatchNorm statistics, Adam and the schedule), the files skipped so far, and the
fingerprint of :func:`checkpoint_fingerprint`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from ...errors import InputError
from ...fileio import atomic_path
from ...models import L3Net
from .data import ProbeImages

CHECKPOINT_VERSION = 1


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
    """Write the training state after ``step`` steps to ``path``, atomically."""
    state = {"version": CHECKPOINT_VERSION, "step": step, "fingerprint": fingerprint,
             "rows": {name: row.state() for name, row in rows.items()}, "skipped": dict(skipped)}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, rows: dict[str, Any], fingerprint: dict[str, Any], device: torch.device,
                    ) -> tuple[int, dict[str, str]]:
    """Load ``path`` into ``rows``; ``(step, skipped files)``. An :class:`InputError` when it is not a
    checkpoint or was written for other data, model or settings (it says which)."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint gets the same clear message
        raise InputError(f"{path}: not a readable probe checkpoint ({exc}); delete it to start over") from exc
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"{path}: not a probe checkpoint of this l3net version; delete it to start over")
    saved = state["fingerprint"]
    differ = [k for k in fingerprint if saved.get(k) != fingerprint[k]]
    if differ:
        detail = ", ".join(f"{k}: {saved.get(k)!r} then, {fingerprint[k]!r} now" for k in differ)
        raise InputError(f"{path}: was written for other data or settings ({detail}); use the same ones "
                         "to resume, or delete it to start over")
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

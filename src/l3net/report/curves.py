"""Training curves of a run, from its ``log.jsonl`` (read with :func:`l3net.fileio.read_jsonl`): loss
and accuracy against the pairs seen, split by phase (train / val), as the report shows them."""

from __future__ import annotations

import io
import math
from typing import Any, Sequence

from ..evaluate.result import new_figure

#: Keys that may carry the x axis of the training curves, in order of preference.
X_KEYS = ("pairs_seen", "pairs", "samples_seen", "samples", "examples", "step")
#: Keys that name which phase a log record belongs to ("train", "val", ...).
PHASE_KEYS = ("split", "phase", "kind", "event", "type", "mode")


def _series_name(record: dict[str, Any], key: str) -> str:
    """``train loss``, ``val accuracy``...: the record's phase before the key, unless the key has it."""
    name = key.replace("_", " ")
    for phase_key in PHASE_KEYS:
        phase = record.get(phase_key)
        if isinstance(phase, str) and phase and not key.startswith(phase):
            return f"{phase} {name}"
    return name


def curve_series(records: Sequence[dict[str, Any]]) -> tuple[str | None, dict[str, dict[str, list[tuple[float, float]]]]]:
    """``(x key, {"loss"|"accuracy": {series name: [(x, y), ...]}})`` from log records.

    The x axis is the first of :data:`X_KEYS` any record carries (pairs seen, preferably); a series
    is every numeric key whose name says loss or accuracy, split by the record's phase (train/val).
    ``l3net train`` writes ``{"event": "train", "pairs", "loss", "accuracy", ...}`` and
    ``{"event": "val", "pairs", "val_loss", "val_accuracy", ...}``.
    """
    x_key = next((k for k in X_KEYS if any(_is_number(r.get(k)) for r in records)), None)
    panels: dict[str, dict[str, list[tuple[float, float]]]] = {"loss": {}, "accuracy": {}}
    if x_key is None:
        return None, panels
    for record in records:
        x = record.get(x_key)
        if not _is_number(x):
            continue
        for key, value in record.items():
            if key == x_key or not _is_number(value):
                continue
            lowered = key.lower()
            panel = "loss" if "loss" in lowered else "accuracy" if "acc" in lowered else None
            if panel is None:
                continue
            panels[panel].setdefault(_series_name(record, key), []).append((float(x), float(value)))
    return x_key, panels


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def curves_png(records: Sequence[dict[str, Any]]) -> bytes | None:
    """Loss and accuracy against pairs seen as one PNG (None when the log has no such numbers)."""
    x_key, panels = curve_series(records)
    panels = {name: series for name, series in panels.items() if series}
    if not panels:
        return None
    fig = new_figure(5.5 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (name, series) in zip(axes[0], panels.items()):
        for label, points in sorted(series.items()):
            points.sort()
            xs, ys = zip(*points)
            style = "-" if len(points) > 1 else "o"
            ax.plot(xs, ys, style, label=label, linewidth=1.2, markersize=4)
        ax.set_xlabel(x_key.replace("_", " ") if x_key else "")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        if name == "accuracy":
            ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)  # AVC chance
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()

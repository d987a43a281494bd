"""What every protocol returns, and the one writer that puts it into a run directory's ``eval/``.

A protocol function computes and returns a :class:`Result` (a dataclass per protocol): no
arguments parsed, nothing printed or written. A result turns itself into the JSON schema of
docs/DESIGN.md ("Evaluation outputs") with :meth:`Result.to_json`, and into pictures with
:meth:`Result.figures`: :class:`FigureSpec` entries whose ``draw()`` builds a
``matplotlib.figure.Figure`` with the object API (never pyplot's global state, never a backend
switch). :func:`write_result` is the only code that writes them: PNGs first, then
``<protocol>.json`` naming them, each atomically. ``l3net report`` reads only these files.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import numpy as np

from .._version import __version__
from ..fileio import atomic_path, ensure_dir, write_json

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The folder of a run directory (or of ``--out``) that receives every result.
EVAL_DIRNAME = "eval"
#: Resolution of the PNGs (dots per inch).
FIGURE_DPI = 110


@dataclass
class FigureSpec:
    """A picture of a result: its file name in ``eval/``, its caption, and how to draw it."""

    name: str
    caption: str
    draw: Callable[[], "Figure"]


@dataclass
class Result:
    """The outcome of one protocol: tables (with the paper's numbers beside ours), notes, and
    machine-readable ``metrics``. Subclasses keep the data their pictures need (not written)."""

    protocol: ClassVar[str] = "result"

    title: str
    model: str
    dataset: str
    tables: list[dict[str, Any]]
    metrics: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    #: The protocol's settings (its frozen ``<Name>Config``) this result was computed with.
    config: Any = field(default=None, repr=False)

    def figures(self) -> list[FigureSpec]:
        """The pictures of this result (none by default)."""
        return []

    def to_json(self, figures: list[FigureSpec] | None = None) -> dict[str, Any]:
        """The result in the shared schema; ``figures`` are the pictures written beside it."""
        payload: dict[str, Any] = {
            "protocol": self.protocol,
            "title": self.title,
            "model": self.model,
            "dataset": self.dataset,
            "tables": self.tables,
            "figures": [{"path": f.name, "caption": f.caption} for f in (figures or [])],
            "metrics": self.metrics,
        }
        if self.notes:
            payload["notes"] = list(self.notes)
        return payload


def new_figure(width: float, height: float) -> "Figure":
    """A matplotlib Figure of ``width`` x ``height`` inches, not registered with pyplot."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def figure_png(figure: "Figure", dpi: int = FIGURE_DPI) -> bytes:
    """A Figure rendered as PNG bytes (Agg canvas of the Figure itself: no global backend)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=dpi, bbox_inches="tight", format="png")
    return buffer.getvalue()


def save_figure(figure: "Figure", path: str | os.PathLike[str], dpi: int = FIGURE_DPI) -> Path:
    """Save a Figure as PNG, atomically."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    return path


def write_payload(directory: str | os.PathLike[str], protocol: str, payload: dict[str, Any]) -> Path:
    """Write ``directory/<protocol>.json`` atomically, stamped with the time and l3net version."""
    data = {"protocol": protocol, **payload}
    data.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    data.setdefault("l3net_version", __version__)
    path = Path(directory) / f"{protocol}.json"
    write_json(path, data)
    return path


def write_result(directory: str | os.PathLike[str], result: Result, *, figures: bool = True) -> Path:
    """Render ``result`` into ``directory`` (an ``eval/`` folder): its PNGs, then its JSON. Returns
    the JSON's path."""
    directory = ensure_dir(directory)
    drawn = []
    if figures:
        for spec in result.figures():
            save_figure(spec.draw(), directory / spec.name)
            drawn.append(spec)
    return write_payload(directory, result.protocol, result.to_json(drawn))



def mean_spread(values: Sequence[float], seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """The mean and spread of a score over random draws (e.g. the random-weights row over weight
    seeds): ``{"mean", "std", "min", "max", "n", "values"[, "seeds"]}``; ``std`` is the population
    standard deviation (0 for one value). Values are in the score's own unit."""
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        raise ValueError("mean_spread needs at least one value")
    if seeds is not None and len(seeds) != data.size:
        raise ValueError(f"{data.size} values but {len(seeds)} seeds")
    stats: dict[str, Any] = {
        "mean": float(data.mean()),
        "std": float(data.std()),
        "min": float(data.min()),
        "max": float(data.max()),
        "n": int(data.size),
        "values": [float(v) for v in data],
    }
    if seeds is not None:
        stats["seeds"] = [int(s) for s in seeds]
    return stats


def spread_text(stats: dict[str, Any], digits: int = 3) -> str:
    """A table cell for :func:`mean_spread`'s dict: ``"0.404 ± 0.020 (3 seeds: 0.380-0.420)"``, or the
    plain value for one seed (``"0.404 (1 seed)"``)."""
    n = stats["n"]
    if n == 1:
        return f"{stats['mean']:.{digits}f} (1 seed)"
    return (f"{stats['mean']:.{digits}f} \u00b1 {stats['std']:.{digits}f} "
            f"({n} seeds: {stats['min']:.{digits}f}-{stats['max']:.{digits}f})")

"""``l3net eval localize``: the pointing game on videos whose sounding object has a known box.

For each frame, the heatmap of :mod:`l3net.heatmaps` (the fusion head at every conv4_2 location
with the audio embedding of the 1 s clip centred on the frame) scores a *hit* when its peak falls
inside the box of the object making the sound. Compared in the same run with the frame centre as
the "peak" (the baseline guess) and with random networks of the same architecture (the model's random
twins, :func:`l3net.modelspec.random_twins`): their mean and spread over several weight seeds.
Frames whose sounding object is off-screen or absent are left out and counted. The paper shows
localization only qualitatively (Figures 3-4); this is the quantitative check on the synthetic
world (``l3net synth``), whose boxes are known.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import DatasetError, InputError
from ..heatmaps import _colormap_lut, low_res_heatmaps, overlay, peak_location, upsample
from ..modelspec import DEFAULT_RANDOM_SEEDS, random_row_networks
from ..models import L3Net
from .boxes import Box, BoxedFrame, load_boxed_frames, visible_boxes  # noqa: F401 - the game's inputs
from .result import FigureSpec, Result, mean_spread, new_figure, spread_text

PROTOCOL = "localize"
TITLE = "Sound localization: pointing game"
EXAMPLES_FIGURE = "localize_examples.png"
CENTRE_ROW = "centre guess (baseline)"
RANDOM_ROW = "random weights (same architecture)"


# ------------------------------------------------------------------------------------------------
# the pointing game
# ------------------------------------------------------------------------------------------------
def point_in_boxes(point: tuple[float, float], boxes: Iterable[Box], tolerance: float = 0.0) -> bool:
    """Whether ``(x, y)`` lies inside (edges included) any box grown by ``tolerance`` pixels."""
    x, y = point
    return any(
        b[0] - tolerance <= x <= b[2] + tolerance and b[1] - tolerance <= y <= b[3] + tolerance for b in boxes
    )


def pointing_game(
    peaks: Sequence[tuple[float, float]], boxes: Sequence[Sequence[Box]], tolerance: float = 0.0
) -> np.ndarray:
    """Hits of the pointing game: one bool per frame, True when its peak is inside one of its boxes.

    ``peaks[i]`` is ``(x, y)`` in pixels; ``boxes[i]`` the sounding object's box(es) in frame ``i``
    as ``(x0, y0, x1, y1)`` pixels. Frames without a box must be left out by the caller (a miss and
    "nothing to find" are different things). ``tolerance`` (pixels) grows each box; the default 0
    asks for a strict hit.
    """
    if len(peaks) != len(boxes):
        raise InputError(f"{len(peaks)} peaks but {len(boxes)} box lists")
    return np.array([point_in_boxes(p, b, tolerance) for p, b in zip(peaks, boxes)], dtype=bool)


def centre_guess(height: int, width: int) -> tuple[float, float]:
    """The baseline's "peak": the centre of a ``height`` x ``width`` frame, ``(x, y)`` in pixels."""
    return width / 2.0, height / 2.0


def pointing_scores(
    model: L3Net,
    examples: Sequence[BoxedFrame],
    *,
    batch_size: int = 16,
    precision: str = "fp32",
    tolerance: float = 0.0,
    progress: bool = True,
    desc: str = "pointing game",
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Hits, peaks ``(N, 2)`` and low-resolution maps of ``model`` on boxed frames.

    Frames may differ in size: each batch groups frames of one size.
    """
    hits = np.zeros(len(examples), dtype=bool)
    peaks = np.zeros((len(examples), 2))
    maps: list[np.ndarray] = [np.zeros(0)] * len(examples)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, ex in enumerate(examples):
        by_size.setdefault(ex.frame.shape[:2], []).append(i)
    with tqdm(total=len(examples), desc=desc, unit="frame", disable=not progress, file=sys.stderr) as bar:
        for (height, width), indices in by_size.items():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                frames = np.stack([examples[i].frame for i in chunk])
                clips = np.stack([examples[i].clip(model.config.clip_samples) for i in chunk])
                low = low_res_heatmaps(model, frames, clips, batch_size=batch_size, precision=precision)
                full = upsample(low, height, width)
                for i, small, heat in zip(chunk, low, full):
                    peaks[i] = peak_location(heat)
                    maps[i] = small
                    hits[i] = point_in_boxes(tuple(peaks[i]), examples[i].boxes, tolerance)
                bar.update(len(chunk))
    return hits, peaks, maps


# -- the protocol ----------------------------------------------------------------------------------
def wilson_interval(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95 % (by default) Wilson score interval of a proportion ``hits / total``."""
    if total <= 0:
        return 0.0, 1.0
    p = hits / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def examples_figure(
    examples: Sequence[BoxedFrame],
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, list[np.ndarray]]],
    count: int,
) -> Any:
    """Frames with their box, then each method's heatmap, peak and hit/miss, for ``count`` examples."""
    from matplotlib.patches import Rectangle

    chosen = np.unique(np.linspace(0, len(examples) - 1, min(count, len(examples))).round().astype(int))
    columns = 1 + len(rows)
    fig = new_figure(2.6 * columns, 2.3 * len(chosen))
    axes = fig.subplots(len(chosen), columns, squeeze=False)
    lut = _colormap_lut()
    for r, index in enumerate(chosen):
        ex = examples[index]
        height, width = ex.frame.shape[:2]
        centre = centre_guess(height, width)
        panels: list[tuple[np.ndarray, str, tuple[float, float] | None, bool | None]] = [
            (ex.frame, f"{ex.key[:10]} t={ex.time:.2f}s" + (f"\n{ex.label}" if ex.label else ""), centre, None)
        ]
        for name, hits, peaks, maps in rows:
            heat = upsample(maps[index][None], height, width)[0]
            panels.append((overlay(ex.frame, heat, lut=lut), name, tuple(peaks[index]), bool(hits[index])))
        for c, (image, title, point, hit) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(image)
            for x0, y0, x1, y1 in ex.boxes:
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="lime", linewidth=1.5))
            if point is not None:
                marker = "x" if hit is None else "o"
                ax.plot([point[0]], [point[1]], marker=marker, markersize=9, markeredgewidth=2,
                        markerfacecolor="none", color="white" if hit is None else ("lime" if hit else "red"))
            if hit is not None:
                title += "\nhit" if hit else "\nmiss"
            elif r == 0:
                title += "\n(box; x = centre guess)"
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.suptitle("Pointing game: green box = sounding object; circle = heatmap peak (green hit, red miss)", fontsize=8)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class LocalizeConfig:
    """Settings of :func:`evaluate_localization`."""

    #: Grow each box by this many pixels (>= 0; 0: a strict hit).
    tolerance: float = 0.0
    #: Frames per forward pass.
    batch_size: int = 16
    #: Numeric precision of the forward pass (runtime.PRECISIONS).
    precision: str = "fp32"
    #: Seed of the random twins (:func:`l3net.modelspec.random_twins`; the model's own seed when it is random).
    seed: int = 0
    #: Random networks averaged in the random-weights row (weights from ``seed + 1000 + i``, or ``seed + i``
    #: when the model is random itself); each costs one more pass over the frames.
    random_seeds: int = DEFAULT_RANDOM_SEEDS
    #: Examples drawn in the figure (0: none).
    figure_examples: int = 6
    #: Show tqdm progress bars.
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.tolerance >= 0:
            raise InputError(f"tolerance must be >= 0, got {self.tolerance}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.random_seeds < 1:
            raise InputError(f"random_seeds must be at least 1, got {self.random_seeds}")


@dataclass
class LocalizeResult(Result):
    """The pointing game: ``metrics["accuracy"]`` = ``{"model", "centre_guess", "random_weights"}``
    (hits / frames scored). ``rows`` keep each method's hits, peaks and maps for the example figure."""

    protocol = PROTOCOL
    examples: Sequence[BoxedFrame] = field(default_factory=list, repr=False)
    rows: list[tuple[str, np.ndarray, np.ndarray, list[np.ndarray]]] = field(default_factory=list, repr=False)
    figure_examples: int = 6

    def figures(self) -> list[FigureSpec]:
        if self.figure_examples <= 0 or not self.examples:
            return []
        return [FigureSpec(EXAMPLES_FIGURE, "Examples (evenly spaced, not chosen): frame with the sounding object's "
                           "box, then each method's heatmap and peak",
                           lambda: examples_figure(self.examples, self.rows, self.figure_examples))]


def evaluate_localization(
    model: L3Net,
    examples: Sequence[BoxedFrame],
    counts: dict[str, Any],
    config: LocalizeConfig | None = None,
    *,
    model_name: str = "L3-Net (ours)",
    untrained: bool = False,
    random_model: L3Net | None = None,
    dataset: str = "",
    split: str | None = None,
    fps: float | None = None,
) -> LocalizeResult:
    """The pointing game of ``model`` on boxed frames (and their ``counts``, from :func:`load_boxed_frames`),
    beside the centre guess and the random-weights row: the mean and spread over ``config.random_seeds``
    random twins (:func:`l3net.modelspec.random_twins`), or ``random_model`` alone when given. When
    ``untrained`` (``model`` has random weights from ``config.seed``), the model's own row is that mean:
    ``model`` and networks from ``seed + 1``, ``seed + 2``, ...

    ``config.tolerance`` (pixels) grows each box. ``dataset``, ``split`` and ``fps`` say where the frames
    came from (recorded in the result). Raises :class:`DatasetError` when there is no frame to score.

    The recipe: score the networks (:func:`_score_networks`) and the centre guess, then the table
    (:func:`_table_rows`) and the metrics.
    """
    config = config or LocalizeConfig()
    if not examples:
        raise DatasetError(
            f"{dataset or 'the data'}: no frame has a visible sounding object ({counts['videos']} videos, "
            f"{counts['videos_without_boxes']} without boxes, {len(counts['unreadable'])} unreadable, "
            f"{counts['no_visible_source']} frames whose source is absent or off-screen); the pointing game "
            "needs ground-truth boxes, as 'l3net synth' makes"
        )
    random_name = model_name if untrained else RANDOM_ROW
    rows, random_hits, weight_seeds = _score_networks(model, examples, config, model_name=model_name,
                                                      random_name=random_name, untrained=untrained,
                                                      random_model=random_model)
    spread = mean_spread([float(h.mean()) for h in random_hits], weight_seeds or None)
    described = f"weights seeds {', '.join(map(str, weight_seeds))}" if weight_seeds else "the network given"
    notes = [f"random-weights row: mean \u00b1 std (min-max) over {spread['n']} random network(s) ({described})"]
    if untrained:
        notes.append("the model has random weights itself: its row is the random-weights row, the model being the "
                     "first of its networks")
    centres = [centre_guess(*ex.frame.shape[:2]) for ex in examples]
    centre_hits = pointing_game(centres, [ex.boxes for ex in examples], config.tolerance)
    n = len(examples)
    model_hits = None if untrained else rows[0][1]
    table_rows = _table_rows(model_hits, random_hits, centre_hits, spread, model_name=model_name,
                             random_name=random_name)
    metrics = {
        "accuracy": {
            "model": float(random_hits[0].mean()) if model_hits is None else int(model_hits.sum()) / n,
            "centre_guess": float(centre_hits.mean()),
            "random_weights": spread["mean"],
        },
        "random_weights": spread,
        **_frames_metrics(counts, n, config.tolerance, split=split, fps=fps),
    }
    excluded = counts["no_visible_source"] + counts["box_outside_frame"]
    return LocalizeResult(
        title=TITLE, model=model_name,
        dataset=f"{dataset} ({split} split)" if counts["source"] == "shards" else str(dataset),
        tables=[{
            "title": f"Pointing game on {n} frames ({excluded} without a visible sounding object left out); "
            "the paper shows localization only qualitatively",
            "columns": ["method", "pointing-game accuracy", "95% interval", "hits"],
            "rows": table_rows,
        }],
        metrics=metrics, notes=notes, config=config, examples=examples, rows=rows,
        figure_examples=config.figure_examples,
    )


def _score_networks(
    model: L3Net, examples: Sequence[BoxedFrame], config: LocalizeConfig, *, model_name: str, random_name: str,
    untrained: bool, random_model: L3Net | None,
) -> tuple[list[tuple[Any, ...]], list[np.ndarray], list[int]]:
    """The pointing game of the model (unless ``untrained``) and of the random networks, one in memory
    at a time. Returns the rows drawn in the figure (name, hits, peaks, maps: the model's and the first
    random network's), every random network's hits, and their weight seeds."""
    common = {"batch_size": config.batch_size, "precision": config.precision, "tolerance": config.tolerance,
              "progress": config.progress}
    rows = []
    if not untrained:
        rows.append((model_name, *pointing_scores(model, examples, desc=f"pointing game ({model_name})", **common)))
    networks = random_row_networks(model, config.seed, config.random_seeds, untrained=untrained, given=random_model)
    random_hits: list[np.ndarray] = []
    weight_seeds: list[int] = []
    for weight_seed, network in networks:
        scored = pointing_scores(network, examples, desc="pointing game (random weights"
                                 + ("" if weight_seed is None else f", seed {weight_seed}") + ")", **common)
        if not random_hits:
            rows.append((random_name, *scored))  # the first random network is drawn
        random_hits.append(scored[0])
        if weight_seed is not None:
            weight_seeds.append(weight_seed)
    return rows, random_hits, weight_seeds


def _table_rows(
    model_hits: np.ndarray | None, random_hits: list[np.ndarray], centre_hits: np.ndarray, spread: dict[str, Any], *,
    model_name: str, random_name: str,
) -> list[list[Any]]:
    """The table's rows: the model (with a 95 % Wilson interval; none when it is the random row), the
    random networks' mean, the centre guess."""
    n = len(centre_hits)
    rows = []
    if model_hits is not None:
        k = int(model_hits.sum())
        low, high = wilson_interval(k, n)
        rows.append([model_name, round(k / n, 4), f"{low:.3f}-{high:.3f}", f"{k}/{n}"])
    # No interval for the mean: its spread over networks is in the cell, its networks' hits beside it.
    hits = ", ".join(f"{int(h.sum())}/{n}" for h in random_hits)
    rows.append([random_name, spread_text(spread, digits=4), None, hits])
    k = int(centre_hits.sum())
    low, high = wilson_interval(k, n)
    rows.append([CENTRE_ROW, round(k / n, 4), f"{low:.3f}-{high:.3f}", f"{k}/{n}"])
    return rows


def _frames_metrics(
    counts: dict[str, Any], n: int, tolerance: float, *, split: str | None, fps: float | None
) -> dict[str, Any]:
    """The metrics that say which frames were scored, which were left out and why, and the heatmap."""
    return {
        "frames_scored": n,
        "frames_excluded": {
            "no_visible_source": counts["no_visible_source"],
            "box_outside_frame": counts["box_outside_frame"],
            "reason": "the pointing game needs the sounding object in the picture: frames whose sound source is "
            "absent or off-screen (a null box) or whose box lies outside the frame are left out",
        },
        "videos": counts["videos"],
        "videos_without_boxes": counts["videos_without_boxes"],
        "unreadable": counts["unreadable"],
        "tolerance_px": tolerance,
        "source": counts["source"],
        "split": split if counts["source"] == "shards" else None,
        "fps": fps if counts["source"] == "videos" else None,
        "heatmap": "softmax(fuse(conv4_2 vector at each location, pool4 audio embedding of the 1 s clip "
        "centred on the frame))[corresponds], upsampled bilinearly; peak = its maximum",
    }

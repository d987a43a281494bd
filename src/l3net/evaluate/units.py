"""``l3net eval units``: what each pool4 unit prefers (Section 3.5.3, Figures 3-9).

Protocol (PAPER_SPEC 5.4): for each unit of pool4 (the embedding), rank the test inputs by its
activation and keep the top 5 (frames for the vision tower, 1 s clips for the audio tower). On
labelled shards, a class "has" a high-preference unit when, for some unit, at least ``threshold``
of its top 5 inputs are of that class; the number of such classes is counted at thresholds 4 and
3, for the trained network and for the same architecture with random weights, computed in the same
run. Unlabelled shards (the paper's Flickr-SoundNet figures) give the rankings and the pictures
only: the counts, and the random network they compare with, need labels.

Several frames per video (``--per-video``): a unit's top 5 holds at most one input per video, its
best one, so near-identical frames of one video cannot fill it. Ties: a unit whose activation is the same for every input (a dead ReLU unit, common in a random
network) prefers nothing and is left out; other ties are broken by a seeded random order, never by
the order of the inputs (which could follow the classes).

Pictures: for a few units (with labels, those with the purest top 5; without, those that fire
hardest), their top frames with the unit's heatmap, which is channel k of the last conv layer
(conv4_2, after ReLU) over the input: pool4 unit k is the maximum of that channel, so the map shows
where the unit fires (Figures 3-6 and 8); their top spectrograms (the model's own front end output,
time x frequency) with theirs (Figure 9); and, for the audio units, the video frame of each top
clip above that clip's spectrogram and heatmap (Figure 7). Overlays are drawn by
:func:`l3net.heatmaps.overlay` and upsampled by :func:`l3net.heatmaps.upsample`, as ``l3net localize``'s.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..data.shards import ShardSet
from ..errors import InputError
from ..heatmaps import overlay, upsample
from ..media import resize_smaller_side
from ..modelspec import random_twin
from ..models import MODALITIES, L3Net
from . import paper
from .features import audio_features, image_features, prepare_image
from .inputs import Item, embed_items, label_array, open_shards, pick_items, read_clip, read_image
from .result import FigureSpec, Result, new_figure

PROTOCOL = "units"
TITLE = "High-preference units of pool4 (Section 3.5.3, Figures 3-4 and 9)"
#: Units shown in each picture grid by default.
FIGURE_UNITS = 6


@dataclass(frozen=True)
class UnitsConfig:
    """Settings of :func:`evaluate_units` (defaults: the paper's Section 3.5.3)."""

    #: Shard split whose inputs are ranked.
    split: str = "test"
    #: Frames (and centred 1 s clips) per video.
    per_video: int = 1
    #: Rank only inputs of these classes (None: all).
    classes: tuple[str, ...] | None = None
    #: Units drawn in each picture grid (0: no grids).
    figure_units: int = FIGURE_UNITS
    #: Inputs per forward pass.
    batch_size: int = 32
    #: "cpu", "cuda", "cuda:N", "auto", or None for the model's own device.
    device: str | None = None
    #: Numeric precision of the forward pass (runtime.PRECISIONS).
    precision: str = "fp32"
    #: Seed of tie-breaking in the rankings and of the random twin.
    seed: int = 0
    #: Show tqdm progress bars.
    progress: bool = True

    def __post_init__(self) -> None:
        if self.figure_units < 0 or self.per_video < 1 or self.batch_size < 1:
            raise InputError(f"figure_units must be 0 or more, per_video and batch_size at least 1 "
                             f"(got {self.figure_units}, {self.per_video} and {self.batch_size})")


# ------------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------------
def top_inputs(
    activations: np.ndarray,
    k: int = paper.UNIT_TOP_K,
    *,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` inputs each unit responds to most.

    ``activations``: ``(N inputs, U units)``. ``groups`` (optional, one per input, e.g. the video
    each frame comes from): at most one input per group enters a unit's top ``k`` (its best one),
    so near-identical frames of one video cannot fill a unit's top 5. Returns ``(top, alive)``:
    ``top`` ``(U, k)`` input indices, highest activation first (ties in a seeded random order);
    ``alive`` ``(U,)`` False for units whose activation is the same for every input.
    """
    acts = np.asarray(activations, dtype=np.float64)
    if acts.ndim != 2:
        raise InputError(f"activations must be (inputs, units), got shape {acts.shape}")
    n, units = acts.shape
    group_ids = None if groups is None else np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)[1]
    distinct = n if group_ids is None else int(group_ids.max()) + 1
    if distinct < k:
        what = "inputs" if group_ids is None else "distinct videos"
        raise InputError(f"ranking the top {k} inputs of a unit needs at least {k} {what}, got {distinct}")
    if not np.isfinite(acts).all():
        raise InputError("activations contain NaN or infinite values")
    tiebreak = np.random.default_rng(seed).permutation(n)
    top = np.empty((units, k), dtype=np.int64)
    for u in range(units):
        # lexsort: the last key is the primary one (descending activation), the random rank breaks ties.
        order = np.lexsort((tiebreak, -acts[:, u]))
        if group_ids is not None:
            _, first = np.unique(group_ids[order], return_index=True)  # each group's best position
            order = order[np.sort(first)]
        top[u] = order[:k]
    alive = acts.max(axis=0) > acts.min(axis=0)
    return top, alive


def unit_preferences(top: np.ndarray, labels: Sequence[Any], alive: np.ndarray | None = None) -> list[tuple[Any, int] | None]:
    """Per unit, its top inputs' most common class and how many of them have it (None: dead unit).

    Ties between classes go to the class of the higher-ranked input.
    """
    labels = np.asarray(labels, dtype=object)
    prefs: list[tuple[Any, int] | None] = []
    for u, row in enumerate(top):
        if alive is not None and not alive[u]:
            prefs.append(None)
            continue
        counts = Counter(labels[row])
        best = max(counts.values())
        winner = next(c for c in labels[row] if counts[c] == best)
        prefs.append((winner, best))
    return prefs


def classes_with_unit(
    top: np.ndarray, labels: Sequence[Any], threshold: int, alive: np.ndarray | None = None
) -> list[Any]:
    """Sorted classes that have a unit with at least ``threshold`` of its top inputs of that class."""
    if threshold < 1 or threshold > top.shape[1]:
        raise InputError(f"threshold must be between 1 and {top.shape[1]}, got {threshold}")
    labels = np.asarray(labels, dtype=object)
    found = set()
    for u, row in enumerate(top):
        if alive is not None and not alive[u]:
            continue
        for cls, count in Counter(labels[row]).items():
            if count >= threshold:
                found.add(cls)
    return sorted(found)


def select_units(
    top: np.ndarray, labels: Sequence[Any] | None, alive: np.ndarray, activations: np.ndarray, count: int
) -> list[int]:
    """``count`` units to draw: the purest top 5 first, preferring distinct classes, then by activation.

    Without ``labels`` (unlabelled shards): the living units whose best input fires them hardest."""
    strength = np.asarray(activations)[top[:, 0], np.arange(top.shape[0])]
    if labels is None:
        living = [u for u in range(top.shape[0]) if alive[u]]
        return sorted(living, key=lambda u: (-strength[u], u))[:count]
    prefs = unit_preferences(top, labels, alive)
    candidates = [u for u, p in enumerate(prefs) if p is not None]
    candidates.sort(key=lambda u: (-prefs[u][1], -strength[u], u))
    chosen, seen = [], set()
    for u in candidates:  # one unit per class first, so the grid shows several classes
        if prefs[u][0] not in seen:
            chosen.append(u)
            seen.add(prefs[u][0])
        if len(chosen) == count:
            return chosen
    chosen += [u for u in candidates if u not in chosen][: count - len(chosen)]
    return chosen


# ------------------------------------------------------------------------------------------------
# the protocol
# ------------------------------------------------------------------------------------------------
def evaluate_units(
    model: L3Net,
    shards_dir: str | os.PathLike[str] | ShardSet,
    config: UnitsConfig | None = None,
    *,
    random_model: L3Net | None = None,
    model_name: str = "L3-Net (ours)",
) -> "UnitsResult":
    """Section 3.5.3 on a shard split: each pool4 unit's top inputs, pictures, and (with labels) the
    classes with a high-preference unit, trained vs random.

    ``result.metrics["units"][modality]`` lists every unit's top inputs (indices into
    ``metrics["inputs"]``, highest first) and their activations; ``result.grids`` the top inputs
    and heatmaps of ``config.figure_units`` units per tower (Figures 3-6, 8 and 9) and, for the audio
    units, their clips' video frames (Figure 7). On labelled shards,
    ``result.metrics["classes_with_unit"][threshold][network][modality]`` holds the counts
    (threshold "4" and "3", network "trained" and "random"); unlabelled shards have no counts (a
    note says so). ``random_model``: the untrained network (default: ``model``'s random twin; used
    only with labels); ``model_name`` labels the model's row.
    """
    config = config or UnitsConfig()
    split, per_video, classes, figure_units = config.split, config.per_video, config.classes, config.figure_units
    batch_size, device, precision, seed, progress = (config.batch_size, config.device, config.precision, config.seed,
                                                     config.progress)
    shards = open_shards(shards_dir)
    labelled = bool(shards.classes)
    if classes and not labelled:
        raise InputError(f"{shards.root}: choosing classes needs class labels, but these shards have none "
                         "(dataset.json 'classes' is null)")
    items = pick_items(shards, split, model.config, per_video=per_video, classes=classes, labelled=labelled,
                       what="the unit analysis")
    labels = label_array(items) if labelled else None
    videos = [item.key for item in items]
    k = paper.UNIT_TOP_K
    if len(set(videos)) < k:
        raise InputError(f"{shards.root}: the {split!r} split has {len(set(videos))} usable videos; ranking a unit's "
                         f"top {k} needs at least {k}")
    common = dict(batch_size=batch_size, device=device, precision=precision, progress=progress)
    networks = {"trained": (model, embed_items(model, shards, items, label="trained", **common))}
    if labelled:  # the random row is a reference for the class counts, which need labels
        if random_model is None:
            random_model = random_twin(model, seed)
        networks["random"] = (random_model, embed_items(random_model, shards, items, label="random weights", **common))
    ranking: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for network, (_, embeddings) in networks.items():
        ranking[network] = {m: top_inputs(embeddings[m], k, seed=seed, groups=videos) for m in MODALITIES}

    units_out: dict[str, Any] = {}
    for modality in MODALITIES:
        top, alive = ranking["trained"][modality]
        acts = networks["trained"][1][modality]
        prefs = unit_preferences(top, labels, alive) if labelled else [None] * len(top)
        units_out[modality] = [
            {"unit": u, "top": top[u].tolist(), "activations": [round(float(acts[i, u]), 6) for i in top[u]],
             "alive": bool(alive[u]), "class": None if p is None else str(p[0]), "count": 0 if p is None else p[1]}
            for u, p in enumerate(prefs)
        ]
    dead = {n: {m: int((~ranking[n][m][1]).sum()) for m in MODALITIES} for n in networks}
    tables: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    if labelled:
        counts, found, unit_counts = _class_counts(ranking, labels)
        present = sorted(set(labels))
        rows = []
        for threshold in paper.UNIT_CLASSES:
            for network in ("random", "trained"):
                ref = paper.UNIT_CLASSES[threshold][network]
                shown = model_name if network == "trained" else "random weights (same architecture)"
                ours = counts[str(threshold)][network]
                rows.append([f">= {threshold} of top {k}", shown, ours["vision"], ours["audio"], ref["vision"], ref["audio"]])
        tables.append({
            "title": "Classes with a high-preference pool4 unit",
            "columns": ["threshold", "network", "vision", "audio", "paper vision", "paper audio"],
            "rows": rows,
        })
        notes = [
            f"{len(items)} {split} inputs ({per_video} per video) of {len(present)} classes, split {split!r}; "
            f"{model.config.embedding_dim} pool4 units per tower. The paper: Kinetics-Sounds, 34 classes, 512 units.",
            f"Units with >= {max(paper.UNIT_CLASSES)} of their top {k} in one class (finer than the class count when "
            "there are few classes): " + ", ".join(
                f"{n} {m} {unit_counts[str(max(paper.UNIT_CLASSES))][n][m]}" for n in networks for m in MODALITIES) + ".",
        ]
        metrics.update({
            "classes_with_unit": counts,
            "classes_found": found,
            # Finer than the class count when there are few classes: how many units qualify.
            "units_with_high_preference": unit_counts,
            "num_classes": len(present),
            "classes": present,
        })
    else:
        notes = [
            f"{len(items)} {split} inputs ({per_video} per video) of {len(set(videos))} videos, split {split!r}; "
            f"{model.config.embedding_dim} pool4 units per tower.",
            "These shards carry no class labels (as the paper's Flickr-SoundNet): each unit's top inputs and "
            "heatmaps are shown, but the classes with a high-preference unit (Section 3.5.3) and the random-weights "
            "network they are compared with need labels and are not computed. Prepare with --labels for them.",
        ]
    notes.append("Units whose activation is the same for every input rank nothing and are left out: "
                 + ", ".join(f"{n} {m} {dead[n][m]}" for n in networks for m in MODALITIES) + ".")
    grids = []
    for modality in MODALITIES if figure_units > 0 else ():
        top, alive = ranking["trained"][modality]
        units = select_units(top, labels, alive, networks["trained"][1][modality], figure_units)
        if units:
            grids.append(unit_grid(model, shards, items, modality, units, top, labels, batch_size=batch_size,
                                   device=device, precision=precision))
    metrics.update({
        "labelled": labelled,
        "dead_units": dead,
        "num_inputs": len(items),
        "num_videos": len(set(videos)),
        "split": split,
        "per_video": per_video,
        "inputs": [item.describe() for item in items],
        "units": units_out,
    })
    return UnitsResult(
        title=TITLE, model=model_name, dataset=str(shards.root), tables=tables, notes=notes, metrics=metrics,
        config=config, grids=grids,
    )


def _class_counts(
    ranking: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], labels: np.ndarray,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Per threshold, network and tower: classes with a high-preference unit (count, names) and
    units that qualify."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    unit_counts: dict[str, dict[str, dict[str, int]]] = {}
    found: dict[str, dict[str, dict[str, list[str]]]] = {}
    for threshold in paper.UNIT_CLASSES:
        key = str(threshold)
        counts[key], found[key], unit_counts[key] = {}, {}, {}
        for network in ranking:
            counts[key][network], found[key][network], unit_counts[key][network] = {}, {}, {}
            for modality in MODALITIES:
                top, alive = ranking[network][modality]
                names = classes_with_unit(top, labels, threshold, alive)
                counts[key][network][modality] = len(names)
                found[key][network][modality] = [str(c) for c in names]
                prefs = unit_preferences(top, labels, alive)
                unit_counts[key][network][modality] = sum(1 for p in prefs if p is not None and p[1] >= threshold)
    return counts, found, unit_counts


@dataclass
class UnitGrid:
    """What a picture grid shows: ``units`` (rows) x their top inputs (columns), each input's picture
    (frame as the tower saw it, or spectrogram), the unit's heatmap over it, and its caption (class,
    or video when unlabelled). For the audio tower, ``frames`` holds the video frame of each clip
    (the frame the clip is centred on), cell for cell: Figure 7."""

    modality: str
    units: list[int]
    pictures: list[np.ndarray]  # row-major, len(units) * k
    heatmaps: np.ndarray  # (len(units) * k, H, W) in [0, 1]
    labels: list[Any]  # caption of each picture: its class, or its video's key without labels
    purity: list[tuple[Any, int] | None]  # per unit: its top inputs' main class and how many have it (None: no labels)
    k: int
    clip_seconds: float
    max_khz: float
    inputs: list[int] = field(default_factory=list)  # index (into the ranked inputs) of each picture
    frames: list[np.ndarray] | None = None  # audio grids: the video frame of each clip, uint8 H x W x 3


@dataclass
class UnitsResult(Result):
    """Section 3.5.3's counts, and the unit grids of Figures 3-4 and 9."""

    protocol = PROTOCOL
    grids: list[UnitGrid] = field(default_factory=list, repr=False)

    def figures(self) -> list[FigureSpec]:
        specs = []
        if "classes_with_unit" in self.metrics:  # labelled shards only
            specs.append(FigureSpec("units_counts.png",
                                    "Classes with a high-preference unit, trained vs random weights, ours beside the paper's",
                                    lambda: counts_figure(self.metrics["classes_with_unit"])))
        for grid in self.grids:
            what = ("Top 5 test frames of selected pool4 units with the unit's conv4_2 heatmap (Figures 3-6 and 8)"
                    if grid.modality == "vision" else
                    "Top 5 test spectrograms (time x frequency) of selected pool4 units with the unit's heatmap (Figure 9)")
            specs.append(FigureSpec(f"units_{grid.modality}.png", what, lambda grid=grid: grid_figure(grid)))
            if grid.frames is not None:
                specs.append(FigureSpec(
                    f"units_{grid.modality}_frames.png",
                    "Audio units shown as the video frames of their top 5 clips, each above that clip's spectrogram "
                    "with the unit's conv4_2 heatmap (Figure 7)",
                    lambda grid=grid: frames_figure(grid)))
        return specs


# ------------------------------------------------------------------------------------------------
# pictures
# ------------------------------------------------------------------------------------------------
def unit_heatmaps(
    model: L3Net,
    modality: str,
    inputs: Sequence[np.ndarray],
    units: Sequence[int],
    size: tuple[int, int],
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> np.ndarray:
    """Channel ``units[i]`` of the last conv layer (after ReLU) for ``inputs[i]``, upsampled to ``size``
    (H, W) and scaled to [0, 1] per map: ``(len(inputs), H, W)``."""
    extract = image_features if modality == "vision" else audio_features
    maps = extract(model, list(inputs), kind=model.tower(modality).last_conv, batch_size=batch_size, device=device,
                   precision=precision, progress=False)
    up = upsample(maps[np.arange(len(units)), np.asarray(units)], *size)
    peak = up.reshape(len(up), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(peak > 0, up / np.maximum(peak, 1e-12), 0.0)


def spectrograms(model: L3Net, clips: np.ndarray) -> np.ndarray:
    """The model's own front end output for clips ``(N, samples)``: ``(N, bins, frames)``."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        return model.frontend(torch.from_numpy(np.asarray(clips, np.float32)).to(device))[:, 0].float().cpu().numpy()


def unit_grid(
    model: L3Net, shards: ShardSet, items: Sequence[Item], modality: str, units: Sequence[int],
    top: np.ndarray, labels: np.ndarray | None, *, batch_size: int, device: Any, precision: str,
) -> UnitGrid:
    """The pictures and heatmaps of ``units``' top inputs (re-read from the shards); ``labels`` None
    for unlabelled shards (captions are then the videos' keys). Audio grids also carry each clip's
    video frame, smaller side ``image_resize``, uncropped."""
    config = model.config
    k = top.shape[1]
    flat_units = [u for u in units for _ in range(k)]
    indices = [int(i) for u in units for i in top[u]]
    chosen = [items[i] for i in indices]
    frames = None
    if modality == "vision":
        raw = [read_image(shards, item, config) for item in chosen]
        pictures = [prepare_image(img, config, transfer=False) for img in raw]  # exactly what the tower saw
        size = pictures[0].shape[:2]
        heat = unit_heatmaps(model, modality, raw, flat_units, size, batch_size=batch_size, device=device, precision=precision)
    else:
        clips = np.stack([read_clip(shards, item, config) for item in chosen])
        pictures = list(spectrograms(model, clips))
        size = pictures[0].shape
        heat = unit_heatmaps(model, modality, clips, flat_units, size, batch_size=batch_size, device=device, precision=precision)
        frames = [resize_smaller_side(read_image(shards, item, config), config.image_resize) for item in chosen]
    if labels is None:
        purity: list[tuple[Any, int] | None] = [None] * len(units)
        captions: list[Any] = [item.key for item in chosen]
    else:
        purity = [Counter(labels[top[u]]).most_common(1)[0] for u in units]
        captions = [item.label for item in chosen]
    return UnitGrid(modality, list(units), pictures, heat, captions, purity, k,
                    config.clip_seconds, config.spectrogram.sample_rate / 2 / 1000, inputs=indices, frames=frames)


def _unit_caption(grid: UnitGrid, row: int) -> str:
    purity = grid.purity[row]
    if purity is None:
        return f"unit {grid.units[row]}"
    return f"unit {grid.units[row]}\n{purity[0]} ({purity[1]}/{grid.k})"


def _spectrogram_cell(ax: Any, grid: UnitGrid, cell: int, *, first: bool) -> None:
    """A spectrogram (frequency up, time across: the front end's (bins, frames) from 0 Hz to
    Nyquist) with the unit's heatmap over it."""
    extent = (0, grid.clip_seconds, 0, grid.max_khz)
    ax.imshow(grid.pictures[cell], origin="lower", aspect="auto", cmap="gray", extent=extent)
    ax.imshow(grid.heatmaps[cell], origin="lower", aspect="auto", cmap="jet", alpha=0.4, vmin=0, vmax=1, extent=extent)
    if first:
        ax.set_ylabel("kHz", fontsize=7)
    ax.tick_params(labelsize=6)


def grid_figure(grid: UnitGrid) -> Any:
    """Figures 3-4 (frames) or 9 (spectrograms): a row per unit, its top inputs with its heatmap."""
    k, modality = grid.k, grid.modality
    fig = new_figure(2.0 * k, 2.1 * len(grid.units))
    axes = fig.subplots(len(grid.units), k, squeeze=False)
    cell = 0
    for row, u in enumerate(grid.units):
        for col in range(k):
            ax = axes[row][col]
            if modality == "vision":
                ax.imshow(overlay(grid.pictures[cell], grid.heatmaps[cell], scale="absolute"))
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                _spectrogram_cell(ax, grid, cell, first=col == 0)
            ax.set_title(f"{grid.labels[cell]}", fontsize=7)
            cell += 1
        axes[row][0].annotate(
            _unit_caption(grid, row), xy=(-0.15 if modality == "vision" else -0.3, 0.5),
            xycoords="axes fraction", ha="right", va="center", fontsize=8,
        )
    name = "Figures 3-6, 8" if modality == "vision" else "Figure 9 (time x frequency)"
    fig.suptitle(f"{modality}: top {k} test inputs of selected pool4 units, with conv4_2 heatmaps ({name})", fontsize=10)
    fig.tight_layout()
    return fig


def frames_figure(grid: UnitGrid) -> Any:
    """Figure 7: per audio unit, the video frames of its top clips (upper row) above each clip's
    spectrogram with the unit's heatmap (lower row), column for column the same clip."""
    if grid.frames is None:
        raise InputError("this grid carries no video frames (only audio grids do)")
    k = grid.k
    fig = new_figure(2.0 * k, 3.6 * len(grid.units))
    axes = fig.subplots(2 * len(grid.units), k, squeeze=False)
    for row in range(len(grid.units)):
        for col in range(k):
            cell = row * k + col
            picture, spectrum = axes[2 * row][col], axes[2 * row + 1][col]
            picture.imshow(grid.frames[cell])
            picture.set_xticks([])
            picture.set_yticks([])
            picture.set_title(f"{grid.labels[cell]}", fontsize=7)
            _spectrogram_cell(spectrum, grid, cell, first=col == 0)
        axes[2 * row][0].annotate(_unit_caption(grid, row), xy=(-0.15, 0.0), xycoords="axes fraction", ha="right",
                                  va="center", fontsize=8)
    fig.suptitle(f"audio: top {k} test clips of selected pool4 units, as their video frames above their spectrograms "
                 "with the unit's conv4_2 heatmap (Figure 7)", fontsize=10)
    fig.tight_layout()
    return fig


def counts_figure(counts: dict[str, dict[str, dict[str, int]]]) -> Any:
    """Classes with a high-preference unit, ours beside the paper's, per threshold."""
    fig = new_figure(10, 3.6)
    axes = fig.subplots(1, len(paper.UNIT_CLASSES), squeeze=False)
    for ax, threshold in zip(axes[0], paper.UNIT_CLASSES):
        names, ours, ref = [], [], []
        for modality in MODALITIES:
            for network in ("random", "trained"):
                names.append(f"{modality}\n{network}")
                ours.append(counts[str(threshold)][network][modality])
                ref.append(paper.UNIT_CLASSES[threshold][network][modality])
        x = np.arange(len(names))
        ax.bar(x - 0.2, ours, 0.4, label="ours")
        ax.bar(x + 0.2, ref, 0.4, label="paper (of 34 classes)", alpha=0.6)
        ax.set_xticks(x, names, fontsize=8)
        ax.set_title(f">= {threshold} of a unit's top {paper.UNIT_TOP_K} in one class")
    axes[0][0].set_ylabel("classes with such a unit")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig

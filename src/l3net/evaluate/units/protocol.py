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

Pictures (drawn in :mod:`l3net.evaluate.units.pictures`): for a few units (with labels, those with
the purest top 5; without, those that fire hardest), their top frames with the unit's heatmap, which
is channel k of the last conv layer (conv4_2, after ReLU) over the input: pool4 unit k is the
maximum of that channel, so the map shows where the unit fires (Figures 3-6 and 8); their top
spectrograms (the model's own front end output, time x frequency) with theirs (Figure 9); and, for
the audio units, the video frame of each top clip above that clip's spectrogram and heatmap (Figure 7).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ...data.shards import ShardSet
from ...errors import InputError
from ...modelspec import DEFAULT_RANDOM_SEEDS, random_row_networks
from ...models import MODALITIES, L3Net
from .. import paper
from ..inputs import embed_items, label_array, open_shards, pick_items
from ..result import FigureSpec, Result, mean_spread, spread_text
from .pictures import UnitGrid, counts_figure, frames_figure, grid_figure, unit_grid  # noqa: F401 - importable from here too

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
    #: Seed of tie-breaking in the rankings and of the random twins.
    seed: int = 0
    #: Random networks averaged in the random-weights row of the class counts (weights from ``seed + 1000
    #: + i``, or ``seed + i`` when the model is random itself); each costs one more pass over the inputs.
    random_seeds: int = DEFAULT_RANDOM_SEEDS
    #: Show tqdm progress bars.
    progress: bool = True

    def __post_init__(self) -> None:
        if self.figure_units < 0 or self.per_video < 1 or self.batch_size < 1 or self.random_seeds < 1:
            raise InputError(f"figure_units must be 0 or more, per_video, batch_size and random_seeds at least 1 "
                             f"(got {self.figure_units}, {self.per_video}, {self.batch_size} and {self.random_seeds})")


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

    Without ``labels`` (unlabelled shards): the living units whose best input fires them hardest,
    one per best input first."""
    strength = np.asarray(activations)[top[:, 0], np.arange(top.shape[0])]
    if labels is None:  # distinct best inputs first, so the grid does not show one picture many times
        living = sorted((u for u in range(top.shape[0]) if alive[u]), key=lambda u: (-strength[u], u))
        chosen, shown = [], set()
        for u in living:
            if int(top[u, 0]) not in shown and len(chosen) < count:
                chosen.append(u)
                shown.add(int(top[u, 0]))
        return chosen + [u for u in living if u not in chosen][: count - len(chosen)]
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
    untrained: bool = False,
) -> "UnitsResult":
    """Section 3.5.3 on a shard split: each pool4 unit's top inputs, pictures, and (with labels) the
    classes with a high-preference unit, trained vs random.

    ``result.metrics["units"][modality]`` lists every unit's top inputs (indices into
    ``metrics["inputs"]``, highest first) and their activations; ``result.grids`` the top inputs
    and heatmaps of ``config.figure_units`` units per tower (Figures 3-6, 8 and 9) and, for the audio
    units, their clips' video frames (Figure 7). On labelled shards,
    ``result.metrics["classes_with_unit"][threshold][network][modality]`` holds the counts
    (threshold "4" and "3", network "trained" and "random"); unlabelled shards have no counts (a
    note says so). The "random" counts are the mean over ``config.random_seeds`` random networks
    (:func:`l3net.modelspec.random_twins`; their spread and weight seeds in
    ``result.metrics["random_weights"][threshold][modality]``, the first network's classes in
    ``classes_found``), or those of ``random_model`` alone when given; used only with labels.
    ``untrained``: ``model`` has random weights itself (from ``config.seed``): it is the first of the
    random networks (then ``seed + 1``, ...) and the table has no row of its own. ``model_name`` labels
    the model's row.
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
    ranking: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for network, (_, embeddings) in networks.items():
        ranking[network] = {m: top_inputs(embeddings[m], k, seed=seed, groups=videos) for m in MODALITIES}
    random_rankings: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
    weight_seeds: list[int] = []
    if labelled:  # the random row is a reference for the class counts, which need labels
        twins = random_row_networks(model, seed, config.random_seeds, untrained=untrained, given=random_model)
        for weight_seed, network in twins:  # one random network in memory at a time
            if network is model:
                embeddings = networks["trained"][1]
            else:
                label = "random weights" + ("" if weight_seed is None else f" (seed {weight_seed})")
                embeddings = embed_items(network, shards, items, label=label, **common)
            random_rankings.append({m: top_inputs(embeddings[m], k, seed=seed, groups=videos) for m in MODALITIES})
            if weight_seed is not None:
                weight_seeds.append(weight_seed)
        networks["random"] = (None, {})  # the first random network's ranking stands for it in the listings
        ranking["random"] = random_rankings[0]

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
        # The random row: the mean (and spread) over the random networks.
        per_network = [_class_counts({"random": r}, labels) for r in random_rankings]
        spread: dict[str, dict[str, Any]] = {}
        for threshold in paper.UNIT_CLASSES:
            key = str(threshold)
            spread[key] = {}
            for modality in MODALITIES:
                spread[key][modality] = mean_spread([c[key]["random"][modality] for c, _, _ in per_network],
                                                    weight_seeds or None)
                counts[key]["random"][modality] = spread[key][modality]["mean"]
                unit_counts[key]["random"][modality] = float(np.mean([u[key]["random"][modality]
                                                                      for _, _, u in per_network]))
        present = sorted(set(labels))
        rows = []
        for threshold in paper.UNIT_CLASSES:
            for network in ("random", "trained"):
                if network == "trained" and untrained:
                    continue  # the model is the first random network
                ref = paper.UNIT_CLASSES[threshold][network]
                shown = model_name if network == "trained" else "random weights (same architecture)"
                ours = counts[str(threshold)][network]
                if network == "random":
                    ours = {m: spread_text(spread[str(threshold)][m], digits=2) for m in MODALITIES}
                rows.append([f">= {threshold} of top {k}", shown, ours["vision"], ours["audio"], ref["vision"], ref["audio"],
                             paper.source(PROTOCOL, "units")])
        described = f"weights seeds {', '.join(map(str, weight_seeds))}" if weight_seeds else "the network given"
        tables.append({
            "title": "Classes with a high-preference pool4 unit; the random-weights row: mean \u00b1 std (min-max) "
            f"over {len(random_rankings)} random network(s) ({described})",
            "columns": ["threshold", "network", "vision", "audio", "paper vision", "paper audio", paper.SOURCE_COLUMN],
            "rows": rows,
        })
        notes = [
            f"{len(items)} {split} inputs ({per_video} per video) of {len(present)} classes, split {split!r}; "
            f"{model.config.embedding_dim} pool4 units per tower. The paper: Kinetics-Sounds, 34 classes, 512 units.",
            f"Units with >= {max(paper.UNIT_CLASSES)} of their top {k} in one class (finer than the class count when "
            "there are few classes): " + ", ".join(
                f"{n} {m} {unit_counts[str(max(paper.UNIT_CLASSES))][n][m]:.4g}" for n in networks for m in MODALITIES)
            + " (random: the mean over its networks).",
        ]
        metrics.update({
            "classes_with_unit": counts,
            "random_weights": spread,
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

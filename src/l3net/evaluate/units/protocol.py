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

The measures are in :mod:`l3net.evaluate.units.ranking`. Pictures (drawn in
:mod:`l3net.evaluate.units.pictures`): for a few units (with labels, those with the purest top 5;
without, those that fire hardest), their top frames with the unit's heatmap, which
is channel k of the last conv layer (conv4_2, after ReLU) over the input: pool4 unit k is the
maximum of that channel, so the map shows where the unit fires (Figures 3-6 and 8); their top
spectrograms (the model's own front end output, time x frequency) with theirs (Figure 9); and, for
the audio units, the video frame of each top clip above that clip's spectrogram and heatmap (Figure 7).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...data.shards import ShardSet
from ...errors import InputError
from ...modelspec import DEFAULT_RANDOM_SEEDS, random_row_networks
from ...models import MODALITIES, L3Net
from .. import paper
from ..inputs import embed_items, label_array, open_shards, pick_items
from ..result import FigureSpec, Result, mean_spread, spread_text
from .pictures import UnitGrid, counts_figure, frames_figure, grid_figure, unit_grid
from .ranking import Ranking, class_counts, select_units, top_inputs, unit_preferences

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
# the protocol
# ------------------------------------------------------------------------------------------------
@dataclass
class _Rankings:
    """The networks' rankings of one set of inputs (what :func:`evaluate_units` computes first)."""

    #: The model's pool4 embeddings per tower, ``(inputs, units)``.
    embeddings: dict[str, np.ndarray]
    #: Per network ("trained"; with labels "random": the first random network's), per tower.
    ranking: dict[str, Ranking]
    #: Every random network's (labelled shards only), and their weight seeds.
    random: list[Ranking] = field(default_factory=list)
    weight_seeds: list[int] = field(default_factory=list)


def _pick_inputs(
    model: L3Net, shards: ShardSet, config: UnitsConfig
) -> tuple[list[Any], np.ndarray | None, list[str]]:
    """The inputs ranked, their labels (None without) and their videos; a clear error when too few."""
    labelled = bool(shards.classes)
    if config.classes and not labelled:
        raise InputError(f"{shards.root}: choosing classes needs class labels, but these shards have none "
                         "(dataset.json 'classes' is null)")
    items = pick_items(shards, config.split, model.config, per_video=config.per_video, classes=config.classes,
                       labelled=labelled, what="the unit analysis")
    videos = [item.key for item in items]
    k = paper.UNIT_TOP_K
    if len(set(videos)) < k:
        raise InputError(f"{shards.root}: the {config.split!r} split has {len(set(videos))} usable videos; ranking "
                         f"a unit's top {k} needs at least {k}")
    return items, label_array(items) if labelled else None, videos


def _rank_networks(
    model: L3Net, shards: ShardSet, items: list[Any], videos: list[str], config: UnitsConfig, *,
    labelled: bool, untrained: bool, random_model: L3Net | None,
) -> _Rankings:
    """Embed the inputs with the model (and, with labels, the random networks, one in memory at a
    time) and rank each unit's top inputs."""
    common = dict(batch_size=config.batch_size, device=config.device, precision=config.precision,
                  progress=config.progress)

    def rank(embeddings: dict[str, np.ndarray]) -> Ranking:
        return {m: top_inputs(embeddings[m], paper.UNIT_TOP_K, seed=config.seed, groups=videos) for m in MODALITIES}

    trained = embed_items(model, shards, items, label="trained", **common)
    result = _Rankings(embeddings=trained, ranking={"trained": rank(trained)})
    if labelled:  # the random row is a reference for the class counts, which need labels
        twins = random_row_networks(model, config.seed, config.random_seeds, untrained=untrained, given=random_model)
        for weight_seed, network in twins:
            if network is model:
                embeddings = trained
            else:
                label = "random weights" + ("" if weight_seed is None else f" (seed {weight_seed})")
                embeddings = embed_items(network, shards, items, label=label, **common)
            result.random.append(rank(embeddings))
            if weight_seed is not None:
                result.weight_seeds.append(weight_seed)
        result.ranking["random"] = result.random[0]  # the first random network stands for it in the listings
    return result


def unit_listing(
    top: np.ndarray, alive: np.ndarray, activations: np.ndarray, labels: np.ndarray | None
) -> list[dict[str, Any]]:
    """Every unit's entry of ``metrics["units"][modality]``: its top inputs (indices, highest first),
    their activations, whether it is alive, and (with labels) its top inputs' class and their count."""
    prefs = unit_preferences(top, labels, alive) if labels is not None else [None] * len(top)
    return [
        {"unit": u, "top": top[u].tolist(), "activations": [round(float(activations[i, u]), 6) for i in top[u]],
         "alive": bool(alive[u]), "class": None if p is None else str(p[0]), "count": 0 if p is None else p[1]}
        for u, p in enumerate(prefs)
    ]


def _counts_with_random_mean(rankings: _Rankings, labels: np.ndarray) -> tuple[dict, dict, dict, dict]:
    """:func:`_class_counts` of the networks, the random row being the mean over the random networks;
    with that row's spread (:func:`~l3net.evaluate.result.mean_spread`) per threshold and tower."""
    counts, found, unit_counts = class_counts(rankings.ranking, labels)
    per_network = [class_counts({"random": r}, labels) for r in rankings.random]
    spread: dict[str, dict[str, Any]] = {}
    for threshold in paper.UNIT_CLASSES:
        key = str(threshold)
        spread[key] = {}
        for modality in MODALITIES:
            spread[key][modality] = mean_spread([c[key]["random"][modality] for c, _, _ in per_network],
                                                rankings.weight_seeds or None)
            counts[key]["random"][modality] = spread[key][modality]["mean"]
            unit_counts[key]["random"][modality] = float(np.mean([u[key]["random"][modality]
                                                                  for _, _, u in per_network]))
    return counts, found, unit_counts, spread


def counts_table(
    counts: dict[str, Any], spread: dict[str, Any], rankings: _Rankings, *, model_name: str, untrained: bool,
) -> dict[str, Any]:
    """The table of classes with a high-preference unit, ours (random: mean ± std) beside the paper's."""
    k = paper.UNIT_TOP_K
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
    seeds = rankings.weight_seeds
    described = f"weights seeds {', '.join(map(str, seeds))}" if seeds else "the network given"
    return {
        "title": "Classes with a high-preference pool4 unit; the random-weights row: mean \u00b1 std (min-max) "
        f"over {len(rankings.random)} random network(s) ({described})",
        "columns": ["threshold", "network", "vision", "audio", "paper vision", "paper audio", paper.SOURCE_COLUMN],
        "rows": rows,
    }


def _notes(
    model: L3Net, items: list[Any], videos: list[str], config: UnitsConfig, labels: np.ndarray | None,
    rankings: _Rankings, unit_counts: dict[str, Any] | None,
) -> list[str]:
    """What was ranked, what the counts mean (or why there are none), and the dead units."""
    split, per_video, networks = config.split, config.per_video, rankings.ranking
    if labels is not None and unit_counts is not None:
        top = str(max(paper.UNIT_CLASSES))
        notes = [
            f"{len(items)} {split} inputs ({per_video} per video) of {len(set(labels))} classes, split {split!r}; "
            f"{model.config.embedding_dim} pool4 units per tower. The paper: Kinetics-Sounds, 34 classes, 512 units.",
            f"Units with >= {max(paper.UNIT_CLASSES)} of their top {paper.UNIT_TOP_K} in one class (finer than the "
            "class count when there are few classes): " + ", ".join(
                f"{n} {m} {unit_counts[top][n][m]:.4g}" for n in networks for m in MODALITIES)
            + " (random: the mean over its networks).",
        ]
    else:
        notes = [
            f"{len(items)} {split} inputs ({per_video} per video) of {len(set(videos))} videos, split {split!r}; "
            f"{model.config.embedding_dim} pool4 units per tower.",
            "These shards carry no class labels (as the paper's Flickr-SoundNet): each unit's top inputs and "
            "heatmaps are shown, but the classes with a high-preference unit (Section 3.5.3) and the random-weights "
            "network they are compared with need labels and are not computed. Prepare with --labels for them.",
        ]
    dead = _dead_units(rankings)
    notes.append("Units whose activation is the same for every input rank nothing and are left out: "
                 + ", ".join(f"{n} {m} {dead[n][m]}" for n in networks for m in MODALITIES) + ".")
    return notes


def _dead_units(rankings: _Rankings) -> dict[str, dict[str, int]]:
    return {n: {m: int((~rankings.ranking[n][m][1]).sum()) for m in MODALITIES} for n in rankings.ranking}


def _unit_grids(
    model: L3Net, shards: ShardSet, items: list[Any], rankings: _Rankings, labels: np.ndarray | None,
    config: UnitsConfig,
) -> list[UnitGrid]:
    """The pictures' contents: ``config.figure_units`` units per tower (:func:`select_units`), their top
    inputs and heatmaps (computed here, drawn by :mod:`l3net.evaluate.units.pictures`)."""
    grids = []
    for modality in MODALITIES if config.figure_units > 0 else ():
        top, alive = rankings.ranking["trained"][modality]
        units = select_units(top, labels, alive, rankings.embeddings[modality], config.figure_units)
        if units:
            grids.append(unit_grid(model, shards, items, modality, units, top, labels, batch_size=config.batch_size,
                                   device=config.device, precision=config.precision))
    return grids


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

    The recipe: pick the inputs, rank them per unit for each network, then list the units, count the
    classes (with labels), and gather the pictures' contents.
    """
    config = config or UnitsConfig()
    shards = open_shards(shards_dir)
    items, labels, videos = _pick_inputs(model, shards, config)
    labelled = labels is not None
    rankings = _rank_networks(model, shards, items, videos, config, labelled=labelled, untrained=untrained,
                              random_model=random_model)
    units_out = {m: unit_listing(*rankings.ranking["trained"][m], rankings.embeddings[m], labels) for m in MODALITIES}
    tables: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    unit_counts = None
    if labels is not None:
        counts, found, unit_counts, spread = _counts_with_random_mean(rankings, labels)
        tables.append(counts_table(counts, spread, rankings, model_name=model_name, untrained=untrained))
        present = sorted(set(labels))
        metrics.update({
            "classes_with_unit": counts,
            "random_weights": spread,
            "classes_found": found,
            # Finer than the class count when there are few classes: how many units qualify.
            "units_with_high_preference": unit_counts,
            "num_classes": len(present),
            "classes": present,
        })
    notes = _notes(model, items, videos, config, labels, rankings, unit_counts)
    grids = _unit_grids(model, shards, items, rankings, labels, config)
    metrics.update({
        "labelled": labelled,
        "dead_units": _dead_units(rankings),
        "num_inputs": len(items),
        "num_videos": len(set(videos)),
        "split": config.split,
        "per_video": config.per_video,
        "inputs": [item.describe() for item in items],
        "units": units_out,
    })
    return UnitsResult(
        title=TITLE, model=model_name, dataset=str(shards.root), tables=tables, notes=notes, metrics=metrics,
        config=config, grids=grids,
    )


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

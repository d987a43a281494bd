"""``l3net eval cluster``: k-means on pool4 embeddings, NMI against the labels (Table 4, Figure 10).

Protocol (PAPER_SPEC 5.4): embed the test frames (vision tower) and the test 1 s clips (audio
tower) into pool4, cluster each set with k-means (64 clusters by default), and score the clusters
against the class labels with the normalised mutual information (scikit-learn's
``normalized_mutual_info_score``, arithmetic normalisation). Two reference rows are computed in
the same run, on the same inputs and the same k:

- *random assignment*: the expected NMI of assigning each input to one of k clusters uniformly at
  random (the mean over several seeds). NMI is biased upwards on finite samples, so this row, not
  zero, is the floor a method must beat;
- *L3 without training*: the same architecture with fresh random weights (the paper's
  "L3 without training"): the mean and spread over ``random_seeds`` random networks (one random
  network is one draw; its NMI moves from one seed to another), with their weight seeds.

t-SNE maps of the embeddings, coloured by class, trained beside random, are Figure 10.
The embeddings are clustered as they are (no normalisation): the paper says nothing else.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..data.shards import ShardSet
from ..errors import InputError
from ..modelspec import DEFAULT_RANDOM_SEEDS, random_row_networks
from ..models import MODALITIES, L3Net
from . import paper
from .inputs import embed_items, label_array, open_shards, pick_items
from .result import FigureSpec, Result, mean_spread, new_figure, spread_text

PROTOCOL = "cluster"
TITLE = "Clustering of pool4 embeddings (Table 4, Figure 10)"
#: Seeds averaged for the random-assignment row.
RANDOM_ASSIGNMENT_REPEATS = 20
#: t-SNE runs on at most this many points per map (a seeded subsample beyond it).
TSNE_MAX_POINTS = 2000
#: Up to this many points t-SNE is computed exactly (faster than Barnes-Hut for small sets).
TSNE_EXACT_MAX_POINTS = 200


# ------------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------------
def nmi(labels: Sequence[Any], assignment: Sequence[int]) -> float:
    """Normalised mutual information of two labellings (arithmetic normalisation, in [0, 1])."""
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(np.asarray(labels), np.asarray(assignment)))


def random_assignment_nmi(
    labels: Sequence[Any], k: int, *, repeats: int = RANDOM_ASSIGNMENT_REPEATS, seed: int = 0
) -> float:
    """Expected NMI of assigning each input uniformly at random to one of ``k`` clusters
    (the mean over ``repeats`` seeded draws)."""
    if k < 1 or repeats < 1:
        raise InputError(f"k and repeats must be at least 1, got k={k}, repeats={repeats}")
    rng = np.random.default_rng(seed)
    n = len(labels)
    return float(np.mean([nmi(labels, rng.integers(0, k, size=n)) for _ in range(repeats)]))


def resolve_k(k: int, num_samples: int) -> tuple[int, str | None]:
    """The number of clusters to use and a note when ``k`` had to be clamped.

    k-means needs at least as many inputs as clusters; with fewer, k is clamped to the number of
    inputs (each one its own cluster: the NMI is then that of a trivial partition, which the note
    says).
    """
    if k < 2:
        raise InputError(f"--k must be at least 2, got {k}")
    if num_samples < 2:
        raise InputError(f"clustering needs at least 2 inputs, got {num_samples}")
    if k <= num_samples:
        return k, None
    note = (
        f"k={k} exceeds the {num_samples} test inputs; clamped to k={num_samples} "
        "(use more test videos or --per-video, or a smaller --k, for a meaningful NMI)"
    )
    return num_samples, note


def kmeans_assign(features: np.ndarray, k: int, *, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """k-means cluster index of every row of ``features`` ``(N, D)`` (scikit-learn, k-means++)."""
    from sklearn.cluster import KMeans

    features = np.asarray(features, dtype=np.float64)
    if not np.isfinite(features).all():
        raise InputError("embeddings contain NaN or infinite values; cannot cluster them")
    with warnings.catch_warnings():
        # Identical embeddings (e.g. dead units of a random net) make fewer distinct clusters than
        # k; scikit-learn warns, and the NMI of what it returns is still the honest answer.
        warnings.filterwarnings("ignore", message="Number of distinct clusters")
        return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(features)


def kmeans_nmi(features: np.ndarray, labels: Sequence[Any], k: int, *, seed: int = 0, n_init: int = 10) -> float:
    """NMI between the k-means clusters of ``features`` and ``labels``."""
    return nmi(labels, kmeans_assign(features, k, seed=seed, n_init=n_init))


def tsne_map(features: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """2-D t-SNE coordinates ``(N, 2)`` of ``features`` (perplexity capped for small sets)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = len(features)
    if n < 3:
        raise InputError(f"t-SNE needs at least 3 points, got {n}")
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3.0)))
    # Exact t-SNE is faster than Barnes-Hut below a few hundred points.
    method = "exact" if n <= TSNE_EXACT_MAX_POINTS else "barnes_hut"
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, method=method)
    # Barnes-Hut's OpenMP threads slow it down many times over when the cores are busy (measured
    # 13x on a loaded 2-core machine); one thread is predictable everywhere.
    with threadpool_limits(limits=1, user_api="openmp"):
        return tsne.fit_transform(np.asarray(features, dtype=np.float32))


# ------------------------------------------------------------------------------------------------
# the protocol
# ------------------------------------------------------------------------------------------------
METHODS = ("random assignment", "L3 without training", "L3-Net")


@dataclass(frozen=True)
class ClusterConfig:
    """Settings of :func:`evaluate_clustering` (defaults: the paper's Table 4)."""

    #: Shard split whose inputs are clustered.
    split: str = "test"
    #: Number of k-means clusters (at least 2; the paper's 32; fewer when there are fewer inputs).
    k: int = paper.CLUSTER_K
    #: Frames (and centred 1 s clips) per video.
    per_video: int = 1
    #: Cluster only these classes (None: all).
    classes: tuple[str, ...] | None = None
    #: Also compute the t-SNE maps of Figure 10 (the slow part on large sets).
    tsne: bool = True
    #: Inputs per forward pass.
    batch_size: int = 32
    #: "cpu", "cuda", "cuda:N", "auto", or None for the model's own device.
    device: str | None = None
    #: Numeric precision of the forward pass (runtime.PRECISIONS).
    precision: str = "fp32"
    #: Seed of k-means, random assignment, t-SNE and the random twins.
    seed: int = 0
    #: Random networks averaged in the "L3 without training" row (weights from ``seed + 1000 + i``, or
    #: ``seed + i`` when the model is random itself); each costs one more pass over the test inputs.
    random_seeds: int = DEFAULT_RANDOM_SEEDS
    #: k-means restarts; the best is kept.
    n_init: int = 10
    #: Show tqdm progress bars.
    progress: bool = True

    def __post_init__(self) -> None:
        if self.k < 2 or self.per_video < 1 or self.n_init < 1 or self.batch_size < 1 or self.random_seeds < 1:
            raise InputError(f"k must be at least 2, per_video, n_init, batch_size and random_seeds at least 1 (got "
                             f"{self.k}, {self.per_video}, {self.n_init}, {self.batch_size} and {self.random_seeds})")


@dataclass
class ClusterResult(Result):
    """Table 4: ``metrics["nmi"][modality][method]``; ``tsne[method][modality]`` holds the t-SNE map
    ``(n, 2)`` of the inputs ``tsne_inputs`` (Figure 10), when computed."""

    protocol = PROTOCOL
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, object), repr=False)
    tsne: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    tsne_inputs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    def figures(self) -> list[FigureSpec]:
        specs = [FigureSpec("cluster_nmi.png", "NMI, ours beside the paper's (Table 4)",
                            lambda: nmi_figure(self.metrics["nmi"], self.model))]
        if self.tsne:
            specs.append(FigureSpec(
                "cluster_tsne.png", "t-SNE of pool4 embeddings coloured by class: trained (left) beside the same "
                "architecture untrained (right), vision (top) and audio (bottom) (Figure 10)",
                lambda: tsne_figure(self.tsne, self.labels[self.tsne_inputs], self.model)))
        return specs


def evaluate_clustering(
    model: L3Net,
    shards_dir: str | os.PathLike[str] | ShardSet,
    config: ClusterConfig | None = None,
    *,
    random_model: L3Net | None = None,
    model_name: str = "L3-Net (ours)",
    untrained: bool = False,
) -> ClusterResult:
    """Table 4 on a labelled shard split: NMI of k-means on pool4 embeddings, vision and audio.

    The "L3 without training" row is the mean over ``config.random_seeds`` random networks
    (:func:`l3net.modelspec.random_twins`: ``model``'s random twins, or, when ``untrained`` (``model``
    has random weights from ``config.seed``), ``model`` itself and networks from ``seed + 1``, ...; then
    there is no trained row). ``random_model``: one given untrained network instead. ``model_name``
    labels the model's row. ``result.metrics["nmi"]`` holds the numbers (the random row's mean)::

        {"vision": {"random assignment": ..., "L3 without training": ..., "L3-Net": ...}, "audio": {...}}

    and ``result.metrics["random_weights"][modality]`` its spread (:func:`l3net.evaluate.result.mean_spread`).

    The recipe: embed the inputs with the model and cluster the random networks' embeddings
    (:func:`_embed_networks`), score each row, then the table (:func:`_table_rows`), the notes and the
    t-SNE maps (:func:`_tsne_maps`).
    """
    config = config or ClusterConfig()
    seed, n_init = config.seed, config.n_init
    shards = open_shards(shards_dir)
    items = pick_items(shards, config.split, model.config, per_video=config.per_video, classes=config.classes,
                       what="clustering")
    labels = label_array(items)
    k_used, note = resolve_k(config.k, len(items))
    embeddings, random_nmi, weight_seeds = _embed_networks(model, shards, items, labels, k_used, config,
                                                           untrained=untrained, random_model=random_model)
    spread = {m: mean_spread(v, weight_seeds or None) for m, v in random_nmi.items()}
    scores: dict[str, dict[str, float | None]] = {m: {} for m in MODALITIES}
    for modality in MODALITIES:
        scores[modality]["random assignment"] = random_assignment_nmi(labels, k_used, seed=seed)
        scores[modality]["L3 without training"] = spread[modality]["mean"]
        scores[modality]["L3-Net"] = (None if untrained else kmeans_nmi(embeddings["L3-Net"][modality], labels, k_used,
                                                                        seed=seed, n_init=n_init))

    present = sorted(set(labels))
    described = (f"weights seeds {', '.join(map(str, weight_seeds))}" if weight_seeds else "the network given")
    notes = [
        f"{len(items)} test inputs ({config.per_video} per video) of {len(present)} classes, split {config.split!r}; "
        f"k-means with k={k_used} ({n_init} restarts); random assignment averaged over "
        f"{RANDOM_ASSIGNMENT_REPEATS} seeds; 'L3 without training': mean \u00b1 std (min-max) over "
        f"{len(random_nmi['vision'])} random network(s) ({described}). Paper: Kinetics-Sounds, 34 classes, "
        f"k={paper.CLUSTER_K}."
    ]
    if untrained:
        notes.append("the model has random weights itself: it is the first of the 'L3 without training' networks, "
                     "and there is no trained row")
    if note:
        notes.append(note)
    maps, chosen = _tsne_maps(embeddings, len(labels), config)
    return ClusterResult(
        title=TITLE, model=model_name, dataset=str(shards.root),
        tables=[{
            "title": "NMI of k-means clusters against the class labels",
            "columns": ["method", "vision NMI", "audio NMI", "paper vision", "paper audio", paper.SOURCE_COLUMN],
            "rows": _table_rows(scores, spread, model_name=model_name, untrained=untrained),
        }],
        notes=notes,
        metrics={
            "nmi": scores,
            "random_weights": spread,
            "k": k_used,
            "k_requested": config.k,
            "num_inputs": len(items),
            "num_classes": len(present),
            "per_video": config.per_video,
            "split": config.split,
            "classes": present,
        },
        config=config, labels=labels, tsne=maps, tsne_inputs=chosen,
    )


def _embed_networks(
    model: L3Net, shards: ShardSet, items: list[Any], labels: np.ndarray, k: int, config: ClusterConfig, *,
    untrained: bool, random_model: L3Net | None,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, list[float]], list[int]]:
    """The model's embeddings (unless ``untrained``) and the random networks', one in memory at a time:
    each random network's k-means NMI per tower is kept, and the first one's embeddings (drawn in
    Figure 10). Returns the embeddings per row ("L3-Net", "L3 without training"), the random NMIs
    per tower and the random networks' weight seeds."""
    common = dict(batch_size=config.batch_size, device=config.device, precision=config.precision,
                  progress=config.progress)
    embeddings: dict[str, dict[str, np.ndarray]] = {}
    if not untrained:
        embeddings["L3-Net"] = embed_items(model, shards, items, label="trained", **common)
    networks = random_row_networks(model, config.seed, config.random_seeds, untrained=untrained, given=random_model)
    random_nmi: dict[str, list[float]] = {m: [] for m in MODALITIES}
    weight_seeds: list[int] = []
    for weight_seed, network in networks:
        label = "random weights" + ("" if weight_seed is None else f" (seed {weight_seed})")
        embedded = embed_items(network, shards, items, label=label, **common)
        embeddings.setdefault("L3 without training", embedded)  # the first one is drawn (Figure 10)
        if weight_seed is not None:
            weight_seeds.append(weight_seed)
        for modality in MODALITIES:
            random_nmi[modality].append(kmeans_nmi(embedded[modality], labels, k, seed=config.seed,
                                                   n_init=config.n_init))
    return embeddings, random_nmi, weight_seeds


def _table_rows(
    scores: dict[str, dict[str, float | None]], spread: dict[str, Any], *, model_name: str, untrained: bool,
) -> list[list[Any]]:
    """Table 4's rows: ours per tower (the random row as mean ± std) beside the paper's."""
    rows = []
    for method in METHODS:
        shown = model_name if method == "L3-Net" and not untrained else method
        ref = paper.CLUSTER_NMI[method]
        if method == "L3 without training":
            ours = [spread_text(spread[m], digits=4) for m in MODALITIES]
        else:
            ours = [None if scores[m][method] is None else _r(scores[m][method]) for m in MODALITIES]
        rows.append([shown, *ours, ref["vision"], ref["audio"], paper.source(PROTOCOL, method)])
    return rows


def _tsne_maps(
    embeddings: dict[str, dict[str, np.ndarray]], n: int, config: ClusterConfig
) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Figure 10's t-SNE maps per row and tower (none unless ``config.tsne``) of at most
    :data:`TSNE_MAX_POINTS` of the ``n`` inputs (a seeded subsample), and those inputs' indices."""
    chosen = np.arange(n)
    if n > TSNE_MAX_POINTS:
        chosen = np.sort(np.random.default_rng(config.seed).choice(n, TSNE_MAX_POINTS, replace=False))
    maps: dict[str, dict[str, np.ndarray]] = {}
    if config.tsne:
        jobs = [(method, modality) for modality in MODALITIES for method in ("L3-Net", "L3 without training")
                if method in embeddings]
        for method, modality in tqdm(jobs, desc=f"t-SNE ({len(chosen)} points)", unit="map",
                                     disable=not config.progress, leave=False, dynamic_ncols=True):
            maps.setdefault(method, {})[modality] = tsne_map(embeddings[method][modality][chosen], seed=config.seed)
    return maps, chosen


def _r(x: float) -> float:
    return round(float(x), 4)


# ------------------------------------------------------------------------------------------------
# pictures
# ------------------------------------------------------------------------------------------------
def class_colours(classes: Sequence[str]) -> dict[str, Any]:
    """A distinct colour per class: tab10 for up to 10 classes, else 60 colours before any repeats."""
    import matplotlib

    names = ("tab10",) if len(classes) <= 10 else ("tab20", "tab20b", "tab20c")
    palette = [c for name in names for c in matplotlib.colormaps[name].colors]
    return {c: palette[i % len(palette)] for i, c in enumerate(sorted(classes))}


def tsne_figure(maps: dict[str, dict[str, np.ndarray]], labels: np.ndarray, model_name: str) -> Any:
    """Figure 10: t-SNE maps coloured by class, trained (left) beside untrained (right)."""
    from matplotlib.lines import Line2D

    colours = class_colours(sorted(set(labels)))
    point_colours = [colours[c] for c in labels]
    columns = [(m, model_name if m == "L3-Net" else m) for m in ("L3-Net", "L3 without training") if m in maps]
    fig = new_figure(5.5 * len(columns), 10)
    axes = fig.subplots(2, len(columns), squeeze=False)
    for row, modality in enumerate(MODALITIES):
        for col, (method, title) in enumerate(columns):
            xy = maps[method][modality]
            ax = axes[row][col]
            ax.scatter(xy[:, 0], xy[:, 1], c=point_colours, s=float(np.clip(4000 / len(xy), 6, 40)), linewidths=0)
            ax.set_title(f"{modality}: {title}", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
    handles = [Line2D([], [], marker="o", linestyle="", color=colour, label=name) for name, colour in colours.items()]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.suptitle("t-SNE of pool4 embeddings, coloured by class (Figure 10)")
    fig.tight_layout()
    return fig


def nmi_figure(scores: dict[str, dict[str, float]], model_name: str) -> Any:
    """Table 4 as bars: ours beside the paper's, per tower."""
    fig = new_figure(10, 3.6)
    axes = fig.subplots(1, 2, sharey=True)
    x = np.arange(len(METHODS))
    for ax, modality in zip(axes, MODALITIES):
        ours = [np.nan if scores[modality][m] is None else scores[modality][m] for m in METHODS]
        ref = [paper.CLUSTER_NMI[m][modality] for m in METHODS]
        ax.bar(x - 0.2, ours, 0.4, label="ours")
        ax.bar(x + 0.2, ref, 0.4, label="paper (Kinetics-Sounds)", alpha=0.6)
        ax.set_xticks(x, ["random\nassignment", "untrained\nnetwork", model_name if len(model_name) < 20 else "L3-Net"])
        ax.set_title(f"{modality}")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("NMI")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig

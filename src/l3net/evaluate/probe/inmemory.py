"""``l3net eval probe``: Table 3's linear probe on frozen vision features, trained beside random weights.

The protocol (paper section 5.3): each image is scaled so its smaller side is
``transfer_image_size`` and centre-cropped to a square of that size (256 x 256 for the paper);
the vision tower's conv4_2 (after ReLU) is max-pooled to a 4 x 4 grid (8192-D for the paper
preset, ``model.transfer_features``); one linear layer is trained on these frozen features with
the cross-entropy loss (multinomial logistic regression on z-scored features) and top-1 accuracy
is measured on held-out images. The same is done, in the same run and on the same splits, for the
same architecture with random weights: the paper's "L3 random weights" row, the mean and spread over
``random_seeds`` networks (:func:`l3net.modelspec.random_twins`).

This is ``--solver lbfgs``: every feature is held in memory, for folders up to some thousands of
images. At ImageNet's scale the paper's own training (augmentation, Adam, Inception-v3's schedule
and label smoothing) streams the images: :mod:`l3net.evaluate.probe.stream`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ...errors import DatasetError, InputError, MediaError
from ...media import load_image
from ...modelspec import DEFAULT_RANDOM_SEEDS, random_row_networks
from ...models import L3Net
from .. import paper
from ..classify import FeatureResult, classify_recordings, confusion_figure
from ..datasets import LabelledFiles, Split, describe_split_rule, format_skipped
from ..features import image_features
from ..result import FigureSpec, Result, mean_spread, spread_text

PROTOCOL = "probe"
TITLE = "Image classification linear probe (Table 3)"

#: The probe's L2 regularisation (inverse strength). The paper trains on ImageNet's 1.28 M images
#: without saying; on small sets with thousands of z-scored dimensions a firm default generalises.
DEFAULT_C = 0.01
MAX_ITER = 2000
TRAINED_ROW, RANDOM_ROW = "L3-Net", "L3 random weights"


def make_probe(C: float = DEFAULT_C) -> Any:
    """z-scoring (training statistics) + multinomial logistic regression: one linear layer, cross-entropy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=MAX_ITER))


def _images(dataset: LabelledFiles, failures: dict[int, str] | None) -> Iterator[np.ndarray]:
    """Decode the images; with ``failures``, unreadable ones are recorded there and skipped."""
    for index, example in enumerate(dataset.examples):
        try:
            yield load_image(example.path)
        except MediaError as exc:
            if failures is None:
                raise
            failures[index] = exc.reason


def probe_features(
    dataset: LabelledFiles,
    model: L3Net,
    *,
    batch_size: int = 32,
    precision: str = "fp32",
    progress: bool = True,
    desc: str = "image features",
) -> tuple[np.ndarray, LabelledFiles]:
    """Transfer features of every readable image, and the dataset without the unreadable ones."""
    failures: dict[int, str] = {}
    try:
        feats = image_features(
            model, _images(dataset, failures), batch_size=batch_size, precision=precision,
            progress=progress, desc=desc, total=len(dataset.examples),
        )
    except InputError:
        if len(failures) < len(dataset.examples):
            raise
        failed = [(str(dataset.examples[i].path), r) for i, r in sorted(failures.items())]
        raise DatasetError(f"{dataset.root}: no image could be read:\n{format_skipped(failed)}") from None
    return feats, dataset.without(failures)


@dataclass(frozen=True)
class ProbeConfig:
    """Settings of :func:`evaluate_probe` (defaults: the paper's probe; C, which the paper does not
    give, see :data:`DEFAULT_C`)."""

    #: Inverse L2 regularisation of the linear layer (> 0).
    C: float = DEFAULT_C
    #: Cross-validation splits when the folder has no train/ val/ split (at least 2).
    n_splits: int = 5
    #: Seed of the splits and of the random twins (:func:`l3net.modelspec.random_twins`).
    seed: int = 0
    #: Random-weights networks averaged in the random-weights row.
    random_seeds: int = DEFAULT_RANDOM_SEEDS
    #: Images per forward pass.
    batch_size: int = 32
    #: Numeric precision of the forward pass (runtime.PRECISIONS).
    precision: str = "fp32"
    #: Show tqdm progress bars.
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.C > 0:
            raise InputError(f"the probe's C must be positive, got {self.C}")
        if self.n_splits < 2:
            raise InputError(f"n_splits must be at least 2, got {self.n_splits}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.random_seeds < 1:
            raise InputError(f"random_seeds must be at least 1, got {self.random_seeds}")


@dataclass
class ProbeResult(Result):
    """Table 3: top-1 accuracy of the linear probe per row (``results[row]``, rows :data:`TRAINED_ROW`
    and :data:`RANDOM_ROW`: the first random network's) on the same ``splits`` of ``files`` (unreadable
    images dropped); ``random_runs[weight seed]``: every random network's."""

    protocol = PROTOCOL
    files: LabelledFiles | None = field(default=None, repr=False)
    splits: list[Split] = field(default_factory=list, repr=False)
    results: dict[str, FeatureResult] = field(default_factory=dict, repr=False)
    random_runs: dict[int, FeatureResult] = field(default_factory=dict, repr=False)

    def figures(self) -> list[FigureSpec]:
        first = next(iter(self.random_runs), None)
        panels = [(f"{_seed_label(first) if row == RANDOM_ROW and first is not None else row}: top-1 {r.accuracy:.1%}",
                   r.confusion) for row, r in self.results.items()]
        return [FigureSpec("probe_confusion.png",
                           "Confusion matrices of the linear probe over all test images (rows: true class)",
                           lambda: confusion_figure(panels, self.files.classes))]


def _seed_label(weight_seed: int) -> str:
    return RANDOM_ROW if weight_seed < 0 else f"{RANDOM_ROW} (seed {weight_seed})"


def evaluate_probe(
    dataset: LabelledFiles,
    model: L3Net,
    config: ProbeConfig | None = None,
    *,
    untrained: bool = False,
    random_model: L3Net | None = None,
    model_name: str = "L3-Net (ours)",
) -> ProbeResult:
    """Table 3: the linear probe on ``model``'s frozen conv4_2 features, and on random networks' on the
    same splits: ``random_model`` alone when given, else ``config.random_seeds`` networks of
    :func:`l3net.modelspec.random_twins` (the random-weights row is their mean and spread).

    ``untrained``: ``model`` itself has random weights; it is the random-weights row's first network.
    ``model_name`` labels the model's row.

    The recipe: every network's features (:func:`_extract`), the probe fitted on each
    (:func:`_fit_rows`), then the tables (:func:`_tables`) and the metrics.
    """
    config = config or ProbeConfig()
    # the paper's random-weights row: same architecture, fresh weights, same run, several seeds
    twins = random_row_networks(model, config.seed, config.random_seeds, untrained=untrained, given=random_model)
    networks = ([] if untrained else [(TRAINED_ROW, None, model)]) + [(RANDOM_ROW, s, net) for s, net in twins]
    start = time.perf_counter()
    features, dataset = _extract(dataset, networks, config)
    extract_seconds = time.perf_counter() - start
    splits = dataset.splits(n_splits=config.n_splits, seed=config.seed)
    results, random_runs = _fit_rows(features, dataset, splits, config)
    random_seeds = [s for s in random_runs if s >= 0] or None
    spread = mean_spread([r.accuracy for r in random_runs.values()], random_seeds)
    return ProbeResult(
        title=TITLE, model=model_name, dataset=f"images:{dataset.root}",
        tables=_tables(results, random_runs, spread, splits, dataset),
        metrics={
            "dataset": {"root": str(dataset.root), "classes": list(dataset.classes), "images": len(dataset.examples),
                        "split_rule": describe_split_rule(dataset, splits),
                        "skipped": [{"path": p, "reason": r} for p, r in dataset.skipped]},
            "feature_dim": next(iter(results.values())).dim,
            "classifier": {"name": "multinomial logistic regression on z-scored features", "C": config.C},
            "timing": {"extract_seconds": round(extract_seconds, 2)},
            "random_weights": spread,  # mean_spread over the random networks (their weight seeds)
            **{row: {"accuracy": spread["mean"] if row == RANDOM_ROW else r.accuracy, "accuracy_std": r.std,
                     "splits": [{"name": s.name, "train": s.n_train, "test": s.n_test, "accuracy": s.accuracy,
                                 "notes": list(s.notes)} for s in r.splits],
                     "confusion": r.confusion.tolist(),
                     **({"splits_of": _seed_label(next(iter(random_runs))),
                         "per_seed": [{"seed": s, "accuracy": run.accuracy, "accuracy_std": run.std,
                                       "split_accuracy": [x.accuracy for x in run.splits]}
                                      for s, run in random_runs.items()]} if row == RANDOM_ROW else {})}
               for row, r in results.items()},
        },
        config=config, files=dataset, splits=splits, results=results, random_runs=random_runs,
    )


def _extract(
    dataset: LabelledFiles, networks: list[tuple[str, int | None, L3Net]], config: ProbeConfig
) -> tuple[list[tuple[str, int | None, np.ndarray]], LabelledFiles]:
    """Each network's features of the images, as ``(row, weight seed, features)``, and the images kept:
    later networks read only those the first one could."""
    features: list[tuple[str, int | None, np.ndarray]] = []
    for i, (row, weight_seed, net) in enumerate(networks):
        label = row if weight_seed is None else f"{row} (seed {weight_seed})"
        feats, kept = probe_features(dataset, net, batch_size=config.batch_size, precision=config.precision,
                                     progress=config.progress, desc=f"{label} features")
        if i == 0:
            dataset = kept
        features.append((row, weight_seed, feats))
    return features, dataset


def _fit_rows(
    features: list[tuple[str, int | None, np.ndarray]], dataset: LabelledFiles, splits: list[Split],
    config: ProbeConfig,
) -> tuple[dict[str, FeatureResult], dict[int, FeatureResult]]:
    """The probe fitted and scored on every split for each network: per row (the random row's: its
    first network's, for the pictures and splits) and per random network's weight seed (-1: given)."""
    labels = dataset.labels()
    each = np.arange(len(labels))  # one "subclip" per image: its own scores decide it
    results: dict[str, FeatureResult] = {}
    random_runs: dict[int, FeatureResult] = {}
    for row, weight_seed, feats in features:
        fitted = classify_recordings(
            feats, each, labels, splits, len(dataset.classes), make_classifier=lambda: make_probe(config.C),
            progress=config.progress,
            desc=f"probe on {row}" + ("" if weight_seed is None else f" (seed {weight_seed})"),
        )
        results.setdefault(row, fitted)
        if row == RANDOM_ROW:
            random_runs[-1 if weight_seed is None else weight_seed] = fitted
    return results, random_runs


def _tables(
    results: dict[str, FeatureResult], random_runs: dict[int, FeatureResult], spread: dict[str, Any],
    splits: list[Split], dataset: LabelledFiles,
) -> list[dict[str, Any]]:
    """Table 3 beside the paper's (the random row as mean ± std), and the accuracy per split and network."""
    cells: dict[str, Any] = {row: r.accuracy for row, r in results.items()}
    cells[RANDOM_ROW] = spread_text(spread)
    rows = [[method, cells.get(method), value, paper.source(PROTOCOL, method, value)]
            for method, value in paper.IMAGE_PROBE.items()]
    runs = {row: r for row, r in results.items() if row != RANDOM_ROW}
    runs.update({_seed_label(s): r for s, r in random_runs.items()})
    per_split = [[s.name, len(s.train), len(s.test)] + [r.splits[i].accuracy for r in runs.values()]
                 for i, s in enumerate(splits)]
    per_split.append(["mean", None, None] + [r.accuracy for r in runs.values()])
    return [
        {"title": f"Linear probe top-1 accuracy on {dataset.root.name} ({len(dataset.classes)} classes); "
                  "the paper's numbers are on ImageNet",
         "columns": ["method", "ours", "paper", paper.SOURCE_COLUMN], "rows": rows},
        {"title": "Top-1 accuracy per split", "columns": ["split", "train images", "test images", *runs],
         "rows": per_split},
    ]

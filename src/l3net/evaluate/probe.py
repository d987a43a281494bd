"""``l3net eval probe``: Table 3's linear probe on frozen vision features, trained beside random weights.

The protocol (paper section 5.3): each image is scaled so its smaller side is
``transfer_image_size`` and centre-cropped to a square of that size (256 x 256 for the paper);
the vision tower's conv4_2 (after ReLU) is max-pooled to a 4 x 4 grid (8192-D for the paper
preset, ``model.transfer_features``); one linear layer is trained on these frozen features with
the cross-entropy loss (multinomial logistic regression on z-scored features) and top-1 accuracy
is measured on held-out images. The same is done, in the same run and on the same splits, for the
same architecture with random weights: the paper's "L3 random weights" row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ..errors import DatasetError, InputError, MediaError
from ..media import load_image
from ..modelspec import random_twin
from ..models import L3Net
from . import paper
from .classify import FeatureResult, classify_recordings, confusion_figure
from .datasets import LabelledFiles, Split, describe_split_rule, format_skipped
from .features import image_features
from .result import FigureSpec, Result

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
    #: Seed of the splits and of the random twin (:func:`l3net.modelspec.random_twin`).
    seed: int = 0
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


@dataclass
class ProbeResult(Result):
    """Table 3: top-1 accuracy of the linear probe per row (``results[row]``, rows :data:`TRAINED_ROW`
    and :data:`RANDOM_ROW`) on the same ``splits`` of ``files`` (unreadable images dropped)."""

    protocol = PROTOCOL
    files: LabelledFiles | None = field(default=None, repr=False)
    splits: list[Split] = field(default_factory=list, repr=False)
    results: dict[str, FeatureResult] = field(default_factory=dict, repr=False)

    def figures(self) -> list[FigureSpec]:
        panels = [(f"{row}: top-1 {r.accuracy:.1%}", r.confusion) for row, r in self.results.items()]
        return [FigureSpec("probe_confusion.png",
                           "Confusion matrices of the linear probe over all test images (rows: true class)",
                           lambda: confusion_figure(panels, self.files.classes))]


def evaluate_probe(
    dataset: LabelledFiles,
    model: L3Net,
    config: ProbeConfig | None = None,
    *,
    untrained: bool = False,
    random_model: L3Net | None = None,
    model_name: str = "L3-Net (ours)",
) -> ProbeResult:
    """Table 3: the linear probe on ``model``'s frozen conv4_2 features, and on ``random_model``'s
    (default: the random twin, :func:`l3net.modelspec.random_twin`) on the same splits.

    ``untrained``: ``model`` itself has random weights; it fills the random-weights row alone.
    ``model_name`` labels the model's row.
    """
    config = config or ProbeConfig()
    C, n_splits, seed = config.C, config.n_splits, config.seed
    batch_size, precision, progress = config.batch_size, config.precision, config.progress
    models = {RANDOM_ROW if untrained else TRAINED_ROW: model}
    if not untrained:  # the paper's random-weights row: same architecture, fresh weights, same run
        models[RANDOM_ROW] = random_model if random_model is not None else random_twin(model, seed)
    start = time.perf_counter()
    features: dict[str, np.ndarray] = {}
    for i, (row, net) in enumerate(models.items()):
        feats, kept = probe_features(dataset, net, batch_size=batch_size, precision=precision,
                                     progress=progress, desc=f"{row} features")
        if i == 0:
            dataset = kept  # later passes read only the images the first one could
        features[row] = feats
    extract_seconds = time.perf_counter() - start
    splits = dataset.splits(n_splits=n_splits, seed=seed)
    labels = dataset.labels()
    each = np.arange(len(labels))  # one "subclip" per image: its own scores decide it
    results = {
        row: classify_recordings(
            feats, each, labels, splits, len(dataset.classes), make_classifier=lambda: make_probe(C),
            progress=progress, desc=f"probe on {row}",
        )
        for row, feats in features.items()
    }
    rows = [[method, results[method].accuracy if method in results else None, value]
            for method, value in paper.IMAGE_PROBE.items()]
    per_split = [[s.name, len(s.train), len(s.test)] + [results[r].splits[i].accuracy for r in results]
                 for i, s in enumerate(splits)]
    per_split.append(["mean", None, None] + [results[r].accuracy for r in results])
    return ProbeResult(
        title=TITLE, model=model_name, dataset=f"images:{dataset.root}",
        tables=[
            {"title": f"Linear probe top-1 accuracy on {dataset.root.name} ({len(dataset.classes)} classes); "
                      "the paper's numbers are on ImageNet",
             "columns": ["method", "ours", "paper"], "rows": rows},
            {"title": "Top-1 accuracy per split", "columns": ["split", "train images", "test images", *results],
             "rows": per_split},
        ],
        metrics={
            "dataset": {"root": str(dataset.root), "classes": list(dataset.classes), "images": len(dataset.examples),
                        "split_rule": describe_split_rule(dataset, splits),
                        "skipped": [{"path": p, "reason": r} for p, r in dataset.skipped]},
            "feature_dim": next(iter(results.values())).dim,
            "classifier": {"name": "multinomial logistic regression on z-scored features", "C": C},
            "timing": {"extract_seconds": round(extract_seconds, 2)},
            **{row: {"accuracy": r.accuracy, "accuracy_std": r.std,
                     "splits": [{"name": s.name, "train": s.n_train, "test": s.n_test, "accuracy": s.accuracy,
                                 "notes": list(s.notes)} for s in r.splits],
                     "confusion": r.confusion.tolist()}
               for row, r in results.items()},
        },
        config=config, files=dataset, splits=splits, results=results,
    )

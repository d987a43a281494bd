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

import argparse
import sys
import time
from typing import Any, Iterator

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..errors import DatasetError, InputError, MediaError
from ..media import load_image
from ..models import L3Net, build_model
from . import paper
from .common import add_common_arguments, eval_dir, load_eval_model, save_figure, write_result
from .datasets import LabelledFiles, describe_split_rule, format_skipped, read_image_folder
from .features import image_features
from .sound import FeatureResult, classify_recordings, confusion_figure, is_untrained

HELP = "Table 3: linear probe (top-1) on frozen conv4_2 image features, trained vs random weights"
DESCRIPTION = """Table 3 of the paper on your images: a linear classifier (one layer, cross-entropy) on the
frozen vision tower's conv4_2 features (after ReLU, max-pooled to 4x4xC = 8192-D for the paper
preset) of 256 x 256 centre crops, with the same architecture's random weights evaluated beside it
on the same splits. Top-1 accuracy per split and the mean, confusion matrices and the paper's
Table 3 beside ours go to OUT/eval/probe.json and probe_confusion.png.

Images: one sub-folder per class (DIR/<class>/*.jpg); with DIR/train/<class>/ and DIR/val/<class>/
(or test/) that split is used, else stratified cross-validation (--folds). Unreadable images are
listed and skipped.

Examples:
  l3net eval probe --model runs/flickr --images ~/data/my_photos
  l3net eval probe --model random:small --images photos --out results
"""

#: The probe's L2 regularisation (inverse strength). The paper trains on ImageNet's 1.28 M images
#: without saying; on small sets with thousands of z-scored dimensions a firm default generalises.
DEFAULT_C = 0.01
MAX_ITER = 2000
TRAINED_ROW, RANDOM_ROW = "L3-Net", "L3 random weights"


def make_probe(C: float = DEFAULT_C) -> Any:
    """z-scoring (training statistics) + multinomial logistic regression: one linear layer, cross-entropy."""
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


def evaluate_probe(
    dataset: LabelledFiles,
    models: dict[str, L3Net],
    *,
    C: float = DEFAULT_C,
    n_splits: int = 5,
    seed: int = 0,
    batch_size: int = 32,
    precision: str = "fp32",
    progress: bool = True,
) -> tuple[LabelledFiles, list, dict[str, FeatureResult], float]:
    """Probe accuracy of each model (row name -> model) on the same splits.

    Returns the dataset actually used (unreadable images dropped), the splits, the result per row
    and the seconds spent extracting features.
    """
    start = time.perf_counter()
    features: dict[str, np.ndarray] = {}
    for i, (row, model) in enumerate(models.items()):
        feats, kept = probe_features(dataset, model, batch_size=batch_size, precision=precision,
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
    return dataset, splits, results, extract_seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, metavar="DIR",
                        help="folder of images, one sub-folder per class (optionally inside train/ and val/)")
    add_common_arguments(parser)
    parser.add_argument("--probe-c", type=float, default=DEFAULT_C,
                        help=f"inverse L2 regularisation of the linear layer (default: {DEFAULT_C:g})")
    parser.add_argument("--folds", type=int, default=5,
                        help="cross-validation splits when the folder has no train/ val/ split (default: 5)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    if not args.probe_c > 0:
        raise InputError(f"--probe-c must be positive, got {args.probe_c}")
    if args.folds < 2:
        raise InputError(f"--folds must be at least 2, got {args.folds}")
    dataset = read_image_folder(args.images)
    if dataset.skipped:
        print(f"skipping {len(dataset.skipped)} file(s):\n{format_skipped(dataset.skipped)}", file=sys.stderr)
    model, label = load_eval_model(args.model, device=args.device, seed=args.seed)
    out = eval_dir(args.model, args.out)  # before any feature is computed: is there somewhere to write?
    untrained = is_untrained(args.model)
    models = {RANDOM_ROW if untrained else TRAINED_ROW: model}
    if not untrained:  # the paper's random-weights row: same architecture, fresh weights, same run
        device = next(model.parameters()).device
        models[RANDOM_ROW] = build_model(model.config, seed=args.seed).to(device).eval()
    used, splits, results, seconds = evaluate_probe(
        dataset, models, C=args.probe_c, n_splits=args.folds, seed=args.seed,
        batch_size=args.batch_size, precision=args.precision, progress=not args.no_progress,
    )
    newly = used.skipped[len(dataset.skipped):]
    if newly:
        print(f"could not read {len(newly)} image(s), skipped:\n{format_skipped(newly)}", file=sys.stderr)

    rows = [[method, results[method].accuracy if method in results else None, value]
            for method, value in paper.IMAGE_PROBE.items()]
    per_split = [[s.name, len(s.train), len(s.test)] + [results[r].splits[i].accuracy for r in results]
                 for i, s in enumerate(splits)]
    per_split.append(["mean", None, None] + [results[r].accuracy for r in results])
    panels = [(f"{row}: top-1 {r.accuracy:.1%}", r.confusion) for row, r in results.items()]
    figure_path = save_figure(confusion_figure(panels, used.classes), out / "probe_confusion.png")
    dim = next(iter(results.values())).dim
    payload = {
        "title": "Image classification linear probe (Table 3)",
        "model": label,
        "dataset": f"images:{used.root}",
        "tables": [
            {"title": f"Linear probe top-1 accuracy on {used.root.name} ({len(used.classes)} classes); "
                      "the paper's numbers are on ImageNet",
             "columns": ["method", "ours", "paper"], "rows": rows},
            {"title": "Top-1 accuracy per split", "columns": ["split", "train images", "test images", *results],
             "rows": per_split},
        ],
        "figures": [{"path": figure_path.name,
                     "caption": "Confusion matrices of the linear probe over all test images (rows: true class)"}],
        "metrics": {
            "dataset": {"root": str(used.root), "classes": list(used.classes), "images": len(used.examples),
                        "split_rule": describe_split_rule(used, splits),
                        "skipped": [{"path": p, "reason": r} for p, r in used.skipped]},
            "feature_dim": dim,
            "classifier": {"name": "multinomial logistic regression on z-scored features", "C": args.probe_c},
            "timing": {"extract_seconds": round(seconds, 2)},
            **{row: {"accuracy": r.accuracy, "accuracy_std": r.std,
                     "splits": [{"name": s.name, "train": s.n_train, "test": s.n_test, "accuracy": s.accuracy,
                                 "notes": list(s.notes)} for s in r.splits],
                     "confusion": r.confusion.tolist()}
               for row, r in results.items()},
        },
    }
    path = write_result(out, "probe", payload)
    for row, r in results.items():
        print(f"{row:>18}: top-1 {r.accuracy:.1%} (+- {r.std:.1%} over {len(r.splits)} splits), {dim}-D features")
    print(f"{len(used.examples)} images, {len(used.classes)} classes, {describe_split_rule(used, splits)}")
    print(f"wrote {path} and {figure_path}")
    return 0

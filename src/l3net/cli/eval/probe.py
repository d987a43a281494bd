"""``l3net eval probe``: Table 3 (:func:`l3net.evaluate.probe.evaluate_probe`)."""

from __future__ import annotations

import argparse

from ...evaluate.probe import ProbeConfig
from ._common import add_common_arguments, config_defaults, eval_dir, load_model, say, write_and_report

_D = config_defaults(ProbeConfig)

HELP = "Table 3: linear probe (top-1) on frozen conv4_2 image features, trained vs random weights"
DESCRIPTION = """Table 3 of the paper on your images: a linear classifier (one layer, cross-entropy) on the
frozen vision tower's conv4_2 features (after ReLU, max-pooled to 4x4xC = 8192-D for the paper
preset) of 256 x 256 centre crops, with the same architecture's random weights (from --seed + 1000)
evaluated beside it on the same splits. Top-1 accuracy per split and the mean, confusion matrices
and the paper's Table 3 beside ours go to OUT/eval/probe.json and probe_confusion.png.

Images: one sub-folder per class (DIR/<class>/*.jpg); with DIR/train/<class>/ and DIR/val/<class>/
(or test/) that split is used, else stratified cross-validation (--folds). Unreadable images are
listed and skipped.

Examples:
  l3net eval probe --model runs/flickr --images ~/data/my_photos
  l3net eval probe --model random:small --images photos --out results
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, metavar="DIR",
                        help="folder of images, one sub-folder per class (optionally inside train/ and val/)")
    add_common_arguments(parser, ProbeConfig)
    parser.add_argument("--probe-c", type=float, default=_D["C"],
                        help=f"inverse L2 regularisation of the linear layer (default: {_D['C']:g})")
    parser.add_argument("--folds", type=int, default=_D["n_splits"],
                        help=f"cross-validation splits when the folder has no train/ val/ split (default: {_D['n_splits']})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ...errors import InputError
    from ...evaluate.datasets import describe_split_rule, format_skipped, read_image_folder
    from ...evaluate.probe import evaluate_probe

    if not args.probe_c > 0:
        raise InputError(f"--probe-c must be positive, got {args.probe_c}")
    if args.folds < 2:
        raise InputError(f"--folds must be at least 2, got {args.folds}")
    config = ProbeConfig(C=args.probe_c, n_splits=args.folds, seed=args.seed, batch_size=args.batch_size,
                         precision=args.precision, progress=not args.no_progress)
    dataset = read_image_folder(args.images)
    if dataset.skipped:
        say(f"skipping {len(dataset.skipped)} file(s):\n{format_skipped(dataset.skipped)}")
    resolved = load_model(args)
    out = eval_dir(args.model, args.out)  # before any feature is computed: is there somewhere to write?
    result = evaluate_probe(dataset, resolved.model, config, untrained=resolved.untrained, model_name=resolved.label)
    newly = result.files.skipped[len(dataset.skipped):]
    if newly:
        say(f"could not read {len(newly)} image(s), skipped:\n{format_skipped(newly)}")
    write_and_report(out, result)
    for row, r in result.results.items():
        print(f"{row:>18}: top-1 {r.accuracy:.1%} (+- {r.std:.1%} over {len(r.splits)} splits), "
              f"{result.metrics['feature_dim']}-D features")
    print(f"{len(result.files.examples)} images, {len(result.files.classes)} classes, "
          f"{describe_split_rule(result.files, result.splits)}")
    return 0

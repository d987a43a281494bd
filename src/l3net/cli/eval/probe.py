"""``l3net eval probe``: Table 3 (:func:`l3net.evaluate.probe.inmemory.evaluate_probe`, or streamed at ImageNet's
scale: :func:`l3net.evaluate.probe.stream.evaluate_probe_stream`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ...evaluate.probe import ProbeConfig
from ...evaluate.probe.stream import AUTO_LBFGS_MAX_IMAGES, SOLVERS, StreamProbeConfig
from ...modelspec import resolve_model
from ._common import (
    add_common_arguments, add_random_seeds_argument, config_defaults, eval_dir, positive, say,
    write_and_report,
)

if TYPE_CHECKING:
    from ...evaluate.datasets import LabelledFiles

_D = config_defaults(ProbeConfig)
_S = config_defaults(StreamProbeConfig)
#: The streamed probe's training state, in the eval/ folder (kept: it holds the trained linear layers).
CHECKPOINT_NAME = "probe_checkpoint.pt"

HELP = "Table 3: linear probe (top-1, top-5) on frozen conv4_2 image features, trained vs random weights"
DESCRIPTION = f"""Table 3 of the paper on your images: a linear classifier (one layer, cross-entropy) on the
frozen vision tower's conv4_2 features (after ReLU, max-pooled to 4x4xC = 8192-D for the paper
preset), with the same architecture's random weights (from --seed + 1000) evaluated beside it on the
same images. Results and the paper's Table 3 beside ours go to OUT/eval/probe.json (and
probe_confusion.png up to 50 classes).

Images: one sub-folder per class (DIR/<class>/*.jpg), or ImageNet's layout: DIR/train/<class>/*.JPEG
and DIR/val/ as class folders or flat with a labels file (LOC_val_solution.csv, or 'file,label'
lines; --val-labels, else looked for in DIR and DIR/val). Unreadable images are listed and skipped.

Solvers (--solver, default auto):
  lbfgs  features of 256 x 256 centre crops held in memory, scikit-learn's multinomial logistic
         regression (C = --probe-c); cross-validation (--folds) unless the folder has train/ and val/.
  adam   the paper's protocol, streamed (memory does not grow with the data): a DataLoader with
         --workers decodes and augments (Inception's random-size crop, flip, colour distortion),
         the linear layer is trained with Adam, label smoothing 0.1 and Inception-v3's schedule
         (x 0.94 every 2 epochs); top-1 and top-5 on val's centre crops. Checkpointed to
         OUT/eval/{CHECKPOINT_NAME} (every --checkpoint-every steps and each epoch); --resume
         continues an interrupted run. Without train/ and val/, 1/--folds of each class is held out.
  auto   lbfgs up to {AUTO_LBFGS_MAX_IMAGES:,} images, adam above.

Examples:
  l3net eval probe --model runs/flickr --images ~/data/my_photos
  l3net eval probe --model random:small --images photos --out results
  l3net eval probe --model runs/flickr --images /data/imagenet --val-labels /data/imagenet/LOC_val_solution.csv \\
      --device cuda --precision bf16 --workers 15          # Table 3 on ImageNet: docs/recipes/imagenet-probe.md
  (the same command + --resume continues it after an interruption)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, metavar="DIR",
                        help="folder of images: one sub-folder per class, or train/<class>/ and val/ (ImageNet)")
    parser.add_argument("--val-labels", metavar="FILE",
                        help="labels of a flat val/ folder: ImageNet's LOC_val_solution.csv or 'file,label' lines "
                        "(default: LOC_val_solution.csv, val_labels.csv... found in DIR or DIR/val)")
    add_common_arguments(parser, ProbeConfig)
    add_random_seeds_argument(parser, ProbeConfig)
    parser.add_argument("--solver", choices=SOLVERS, default="auto",
                        help=f"lbfgs (in memory), adam (streamed, the paper's) or auto: lbfgs up to "
                        f"{AUTO_LBFGS_MAX_IMAGES:,} images (default: auto)")
    parser.add_argument("--probe-c", type=float, default=_D["C"],
                        help=f"lbfgs: inverse L2 regularisation of the linear layer (default: {_D['C']:g})")
    parser.add_argument("--folds", type=int, default=_D["n_splits"],
                        help=f"without train/ and val/: lbfgs cross-validation splits, adam holds out 1/FOLDS of "
                        f"each class (default: {_D['n_splits']})")
    stream = parser.add_argument_group("streamed training (--solver adam)")
    stream.add_argument("--epochs", type=int, default=_S["epochs"],
                        help=f"passes over the training images (default: {_S['epochs']})")
    stream.add_argument("--lr", type=float, default=_S["lr"],
                        help=f"Adam's initial learning rate, x {_S['lr_decay']} every {_S['lr_decay_epochs']:g} "
                        f"epochs (default: {_S['lr']:g})")
    stream.add_argument("--label-smoothing", type=float, default=_S["label_smoothing"],
                        help=f"label smoothing of the cross-entropy (default: {_S['label_smoothing']:g}, Inception-v3's)")
    stream.add_argument("--workers", type=int, default=_S["workers"],
                        help=f"DataLoader processes decoding images (0: none; default: {_S['workers']}, "
                        "one fewer than this machine's CPUs, at most 16)")
    stream.add_argument("--checkpoint-every", type=int, default=_S["checkpoint_every"],
                        help=f"steps between checkpoints, besides each epoch's end (default: {_S['checkpoint_every']})")
    stream.add_argument("--resume", action="store_true",
                        help=f"continue from OUT/eval/{CHECKPOINT_NAME} (same images and settings; more --epochs is fine)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ...errors import InputError
    from ...evaluate.probe.data import count_images, find_split_dirs
    from ...evaluate.probe.stream import choose_solver

    if not args.probe_c > 0:
        raise InputError(f"--probe-c must be positive, got {args.probe_c}")
    positive("folds", args.folds, 2)
    root = Path(args.images).expanduser()
    solver = choose_solver(args.solver, count_images(root) if args.solver == "auto" and root.is_dir() else 0)
    train_dir, val_dir = find_split_dirs(root) if root.is_dir() else (None, None)
    flat_val = val_dir is not None and not any(p.is_dir() and not p.name.startswith(".") for p in val_dir.iterdir())
    if solver == "lbfgs" and not flat_val and args.val_labels is None:
        return _run_lbfgs(args)  # the class-folder layouts, read as before (5-fold CV without train/ val/)
    return _run_stream(args, solver)


def _run_lbfgs(args: argparse.Namespace, dataset: "LabelledFiles | None" = None) -> int:
    from ...evaluate.datasets import describe_split_rule, format_skipped, read_image_folder
    from ...evaluate.probe import evaluate_probe

    config = ProbeConfig(C=args.probe_c, n_splits=args.folds, seed=args.seed, batch_size=args.batch_size,
                         precision=args.precision, progress=not args.no_progress, random_seeds=args.random_seeds)
    dataset = dataset or read_image_folder(args.images)
    if dataset.skipped:
        say(f"skipping {len(dataset.skipped)} file(s):\n{format_skipped(dataset.skipped)}")
    resolved = resolve_model(args.model, device=args.device, seed=args.seed)
    out = eval_dir(args.model, args.out)  # before any feature is computed: is there somewhere to write?
    result = evaluate_probe(dataset, resolved.model, config, untrained=resolved.untrained, model_name=resolved.label)
    newly = result.files.skipped[len(dataset.skipped):]
    if newly:
        say(f"could not read {len(newly)} image(s), skipped:\n{format_skipped(newly)}")
    write_and_report(out, result)
    from ...evaluate.probe import RANDOM_ROW
    from ...evaluate.result import spread_text

    for row, r in result.results.items():
        score = (f"top-1 {spread_text(result.metrics['random_weights'])}" if row == RANDOM_ROW
                 else f"top-1 {r.accuracy:.1%} (+- {r.std:.1%} over {len(r.splits)} splits)")
        print(f"{row:>18}: {score}, {result.metrics['feature_dim']}-D features")
    print(f"{len(result.files.examples)} images, {len(result.files.classes)} classes, "
          f"{describe_split_rule(result.files, result.splits)}")
    return 0


def _run_stream(args: argparse.Namespace, solver: str) -> int:
    from ...errors import InputError
    from ...evaluate.datasets import format_skipped
    from ...evaluate.probe.data import read_probe_images, to_labelled_files
    from ...evaluate.probe.stream import evaluate_probe_stream

    images = read_probe_images(args.images, val_labels=args.val_labels, n_splits=args.folds, seed=args.seed)
    if solver == "lbfgs":  # a flat val/ with a labels file, small enough for memory
        return _run_lbfgs(args, to_labelled_files(images))
    config = StreamProbeConfig(epochs=args.epochs, lr=args.lr, label_smoothing=args.label_smoothing,
                               batch_size=args.batch_size, workers=args.workers,
                               checkpoint_every=args.checkpoint_every, n_splits=args.folds, seed=args.seed,
                               random_seeds=args.random_seeds, precision=args.precision, progress=not args.no_progress)
    if images.skipped:
        say(f"skipping {len(images.skipped)} file(s):\n{format_skipped(images.skipped)}")
    out = eval_dir(args.model, args.out)
    checkpoint = out / CHECKPOINT_NAME
    if checkpoint.exists() and not args.resume:
        raise InputError(f"{checkpoint} exists (an earlier streamed probe): pass --resume to continue it, "
                         "or delete it to start over")
    resolved = resolve_model(args.model, device=args.device, seed=args.seed)
    say(f"{len(images.train)} training and {len(images.val)} validation images, {len(images.classes)} classes "
        f"({images.layout}); {config.epochs} epoch(s) of {-(-len(images.train) // config.batch_size)} steps")
    result = evaluate_probe_stream(images, resolved.model, config, untrained=resolved.untrained,
                                   model_name=resolved.label, checkpoint=checkpoint, resume=args.resume)
    newly = [(s["path"], s["reason"]) for s in result.metrics["dataset"]["skipped"]][len(images.skipped):]
    if newly:
        say(f"could not read {len(newly)} image(s), skipped:\n{format_skipped(newly)}")
    write_and_report(out, result)
    for row, r in result.results.items():
        over = f" (mean of {len(result.random_results)} random networks)" if row == "L3 random weights" else ""
        print(f"{row:>18}: top-1 {r.top1:.1%}, top-5 {r.top5:.1%} on {r.val_images} validation images{over}, "
              f"{result.metrics['feature_dim']}-D features")
    print(f"linear layers and training state: {checkpoint}")
    return 0

"""``l3net eval sound``: Table 2 (:func:`l3net.evaluate.sound.evaluate_sound`)."""

from __future__ import annotations

import argparse

import numpy as np

from ...evaluate.sound import C_GRID, FEATURE_SETS, L3_ROW, MFCC_ROW, SoundConfig
from ...modelspec import resolve_model
from ._common import (
    add_common_arguments,
    add_random_seeds_argument,
    config_defaults,
    eval_dir,
    say,
    write_and_report,
)

_D = config_defaults(SoundConfig)

HELP = "Table 2: sound classification transfer (ESC-50, DCASE 2013 or your labelled audio), L3 vs MFCC"
DESCRIPTION = """Table 2 of the paper on your data: sound classification with a linear SVM on the frozen
audio tower's conv4_2 features (before ReLU, max-pooled to 4x3xC), beside the MFCC + SVM baseline
computed on the same splits.

Every recording is cut into 1 s subclips (10 per 5 s ESC-50 clip, 60 per 30 s DCASE clip, 2 per
second for other lengths; clips under 1 s are padded); features are z-scored with training-split
statistics; a one-vs-all linear SVM scores each subclip and a recording's scores are the mean of its
subclips'. The SVM's C is chosen inside each training split by 3-fold cross-validation whose folds
keep groups together (a recording's subclips; speakers when labels.csv has a group column; ESC-50's
folds), unless --svm-c fixes it; the C chosen per split, and any fit that stopped at its iteration
limit, are in the JSON. With a random model (--model random...), the "L3 random weights" row is the
mean and spread over --random-seeds random networks (weights from --seed, --seed + 1, ...): each
costs one more decoding and forward pass over the dataset. Accuracy per split and the mean, a
confusion matrix, and the paper's Table 2 beside ours (each paper number labelled: the paper's own
result, or a published baseline it quotes) are written to OUT/eval/sound.json and sound_confusion.png.

Datasets:
  esc50:DIR       ESC-50 as published (DIR/audio/*.wav, DIR/meta/esc50.csv); leave-one-fold-out
  dcase2013:DIR   DCASE 2013 scenes (DIR/scenes_stereo/ [+ DIR/scenes_stereo_testset/])
  folder:DIR      one sub-folder per class, or DIR/labels.csv (path,label[,fold|group]);
                  without folds: stratified cross-validation, keeping each group together

Examples:
  l3net eval sound --model runs/flickr --dataset esc50:~/data/ESC-50
  l3net eval sound --model random:small --dataset folder:my_sounds --out results
  l3net eval sound --model small --features mfcc --dataset dcase2013:~/data/dcase2013 --out results
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, metavar="KIND:DIR",
                        help="esc50:DIR, dcase2013:DIR or folder:DIR|CSV (a bare DIR: the layout is detected)")
    add_common_arguments(parser, SoundConfig)
    parser.add_argument("--features", default="both", choices=("both", *FEATURE_SETS),
                        help="which rows to compute: the L3 features, the MFCC baseline, or both (default)")
    parser.add_argument("--svm-c", type=_svm_c, default=_D["C"],
                        help=f"the SVMs' regularisation C, or 'auto' to choose it by grouped cross-validation inside "
                        f"each training split from {', '.join(f'{c:g}' for c in C_GRID)} (default: {_D['C']}; "
                        "about 16 SVM fits per split instead of one)")
    parser.add_argument("--folds", type=int, default=_D["n_splits"],
                        help=f"cross-validation splits for datasets without predefined folds (default: {_D['n_splits']})")
    add_random_seeds_argument(parser, SoundConfig, random_model_only=True)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _svm_c(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'auto', got {text!r}") from None
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"C must be a positive number, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from ...errors import InputError
    from ...evaluate.datasets import describe_split_rule, format_skipped, load_audio_dataset
    from ...evaluate.sound import evaluate_sound

    if args.folds < 2:
        raise InputError(f"--folds must be at least 2, got {args.folds}")
    if args.random_seeds < 1:
        raise InputError(f"--random-seeds must be at least 1, got {args.random_seeds}")
    feature_sets = FEATURE_SETS if args.features == "both" else (args.features,)
    config = SoundConfig(feature_sets=feature_sets, C=args.svm_c, n_splits=args.folds, seed=args.seed,
                         random_seeds=args.random_seeds,
                         batch_size=args.batch_size, precision=args.precision, progress=not args.no_progress)
    dataset = load_audio_dataset(args.dataset)
    if dataset.skipped:
        say(f"skipping {len(dataset.skipped)} file(s):\n{format_skipped(dataset.skipped)}")
    resolved = resolve_model(args.model, device=args.device, seed=args.seed) if "l3" in feature_sets else None
    out = eval_dir(args.model, args.out)  # before hours of work: is there somewhere to write?
    result = evaluate_sound(
        dataset, resolved.model if resolved else None, config,
        model_name=resolved.label if resolved else "", untrained=bool(resolved and resolved.untrained),
    )
    newly = result.files.skipped[len(dataset.skipped):]
    if newly:
        say(f"could not decode {len(newly)} file(s), skipped:\n{format_skipped(newly)}")
    write_and_report(out, result)
    untrained = bool(resolved and resolved.untrained)
    for name, feature in result.results.items():
        row = L3_ROW[untrained] if name == "l3" else MFCC_ROW
        spread = result.metrics.get("random_weights") if name == "l3" else None
        if spread:
            print(f"{row:>18}: {spread['mean']:.1%} +- {spread['std']:.1%} over {spread['n']} random networks "
                  f"(seeds {', '.join(map(str, spread['seeds']))}; {spread['min']:.1%} to {spread['max']:.1%})")
        else:
            print(f"{row:>18}: {feature.accuracy:.1%} (+- {feature.std:.1%} over {len(feature.splits)} splits)")
    print(f"{result.n_subclips} subclips of {len(result.files.examples)} recordings, "
          f"{describe_split_rule(result.files, result.splits)}")
    return 0

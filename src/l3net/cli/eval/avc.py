"""``l3net eval avc``: Table 1's AVC accuracy (:func:`l3net.evaluate.avc.evaluate_avc`)."""

from __future__ import annotations

import argparse

from ...evaluate.avc import AVCConfig
from ...modelspec import resolve_model
from ._common import add_common_arguments, config_defaults, eval_dir, write_and_report

_D = config_defaults(AVCConfig)

HELP = "Table 1: audio-visual correspondence accuracy on a split's fixed balanced pairs"
DESCRIPTION = """Score the fixed, seeded, balanced evaluation pairs of a shard split (half corresponding
frame/clip pairs, half frames paired with another video's audio; centre crop, no augmentation)
with the model's forward pass and report the AVC accuracy (chance 50 %), beside the paper's
Table 1. When the shards carry labels, accuracy per class is reported too (a pair counts under
the class of its image). Use '--model random:RUN_DIR --out DIR' for the untrained row.

example:
  l3net eval avc --model runs/small --data shards/ --split test
  -> runs/small/eval/avc.json, avc_scores.png (and avc_per_class.png with labels)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="SHARDS", help="a shard directory (l3net prepare)")
    parser.add_argument("--split", default=_D["split"], choices=("train", "val", "test"),
                        help=f"split whose pairs are scored (default: {_D['split']})")
    parser.add_argument("--pairs-per-video", type=int, default=_D["pairs_per_video"],
                        help=f"evaluation pairs per video, alternately positive and negative (default: {_D['pairs_per_video']})")
    parser.add_argument("--workers", type=int, default=_D["num_workers"],
                        help=f"DataLoader worker processes decoding pairs (default: {_D['num_workers']})")
    add_common_arguments(parser, AVCConfig)


def run(args: argparse.Namespace) -> int:
    from ...errors import InputError
    from ...evaluate.avc import evaluate_avc, read_supervised_rows
    from ...evaluate.inputs import open_shards

    if args.workers < 0:
        raise InputError(f"--workers must be 0 or more, got {args.workers}")
    shards = open_shards(args.data)  # a wrong --data fails before anything is created
    out = eval_dir(args.model, args.out)  # an unwritable place fails before any work
    resolved = resolve_model(args.model, device=args.device, seed=args.seed)
    config = AVCConfig(split=args.split, pairs_per_video=args.pairs_per_video, batch_size=args.batch_size,
                       num_workers=args.workers, device=args.device, precision=args.precision, seed=args.seed)
    result = evaluate_avc(
        resolved.model, shards, config, model_name=resolved.label,
        supervised=read_supervised_rows(out, shards, args.split, args.pairs_per_video, args.seed),
    )
    write_and_report(out, result)
    return 0

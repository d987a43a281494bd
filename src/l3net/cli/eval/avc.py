"""``l3net eval avc``: Table 1's AVC accuracy (:func:`l3net.evaluate.avc.evaluate_avc`)."""

from __future__ import annotations

import argparse

from ...evaluate.avc import PAIRS_PER_VIDEO
from ._common import add_common_arguments, eval_dir, load_model, write_and_report

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
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="split whose pairs are scored (default: test)")
    parser.add_argument("--pairs-per-video", type=int, default=PAIRS_PER_VIDEO,
                        help=f"evaluation pairs per video, alternately positive and negative (default: {PAIRS_PER_VIDEO})")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes decoding pairs (default: 0)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ...errors import InputError
    from ...evaluate.avc import evaluate_avc, read_supervised_rows
    from ...evaluate.inputs import open_shards

    if args.workers < 0:
        raise InputError(f"--workers must be 0 or more, got {args.workers}")
    shards = open_shards(args.data)  # a wrong --data fails before anything is created
    out = eval_dir(args.model, args.out)  # an unwritable place fails before any work
    resolved = load_model(args)
    result = evaluate_avc(
        resolved.model, shards, args.split, model_name=resolved.label,
        supervised=read_supervised_rows(out, shards, args.split, args.pairs_per_video, args.seed),
        pairs_per_video=args.pairs_per_video, batch_size=args.batch_size, num_workers=args.workers,
        device=args.device, precision=args.precision, seed=args.seed,
    )
    write_and_report(out, result)
    return 0

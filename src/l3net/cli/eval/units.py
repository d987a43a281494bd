"""``l3net eval units``: Section 3.5.3, Figures 3-9 (:func:`l3net.evaluate.units.evaluate_units`)."""

from __future__ import annotations

import argparse

from ...evaluate.units import UnitsConfig
from ...modelspec import resolve_model
from ._common import add_common_arguments, add_random_seeds_argument, config_defaults, eval_dir, write_and_report

_D = config_defaults(UnitsConfig)

HELP = "Section 3.5.3 and Figures 3-9: top inputs of pool4 units, heatmaps, classes with high-preference units"
DESCRIPTION = """For every pool4 unit of each tower, rank the test inputs (frames for vision, 1 s clips
for audio) by the unit's activation and keep its top 5. Picture grids show the top 5 frames of a
few units with the unit's conv4_2 heatmap over them (Figures 3-6 and 8), the top 5 spectrograms
with theirs (Figure 9), and the audio units' top clips as their video frames above their
spectrograms and heatmaps (Figure 7).

With labelled shards, also count the classes that have a high-preference unit (at least 4, or 3,
of some unit's top 5 are of that class) for the trained network and for the same architecture with
random weights (the mean and spread over --random-seeds networks, weights from --seed + 1000,
+ 1001, ...; with --model random, the model is the first of them), in the same run, with the
paper's numbers beside (Section 3.5.3). Unlabelled shards (like the paper's Flickr-SoundNet) give the pictures only: the counts
need labels, and the result says so.

Each test video gives --per-video frames (equally spaced) and the 1 s clip centred on each.

example:
  l3net eval units --model runs/small --data shards/
  -> runs/small/eval/units.json, units_vision.png, units_audio.png, units_audio_frames.png,
     units_counts.png (labelled shards only)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="SHARDS", help="a shard directory (l3net prepare), labelled or not")
    parser.add_argument("--split", default=_D["split"], choices=("train", "val", "test"),
                        help=f"split whose inputs are ranked (default: {_D['split']})")
    parser.add_argument("--per-video", type=int, default=_D["per_video"],
                        help=f"frames (and centred 1 s clips) per test video (default: {_D['per_video']})")
    parser.add_argument("--classes", nargs="+", metavar="CLASS",
                        help="rank only inputs of these classes (labelled shards; default: all)")
    parser.add_argument("--figure-units", type=int, default=_D["figure_units"],
                        help=f"units drawn in each picture grid (default: {_D['figure_units']}; 0: no grids)")
    add_common_arguments(parser, UnitsConfig)
    add_random_seeds_argument(parser, UnitsConfig)


def run(args: argparse.Namespace) -> int:
    from ...errors import InputError
    from ...evaluate.inputs import class_names, open_shards, select_classes
    from ...evaluate.units import evaluate_units

    if args.figure_units < 0 or args.per_video < 1 or args.random_seeds < 1:
        raise InputError(f"--figure-units must be 0 or more, --per-video and --random-seeds at least 1 "
                         f"(got {args.figure_units}, {args.per_video} and {args.random_seeds})")
    shards = open_shards(args.data)  # a wrong --data fails before anything is created
    if args.classes:
        select_classes(class_names(shards, "--classes"), args.classes)
    out = eval_dir(args.model, args.out)  # an unwritable place fails before any work
    resolved = resolve_model(args.model, device=args.device, seed=args.seed)
    config = UnitsConfig(
        split=args.split, per_video=args.per_video, classes=tuple(args.classes) if args.classes else None,
        figure_units=args.figure_units, batch_size=args.batch_size, device=args.device, precision=args.precision,
        seed=args.seed, random_seeds=args.random_seeds,
    )
    result = evaluate_units(resolved.model, shards, config, model_name=resolved.label, untrained=resolved.untrained)
    write_and_report(out, result)
    return 0

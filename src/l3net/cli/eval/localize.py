"""``l3net eval localize``: the pointing game (:func:`l3net.evaluate.localize.evaluate_localization`)."""

from __future__ import annotations

import argparse

from ...evaluate.localize import LocalizeConfig
from ...localize import DEFAULT_FPS
from ...modelspec import resolve_model
from ._common import (
    add_common_arguments,
    add_random_seeds_argument,
    config_defaults,
    eval_dir,
    is_run_dir,
    say,
    write_and_report,
)

_D = config_defaults(LocalizeConfig)

HELP = "Pointing game: is the heatmap's peak inside the sounding object's box? (synthetic world)"
DESCRIPTION = """The pointing game on videos whose sounding object has a known box (the synthetic world
of 'l3net synth', or its shards): for each frame, the heatmap of 'l3net localize' (the fusion head
applied at every conv4_2 location with the audio embedding of the 1 s clip centred on the frame)
scores a hit when its peak lies inside the box of the object making the sound. Compared with a
centre guess (the frame centre as the "peak") and with the same architecture with random weights:
the mean and spread over --random-seeds networks (weights from --seed + 1000, + 1001, ...; with a
random --model, the model and --seed + 1, ...). Frames whose sounding object is off-screen or
absent are left out (their count is in the JSON).

Writes eval/localize.json (table + metrics) and eval/localize_examples.png (frames, heatmaps,
boxes, peaks).

example:
  l3net eval localize --model runs/small --data shards/
  l3net eval localize --model random:small --data shards/ --out results/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        help="shards of a world with boxes ('l3net prepare' of 'l3net synth' output), or the 'l3net synth' "
        "folder itself (videos with NAME.boxes.json)",
    )
    parser.add_argument("--split", default="test", help="shard split to evaluate (default: test)")
    parser.add_argument(
        "--fps", type=float, default=DEFAULT_FPS, help=f"frames per second read from videos (default: {DEFAULT_FPS:g}; "
        "shards keep their own frames)"
    )
    parser.add_argument("--max-videos", type=int, help="use at most this many videos (default: all)")
    parser.add_argument(
        "--tolerance", type=float, default=_D["tolerance"],
        help=f"grow each box by this many pixels (default: {_D['tolerance']:g}; 0 is a strict hit)"
    )
    parser.add_argument("--examples", type=int, default=_D["figure_examples"],
                        help=f"examples drawn in the figure (default: {_D['figure_examples']})")
    add_common_arguments(parser, LocalizeConfig)
    add_random_seeds_argument(parser, LocalizeConfig)


def run(args: argparse.Namespace) -> int:
    from ...errors import InputError
    from ...evaluate.localize import evaluate_localization, load_boxed_frames

    if args.tolerance < 0:
        raise InputError(f"--tolerance must be >= 0, got {args.tolerance}")
    if args.random_seeds < 1:
        raise InputError(f"--random-seeds must be at least 1, got {args.random_seeds}")
    if args.max_videos is not None and args.max_videos <= 0:
        raise InputError(f"--max-videos must be positive, got {args.max_videos}")
    config = LocalizeConfig(tolerance=args.tolerance, batch_size=args.batch_size, precision=args.precision,
                            seed=args.seed, figure_examples=args.examples, random_seeds=args.random_seeds)
    if args.out is None and not is_run_dir(args.model):
        eval_dir(args.model, None, create=False)  # the clear "pass --out" error, before any work
    resolved = resolve_model(args.model, device=args.device, seed=args.seed)
    examples, counts = load_boxed_frames(args.data, split=args.split, fps=args.fps, max_videos=args.max_videos)
    for message in counts["unreadable"]:
        say(f"l3net eval localize: skipped {message}")
    result = evaluate_localization(
        resolved.model, examples, counts, config, model_name=resolved.label, untrained=resolved.untrained,
        dataset=str(args.data), split=args.split, fps=args.fps,
    )
    out = eval_dir(args.model, args.out)  # created only now: a bad model or data leaves no empty folder
    write_and_report(out, result)
    return 0

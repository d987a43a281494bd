"""``l3net synth``: write a synthetic audio-visual world (real MP4 videos with known answers)."""

from __future__ import annotations

import argparse
import os

from ..data.synth import MAX_CLASSES, WorldConfig, make_world

HELP = "Generate a synthetic audio-visual world: MP4 videos, labels.csv and ground-truth boxes"
DESCRIPTION = f"""Generate a synthetic audio-visual world for trying l3net without a dataset, and for tests.

A class is what an untrained network does not capture for free: in the picture, the object's
outline and a part drawn inside it; in the sound, its timbre and its temporal pattern. Everything
else is drawn per video, the same way for every class: the object's colours, texture and scale,
the background and its clutter, distractor objects, and the sound's pitch (--pitch-range, shared
by all classes), loudness (--loudness-db) and background noise (--noise). The object's size
pulses with its sound's loudness. Videos are real MP4 files (H.264 + AAC), so the whole pipeline
(decode, prepare, sample, train, evaluate) runs as on real data. The output holds
videos/vNNNNN.mp4, a vNNNNN.boxes.json beside each (the sounding object's box per frame, for the
localization evaluation), labels.csv (video,class) and world.json (the settings and classes).
The same --seed always gives the same world; class looks and sounds do not depend on the seed.
Classes are named after the {MAX_CLASSES} Kinetics-Sounds classes.

Knobs for the paper's difficulties: --noise (background noise), --distractors (silent objects of
other classes in view), --unrelated (soundtrack of another class), --offscreen (a second,
invisible sound source).

example:
  l3net synth world/ --videos 600 --classes 10 --seconds 10 --size 256
  l3net prepare world/videos --labels world/labels.csv --out shards/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = WorldConfig()
    parser.add_argument("out", metavar="OUT_DIR", help="directory to write the world into (created)")
    parser.add_argument("--videos", type=int, default=d.videos, help=f"number of videos (default {d.videos})")
    parser.add_argument("--classes", type=int, default=d.classes, help=f"number of classes, 2-{MAX_CLASSES} (default {d.classes})")
    parser.add_argument("--seconds", type=float, default=d.seconds, help=f"length of each video in seconds (default {d.seconds:g})")
    parser.add_argument("--size", type=int, default=d.size, help=f"frame width and height in pixels (default {d.size})")
    parser.add_argument("--fps", type=float, default=d.fps, help=f"video frame rate (default {d.fps:g})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    parser.add_argument("--noise", type=float, default=d.noise, help=f"background noise amplitude, 0-1 (default {d.noise:g})")
    parser.add_argument("--distractors", type=float, default=d.distractors, help=f"probability of silent distractor objects per video (default {d.distractors:g})")
    parser.add_argument("--unrelated", type=float, default=d.unrelated, help=f"probability that a video's soundtrack belongs to another class (default {d.unrelated:g})")
    parser.add_argument("--offscreen", type=float, default=d.offscreen, help=f"probability of an extra off-screen sound source (default {d.offscreen:g})")
    parser.add_argument("--pitch-range", type=float, nargs=2, metavar=("LO", "HI"), default=d.pitch_range,
                        help="range of a video's fundamental in Hz, drawn log-uniformly, the same for every class "
                        f"(default {d.pitch_range[0]:g} {d.pitch_range[1]:g})")
    parser.add_argument("--loudness-db", type=float, default=d.loudness_db,
                        help=f"a video's level is drawn up to this many dB below the loudest, 0-40 (default {d.loudness_db:g})")
    parser.add_argument("--scale", type=float, nargs=2, metavar=("LO", "HI"), default=d.object_scale,
                        help=f"range of the object's side as a fraction of the frame's (default {d.object_scale[0]:g} {d.object_scale[1]:g})")
    parser.add_argument("--clutter", type=int, default=d.clutter,
                        help=f"at most this many irregular coloured blobs in each background, 0-20 (default {d.clutter})")
    parser.add_argument("--class-surface", type=float, default=d.class_surface,
                        help="probability that a video's object wears its class's own hue and its sound keeps its class's own "
                        f"pitch, cues an untrained network already separates (default {d.class_surface:g}: only shape and "
                        "timbre/rhythm tell the classes)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="processes to render with (default: the CPU count, at most 8)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    config = WorldConfig(
        videos=args.videos, classes=args.classes, seconds=args.seconds, size=args.size, fps=args.fps,
        seed=args.seed, noise=args.noise, distractors=args.distractors, unrelated=args.unrelated,
        offscreen=args.offscreen, pitch_range=tuple(args.pitch_range), loudness_db=args.loudness_db,
        object_scale=tuple(args.scale), clutter=args.clutter, class_surface=args.class_surface,
    )
    out = make_world(args.out, config, workers=max(1, args.workers), progress=not args.quiet)
    print(f"wrote {config.videos} videos of {config.classes} classes to {out}/videos ({out}/labels.csv, {out}/world.json)")
    print(f"next: l3net prepare {out}/videos --labels {out}/labels.csv --out SHARDS_DIR")
    return 0

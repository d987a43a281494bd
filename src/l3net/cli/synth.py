"""``l3net synth``: write a synthetic audio-visual world (real MP4 videos with known answers)."""

from __future__ import annotations

import argparse
import os

from ..data.synth import MAX_CLASSES, WorldConfig, make_world

HELP = "Generate a synthetic audio-visual world: MP4 videos, labels.csv and ground-truth boxes"
DESCRIPTION = f"""Generate a synthetic audio-visual world for trying l3net without a dataset, and for tests.

Each class pairs a visual object (shape, colour, texture, motion) with a sound (timbre, pitch,
rhythm); the object's size pulses with its sound. Videos are real MP4 files (H.264 + AAC), so the
whole pipeline (decode, prepare, sample, train, evaluate) runs as on real data. The output holds
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
    parser.add_argument("--pitch-jitter", type=float, default=d.pitch_jitter,
                        help=f"how far a video's pitch strays from its class's, as a fraction, 0-0.9 (default {d.pitch_jitter:g}); "
                        "large values leave timbre and rhythm as the sound's class cues")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="processes to render with (default: the CPU count, at most 8)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    config = WorldConfig(
        videos=args.videos, classes=args.classes, seconds=args.seconds, size=args.size, fps=args.fps,
        seed=args.seed, noise=args.noise, distractors=args.distractors, unrelated=args.unrelated,
        offscreen=args.offscreen, pitch_jitter=args.pitch_jitter,
    )
    out = make_world(args.out, config, workers=max(1, args.workers), progress=not args.quiet)
    print(f"wrote {config.videos} videos of {config.classes} classes to {out}/videos ({out}/labels.csv, {out}/world.json)")
    print(f"next: l3net prepare {out}/videos --labels {out}/labels.csv --out SHARDS_DIR")
    return 0

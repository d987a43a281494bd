"""``l3net prepare``: videos -> WebDataset shards for training and evaluation."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from ..data.prepare import REASON_UNDECODABLE, PrepareConfig, prepare

HELP = "Prepare videos for training: decode frames and audio into WebDataset shards (resumable)"
DESCRIPTION = """Decode videos into WebDataset tar shards that 'l3net train' and the evaluations read.

Each input video becomes one sample: --seconds (paper: 10) from --start, frames at --fps with the
smaller side scaled to --frame-size px (JPEG), the audio as 48 kHz mono 16-bit WAV, and metadata
(source, duration, frame times, label from --labels, ground-truth boxes from NAME.boxes.json).
Sound and picture are put on one clock: t = 0 is the earliest start of the file's streams; a
sound track that starts late or has gaps gets silence there, frames are turned upright (rotation
metadata), shown at their display aspect and deinterlaced; each manifest line and sample says
what was done ("timing"). Only the kept part of a file is decoded, however long the file.
Inputs are files or directories (searched recursively for audio/video extensions), any format
FFmpeg reads. Inputs that cannot be used (empty, not media, truncated, no audio or no video
stream, shorter than 1 s) are skipped and listed with the reason in SHARDS_DIR/manifest-*.jsonl.

Videos are split into train/val/test by a stable hash of their path relative to the input
directory's parent, so a video never crosses splits and a re-run gives the same split. The run is
resumable: re-running the same command skips finished shards, and an interrupted run leaves no
half-written shard. For a cluster, run slice I of M on each machine into the same --out with
--num-shards M --shard-index I (a Slurm array, Ray, any scheduler).

A published split (Kinetics, VGGSound): give the labels CSV a 'split' column (train, val or test);
it overrides the hash for each row with a value, and rows left empty are split by the hash
(--split-ratios). dataset.json then records split_source "labels" and the videos per split.

--classes FILE keeps only the classes listed in FILE (one name per line; blank lines and '#'
comments ignored); --classes kinetics-sounds keeps the paper's 34 Kinetics-Sounds classes (also
under their Kinetics-400 spellings, e.g. "dribbling basketball"). Names match ignoring case, '_'
and extra spaces. Every other video is listed in the manifest as skipped ("class not kept")
without being decoded; a listed class that no row of the labels has gets a warning.

example:
  l3net prepare ~/videos --labels ~/videos/labels.csv --out shards/ --workers 8
  l3net prepare ~/kinetics/videos --labels ~/kinetics/labels.csv --classes kinetics-sounds --out ks-shards/
  l3net prepare world/videos --labels world/labels.csv --out shards/ --frame-size 112   # small preset
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = PrepareConfig()
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="video files or directories")
    parser.add_argument("--out", required=True, metavar="SHARDS_DIR", help="output directory for the shards (created)")
    parser.add_argument("--labels", metavar="CSV", help="CSV with a header and columns video,class and optionally split (train/val/test: overrides the hash for that row); video paths relative to the CSV")
    parser.add_argument("--classes", metavar="FILE", help="keep only these classes: a file with one class per line, or 'kinetics-sounds' (the paper's 34); needs --labels")
    parser.add_argument("--seconds", type=float, default=d.seconds, help=f"keep SECONDS of each video (default {d.seconds:g}, as the paper)")
    parser.add_argument("--start", type=float, default=d.start, metavar="SECONDS", help="where the kept part starts on each video's timeline (default 0: the beginning)")
    parser.add_argument("--audio-stream", type=int, default=d.audio_stream, metavar="N", help="use audio stream N (0: the first; default: the stream marked default, else the first)")
    parser.add_argument("--fps", type=float, default=d.fps, help=f"frames kept per second (default {d.fps:g})")
    parser.add_argument("--frame-size", type=int, default=d.frame_size, help=f"smaller side of stored frames in px (default {d.frame_size}; use the preset's image_resize, e.g. 112 for 'small')")
    parser.add_argument("--split-ratios", type=float, nargs=3, default=list(d.split_ratios), metavar=("TRAIN", "VAL", "TEST"), help="relative sizes of the splits (default 0.8 0.1 0.1)")
    parser.add_argument("--shard-size", type=int, default=d.shard_size, help=f"videos per shard (default {d.shard_size})")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="decoding processes (default: the CPU count, at most 8)")
    parser.add_argument("--num-shards", type=int, default=1, metavar="M", help="split the inputs into M slices for M machines (default 1)")
    parser.add_argument("--shard-index", type=int, default=0, metavar="I", help="the slice this run prepares, 0..M-1 (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    config = PrepareConfig(
        seconds=args.seconds, start=args.start, audio_stream=args.audio_stream, fps=args.fps, frame_size=args.frame_size,
        split_ratios=tuple(args.split_ratios), shard_size=args.shard_size,
    )
    def show(message: Warning | str, *_: object, **__: object) -> None:  # one plain line, when it happens
        print(f"l3net prepare: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        summary = prepare(
            args.inputs, args.out, labels=args.labels, classes=args.classes, config=config, workers=args.workers,
            num_shards=args.num_shards, shard_index=args.shard_index, progress=not args.quiet,
        )
    for outcome in summary.outcomes:  # each file that could not be decoded, with its reason (stream, time, FFmpeg's words)
        if outcome.reason == REASON_UNDECODABLE:
            print(f"l3net prepare: undecodable: {outcome.path}: {outcome.detail}", file=sys.stderr)
    print(summary.table())
    reused = f" ({summary.reused_shards} already finished)" if summary.reused_shards else ""
    print(f"\nshards in {summary.out}{reused}; one line per input in {summary.manifest}")
    return 0

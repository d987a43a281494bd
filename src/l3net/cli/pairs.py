"""``l3net pairs``: draw sampled training (or evaluation) pairs from shards into a PNG."""

from __future__ import annotations

import argparse

from ..config import PRESETS, get_preset
from ..data.shards import ShardSet

HELP = "Draw sampled AVC pairs (frame, spectrogram, answer, provenance) from shards into a PNG"
DESCRIPTION = """Show what the network is asked: a grid of pairs drawn by the same sampler training uses.
Each pair shows the frame as the network sees it (resized, cropped and, for training pairs,
flipped and colour-jittered), the log-spectrogram of its 1 s of audio (the model's own front end),
whether they correspond, and where both came from (video keys, frame time, audio start, classes).

The preset decides the crop and the spectrogram; by default the one whose image_resize matches the
shards' frame size (112 -> small, 256 -> paper).

example:
  l3net pairs shards/ --out pairs.png --n 8
  l3net pairs shards/ --out test_pairs.png --split test --eval
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", metavar="SHARDS_DIR", help="a directory made by 'l3net prepare'")
    parser.add_argument("--out", default="pairs.png", help="PNG to write (default pairs.png)")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"), help="split to sample (default train)")
    parser.add_argument("--n", type=int, default=8, help="number of pairs (default 8)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="model preset (default: matched to the shards' frame size)")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    parser.add_argument("--eval", action="store_true", help="show the fixed evaluation pairs (no augmentation) instead")


def run(args: argparse.Namespace) -> int:
    from ..data.pairs_plot import plot_pairs

    if args.preset is None:
        side = ShardSet(args.shards).frame_smaller_side
        matching = [name for name, cfg in PRESETS.items() if cfg.image_resize == side]
        args.preset = matching[0] if matching else "paper"
    config = get_preset(args.preset)
    out = plot_pairs(args.shards, args.out, config=config, split=args.split, n=args.n, seed=args.seed, train=not args.eval)
    print(f"wrote {args.n} {args.split} pairs (preset {args.preset}) to {out}")
    return 0

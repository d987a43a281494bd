"""Benchmark: AVC training pairs per second per worker process at the paper preset.

Per pair the sampler reads one JPEG frame (256 px smaller side, as `l3net prepare` stores it for the
paper preset) and one second of 48 kHz audio by seeking through the shard index, decodes the JPEG,
takes a random 224 x 224 crop, flips, jitters brightness and saturation, and scales the audio by a
random gain. One process, no DataLoader: the figure is what one DataLoader worker (one core)
delivers. CPU time is reported besides wall time: on a busy shared machine, pairs per CPU-second
is the figure that does not depend on what else runs.

The baseline, measured in the same run on the same shards: the straightforward WebDataset pipeline
(sequential tar reading, decoding every frame of a sample with `.decode("rgb8")`, numpy crop) that
draws one pair per video read. Target (issue 3): >= 400 pairs/s per core, so that 8 cores feed a
GPU at 3000 pairs/s.

    python benchmarks/pairs.py [--videos 24] [--batches 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import webdataset as wds

from l3net.config import PRESETS
from _machine import describe_machine
from l3net.data.prepare import PrepareConfig, prepare
from l3net.data.sampler import AVCPairs
from l3net.data.synth import WorldConfig, make_world


REAL_AV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_av"


def measure(iterator, pairs_per_item: int, items: int) -> tuple[float, float]:
    next(iterator)  # warm up: open files, build indexes
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(items):
        next(iterator)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return items * pairs_per_item / wall, items * pairs_per_item / cpu


def webdataset_baseline(shards: Path, size: int, rng: np.random.Generator):
    urls = [str(p) for p in sorted(shards.glob("train-*.tar"))]
    while True:
        for sample in wds.WebDataset(urls, shardshuffle=False).decode("rgb8"):
            frames = [v for k, v in sample.items() if k.endswith(".jpg")]
            frame = frames[rng.integers(len(frames))]
            h, w = frame.shape[:2]
            y, x = rng.integers(h - size + 1), rng.integers(w - size + 1)
            crop = frame[y : y + size, x : x + size]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            yield crop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--batches", type=int, default=30, help="batches of 32 pairs to time")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(describe_machine())
    config = PRESETS["paper"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world = make_world(tmp / "world", WorldConfig(videos=args.videos, seconds=10.0, size=320, seed=0), workers=os.cpu_count() or 1)
        inputs = [world / "videos"] + ([REAL_AV] if REAL_AV.is_dir() else [])  # real ones are wider than tall
        prepare(inputs, tmp / "shards", config=PrepareConfig(frame_size=config.image_resize, split_ratios=(1, 0, 0), shard_size=8),
                workers=os.cpu_count() or 1, progress=False)
        print(f"{args.videos} synthetic videos of 10 s (square) + the real ones in {REAL_AV.name} (4:3 to 2.4:1), frames stored at {config.image_resize} px; preset 'paper' ({config.image_size} px crops, 1 s at 48 kHz); batches of 32")
        results = {"l3net AVCPairs": [], "webdataset baseline": []}
        for _ in range(args.repeats):
            sampler = iter(AVCPairs(tmp / "shards", "train", config=config, batch_size=32, seed=0))
            results["l3net AVCPairs"].append(measure(sampler, 32, args.batches))
            baseline = webdataset_baseline(tmp / "shards", config.image_size, np.random.default_rng(0))
            results["webdataset baseline"].append(measure(baseline, 1, min(200, args.batches * 4)))
        best = {}
        for name, runs in results.items():
            wall, cpu = max(runs)
            best[name] = (wall, cpu)
            print(f"  {name:<20} {wall:8.1f} pairs/s (wall)   {cpu:8.1f} pairs per CPU-second")
        (lw, lc), (bw, bc) = best["l3net AVCPairs"], best["webdataset baseline"]
        print(f"per core: {lc:.0f} pairs per CPU-second (target >= 400); {lc / bc:.1f}x the webdataset baseline (CPU), {lw / bw:.1f}x (wall)")


if __name__ == "__main__":
    sys.exit(main())

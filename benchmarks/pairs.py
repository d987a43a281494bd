"""Benchmark: AVC training pairs per CPU-second of one loader process, paper preset, real-size frames.

Per pair the sampler reads one JPEG frame and one second of 48 kHz audio by seeking through the
shard index, decodes the JPEG (at reduced scale where it can), takes a random 224 x 224 crop, flips,
jitters brightness and saturation, and hands the audio over as int16 with its gain (as
``l3net train`` loads it). One process, no DataLoader: the figure is what one DataLoader worker (one
core) delivers; pairs per CPU-second is the figure that does not depend on what else runs on a
shared machine.

Two shard sets, prepared by ``l3net prepare`` at the paper's 256 px in the same run:

- **16:9** (the real size of most videos): 10 s videos of 910 x 512 made from the real photos in
  ``../shared/data/photos`` (each scaled to cover the frame and panned across), stored as
  256 x 455 JPEGs: the target's figure;
- **square**: synthetic 320 px videos stored as 256 x 256 JPEGs (the figure measured before; a
  16:9 frame is ~1.8x the pixels to decode).

The baseline, measured in the same run on the 16:9 shards: the straightforward WebDataset pipeline
(sequential tar reading, decoding every frame of a sample with ``.decode("rgb8")``, numpy crop) that
draws one pair per video read. Target (issue 23): >= 500 pairs per CPU-second on 16:9 frames, and
the cores that feed 3,000 and 4,000 pairs/s.

    python benchmarks/pairs.py [--videos 24] [--batches 12] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image

from _machine import describe_machine  # benchmarks/ is on sys.path when run as a script
from l3net.config import PRESETS, SAMPLE_RATE
from l3net.data.prepare import PrepareConfig, prepare
from l3net.data.sampler import AVCPairs
from l3net.data.shards import ShardSet
from l3net.data.synth import WorldConfig, make_world
from l3net.runtime import loader_prefetch
from l3net.media import VideoWriter

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos"
WIDE = (910, 512)  # 16:9 source frames; stored with a 256 px smaller side they are 455 x 256
SECONDS, FPS = 10.0, 8.0


def wide_videos(out: Path, count: int) -> Path:
    """``count`` 16:9 videos panning across the real photos (cycled), with a noisy tone for sound."""
    out.mkdir(parents=True)
    photos = sorted(PHOTOS.glob("*/*.jpg"))
    if not photos:
        raise SystemExit(f"no photos in {PHOTOS}: the 16:9 set is made from them")
    rng = np.random.default_rng(0)
    width, height = WIDE
    frames = int(SECONDS * FPS)
    t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    for i in range(count):
        photo = Image.open(photos[i % len(photos)]).convert("RGB")
        scale = max((width + 128) / photo.width, height / photo.height)  # room to pan 128 px
        photo = photo.resize((math.ceil(photo.width * scale), math.ceil(photo.height * scale)), Image.Resampling.BICUBIC)
        if i // len(photos) % 2:
            photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # a second round is not the same frames
        pixels = np.asarray(photo)
        audio = (0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
        with VideoWriter(out / f"wide{i:03d}.mp4", FPS, audio, options={"preset": "ultrafast", "crf": "18"}) as writer:
            for f in range(frames):
                x = round((pixels.shape[1] - width) * f / max(1, frames - 1))
                writer.write(pixels[:height, x:x + width])
    return out


def measure(iterator, pairs_per_item: int, items: int) -> tuple[float, float]:
    next(iterator)  # warm up: open files, build indexes
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(items):
        next(iterator)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return items * pairs_per_item / wall, items * pairs_per_item / cpu


def loader_cpu_seconds(shards: Path, config, batch_size: int, batches: int, workers: int) -> float:
    """CPU seconds the whole loader spends, as l3net train runs it on a CPU (DataLoader workers, batches
    through shared memory; a GPU run also pins them, not counted), to deliver ``batches`` batches: the
    workers' CPU time (counted once they have exited) plus this process's, the workers' start-up included."""
    import torch

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time()
    dataset = AVCPairs(shards, "train", config=config, batch_size=batch_size, seed=0, pcm=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers,
                                         prefetch_factor=loader_prefetch(workers, dataset.batch_nbytes))
    iterator = iter(loader)
    for _ in range(batches):
        next(iterator)
    del iterator  # the workers exit and are reaped: their CPU time is counted from here on
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (time.process_time() - cpu) + (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)


def measure_loader(shards: Path, config, batch_size: int, batches: int, workers: int) -> float:
    """Pairs per CPU-second of the whole loader in steady state: the CPU time of 2 x ``batches`` batches
    less that of ``batches`` (the workers' start-up cancels out)."""
    once = loader_cpu_seconds(shards, config, batch_size, batches, workers)
    twice = loader_cpu_seconds(shards, config, batch_size, 2 * batches, workers)
    return batches * batch_size / max(1e-9, twice - once)


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


def stored_frame_size(shards: Path) -> tuple[int, int]:
    """(width, height) of the first stored frame of the train split."""
    shard_set = ShardSet(shards)
    video = shard_set.videos("train")[0]
    return Image.open(io.BytesIO(shard_set.read_frame_bytes(video, 0))).size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=24, help="videos of each set")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=12, help="batches to time per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="timings per set, interleaved; the best is kept")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the whole-loader figure")
    args = parser.parse_args()
    print(describe_machine())
    config = PRESETS["paper"]
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="l3net-bench-pairs-") as tmp:
        tmp = Path(tmp)
        prepared = PrepareConfig(seconds=SECONDS, frame_size=config.image_resize, split_ratios=(1, 0, 0), shard_size=8)
        square = make_world(tmp / "world", WorldConfig(videos=args.videos, seconds=SECONDS, size=320, seed=0), workers=cores)
        sets = {"16:9": wide_videos(tmp / "wide", args.videos), "square": square / "videos"}
        shards = {}
        for name, videos in sets.items():
            shards[name] = tmp / f"shards-{name.replace(':', 'x')}"
            prepare([videos], shards[name], config=prepared, workers=cores, progress=False)
        sizes = {name: stored_frame_size(path) for name, path in shards.items()}
        print(f"{args.videos} videos of {SECONDS:g} s per set; stored frames "
              + ", ".join(f"{name} {w} x {h}" for name, (w, h) in sizes.items())
              + f"; preset 'paper' ({config.image_size} px crops, 1 s at 48 kHz, int16 audio); batches of {args.batch_size}")
        assert sizes["16:9"] == (455, 256), sizes
        results: dict[str, list[tuple[float, float]]] = {"l3net 16:9": [], "l3net square": [], "webdataset 16:9": []}
        loader: list[float] = []
        for _ in range(args.repeats):  # interleaved: a change of machine load hits every figure alike
            for name in ("16:9", "square"):
                sampler = iter(AVCPairs(shards[name], "train", config=config, batch_size=args.batch_size, seed=0, pcm=True))
                results[f"l3net {name}"].append(measure(sampler, args.batch_size, args.batches))
            baseline = webdataset_baseline(shards["16:9"], config.image_size, np.random.default_rng(0))
            results["webdataset 16:9"].append(measure(baseline, 1, min(100, args.batches * 4)))
            loader.append(measure_loader(shards["16:9"], config, args.batch_size, args.batches, args.workers))
    best = {name: max(runs, key=lambda r: r[1]) for name, runs in results.items()}
    for name, (wall, cpu) in best.items():
        print(f"  {name:<17} {wall:8.1f} pairs/s (wall)   {cpu:8.1f} pairs per CPU-second   "
              f"(all repeats: {', '.join(f'{c:.0f}' for _, c in results[name])})")
    wide, sq, base = best["l3net 16:9"][1], best["l3net square"][1], best["webdataset 16:9"][1]
    print(f"per core on 16:9 frames: {wide:.0f} pairs per CPU-second (target >= 500); {wide / sq:.2f}x the square "
          f"frames' rate; {wide / base:.1f}x the webdataset baseline")
    whole = max(loader)
    print(f"the whole loader ({args.workers} DataLoader workers, batches through shared memory, steady state): "
          f"{whole:.0f} pairs per CPU-second (all repeats: {', '.join(f'{c:.0f}' for c in loader)}), "
          f"{whole / wide:.2f}x one process's")
    print("cores that feed " + ", ".join(f"{rate:,} pairs/s: {rate / whole:.1f}" for rate in (3000, 4000))
          + " (CPU-seconds per second of the whole loader; workers: at least that many, one core each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

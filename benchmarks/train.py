"""Training throughput: ``l3net train``'s loop with its real data pipeline against a bare step.

Both sides use the same preset, batch, precision and device, in the same run:

- **bare**: forward, cross-entropy, backward and Adam step on one batch held in memory (no data
  loading, no logging, nothing else): the most the hardware gives for this network.
- **l3net train**: :func:`l3net.train.train` itself, with its pair sampler reading shards through a
  DataLoader, device copies, loss bookkeeping, log.jsonl, TensorBoard and progress. Its pairs/s are
  read from its own log, skipping the first interval (start-up of the loader workers).

The bare step is timed before and after the real run and averaged, so that a change in machine
load (shared machines) hits both sides. Target: l3net train >= 0.85 x the bare step on a CPU; on
one H100, >= 3000 pairs/s for the paper preset in bf16.

    python benchmarks/train.py                                 # small preset, CPU
    python benchmarks/train.py --preset paper --batch-size 256 --precision bf16 --device cuda
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from _machine import describe_machine  # benchmarks/ is on sys.path when run as a script


def make_shards(root: Path, videos: int) -> Path:
    """A small synthetic world prepared into shards (the data path of the real run)."""
    from l3net.config import get_preset
    from l3net.data.prepare import PrepareConfig, prepare
    from l3net.data.synth import WorldConfig, make_world

    world = make_world(root / "world", WorldConfig(videos=videos, classes=4, seconds=4.0, size=128), workers=2)
    shards = root / "shards"
    prepare([world / "videos"], shards, labels=world / "labels.csv", workers=2, progress=False,
            config=PrepareConfig(seconds=4.0, frame_size=get_preset("small").image_resize, split_ratios=(0.7, 0.15, 0.15),
                                 shard_size=8))
    return shards


def bare_pairs_per_s(args: argparse.Namespace, batch: dict, steps: int) -> float:
    from l3net import build_model
    from l3net.runtime import autocast, resolve_device

    device = resolve_device(args.device)
    model = build_model(args.preset, seed=0).to(device).train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-5,
                                 fused=True if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "fp16")
    images, audio, labels = (batch[k].to(device) for k in ("image", "audio", "label"))

    def step() -> None:
        with autocast(args.precision, device):
            logits = model(images, audio)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * images.shape[0] / (time.perf_counter() - start)


def train_pairs_per_s(args: argparse.Namespace, shards: Path, out: Path) -> tuple[float, float]:
    from l3net.train import TrainConfig, read_log, train

    steps = args.warmup + args.steps
    config = TrainConfig(
        data=str(shards), out=str(out), preset=args.preset, batch_size=args.batch_size, steps=steps,
        val_every=0, save_every=steps, log_every=args.warmup, precision=args.precision, workers=args.workers,
        device=args.device, compile=args.compile, channels_last=args.channels_last,
    )
    train(config, progress=False)
    # log_every = warmup: the first record covers the warm-up; each later one the steps since the one before
    records = [r for r in read_log(out) if r["event"] == "train"]
    spans = [(r["step"] - prev["step"], r) for prev, r in zip(records, records[1:])]
    pairs = sum(n * args.batch_size for n, _ in spans)
    seconds = sum(n * args.batch_size / r["pairs_per_s"] for n, r in spans)
    wait = sum(r["data_wait_s"] for _, r in spans)
    return pairs / seconds, wait / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20, help="timed steps on each side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--workers", type=int, default=None, help="loader workers of the real run (default: l3net's)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--data", help="existing shard directory (default: a small synthetic one, made here)")
    parser.add_argument("--videos", type=int, default=40, help="videos of the synthetic shards")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    from l3net.config import get_preset
    from l3net.data.sampler import AVCPairs

    print(describe_machine())
    with tempfile.TemporaryDirectory(prefix="l3net-bench-train-") as tmp:
        shards = Path(args.data) if args.data else make_shards(Path(tmp), args.videos)
        batch = next(iter(AVCPairs(shards, "train", config=get_preset(args.preset), batch_size=args.batch_size)))
        half = max(1, args.steps // 2)
        bare_before = bare_pairs_per_s(args, batch, half)
        real, wait = train_pairs_per_s(args, shards, Path(tmp) / "run")
        bare_after = bare_pairs_per_s(args, batch, half)
    bare = (bare_before + bare_after) / 2
    ratio = real / bare
    print(f"preset {args.preset}, batch {args.batch_size}, {args.precision}, device {args.device}, "
          f"{args.steps} timed steps per side")
    print(f"bare step:    {bare:8.1f} pairs/s (before {bare_before:.1f}, after {bare_after:.1f})")
    print(f"l3net train:  {real:8.1f} pairs/s (waiting for data {100 * wait:.1f} % of the time)")
    print(f"ratio:        {ratio:8.3f} x the bare step (target >= 0.85 on CPU)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": describe_machine(), "preset": args.preset, "batch_size": args.batch_size, "precision": args.precision,
            "bare_pairs_per_s": bare, "train_pairs_per_s": real, "ratio": ratio, "data_wait_fraction": wait,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

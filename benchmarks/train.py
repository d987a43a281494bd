"""Training throughput: ``l3net train``'s loop with its real data pipeline against a bare step.

Both sides use the same preset, batch, precision and device, in the same run:

- **bare**: forward, cross-entropy, backward and Adam step on four batches held in memory, cycled
  (no data loading, no logging, nothing else): the most the hardware gives for this network.
- **l3net train**: :func:`l3net.train.train` itself, with its pair sampler reading shards through a
  DataLoader, device copies, loss bookkeeping, log.jsonl, TensorBoard and progress. Its pairs/s are
  read from its own log, skipping the first interval (start-up of the loader workers).

Bare and real runs alternate (bare, real, bare, real, ..., bare); each real run is compared with
the mean of the bare runs around it and the median ratio is reported, so that a change of machine
load (shared machines) hits both sides of a ratio alike. Target: l3net train >= 0.85 x the bare
step on a CPU; on one H100, >= 3000 pairs/s for the paper preset in bf16.

    python benchmarks/train.py                                 # small preset, CPU
    python benchmarks/train.py --preset paper --batch-size 256 --precision bf16 --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
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


def bare_pairs_per_s(args: argparse.Namespace, batches: list[dict], steps: int) -> float:
    """Forward, loss, backward and Adam on in-memory batches (cycled), nothing else."""
    from l3net import build_model
    from l3net.runtime import autocast, resolve_device, synchronize, training_math

    device = resolve_device(args.device)  # cuDNN autotune on GPUs, as for l3net train
    training_math(args.precision, device)  # and the same TF32 choice
    model = build_model(args.preset, seed=0).to(device).train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-5,
                                 fused=True if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "fp16")
    data = [tuple(b[k].to(device) for k in ("image", "audio", "label")) for b in batches]
    forward = torch.compile(model) if args.compile else model  # as l3net train compiles its step model
    counter = [0]

    def step() -> None:
        images, audio, labels = data[counter[0] % len(data)]
        counter[0] += 1
        with autocast(args.precision, device):
            logits = forward(images, audio)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(args.warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)  # the device's work is done before the clock is read, as in l3net train's intervals
    return steps * args.batch_size / (time.perf_counter() - start)


def train_pairs_per_s(args: argparse.Namespace, shards: Path, out: Path) -> tuple[float, float]:
    from l3net.train import TrainConfig, read_log, train

    steps = args.warmup + args.steps
    config = TrainConfig(
        data=str(shards), out=str(out), preset=args.preset, batch_size=args.batch_size, steps=steps,
        val_every=0, save_every=steps, log_every=args.warmup, precision=args.precision, workers=args.workers,
        device=args.device, compile=args.compile, channels_last=args.channels_last,
    )
    with contextlib.redirect_stderr(io.StringIO()):  # its summary is not the benchmark's output
        train(config, progress=False)
    # log_every = warmup: the first record covers the warm-up; each later one the steps since the one
    # before, over an interval that ends when the device has finished them (l3net.train)
    records = [r for r in read_log(out) if r["event"] == "train"][1:]
    pairs = sum(r["pairs_per_s"] * r["interval_s"] for r in records)
    seconds = sum(r["interval_s"] for r in records)
    wait = sum(r["data_wait_s"] for r in records)
    return pairs / seconds, wait / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per run")
    parser.add_argument("--rounds", type=int, default=3, help="real runs, each between two bare runs")
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
        stream = iter(AVCPairs(shards, "train", config=get_preset(args.preset), batch_size=args.batch_size))
        batches = [next(stream) for _ in range(4)]
        # bare, real, bare, real, ..., bare: each real run is compared with the bare runs around it,
        # so a change of machine load between rounds hits both sides of a ratio alike.
        bare = [bare_pairs_per_s(args, batches, args.steps)]
        real, wait = [], []
        for r in range(args.rounds):
            pairs_per_s, waiting = train_pairs_per_s(args, shards, Path(tmp) / f"run{r}")
            real.append(pairs_per_s)
            wait.append(waiting)
            bare.append(bare_pairs_per_s(args, batches, args.steps))
    ratios = [x / ((a + b) / 2) for x, a, b in zip(real, bare, bare[1:])]
    ratio = statistics.median(ratios)
    print(f"preset {args.preset}, batch {args.batch_size}, {args.precision}, device {args.device}, "
          f"{args.steps} timed steps per run, {args.rounds} rounds")
    print("bare step:    " + ", ".join(f"{x:.1f}" for x in bare) + " pairs/s")
    print("l3net train:  " + ", ".join(f"{x:.1f}" for x in real) + " pairs/s (waiting for data "
          + ", ".join(f"{100 * w:.1f}" for w in wait) + " % of the time)")
    print("ratios:       " + ", ".join(f"{x:.3f}" for x in ratios))
    print(f"ratio:        {ratio:.3f} x the bare step (median; target >= 0.85 on CPU)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": describe_machine(), "preset": args.preset, "batch_size": args.batch_size,
            "precision": args.precision, "bare_pairs_per_s": bare, "train_pairs_per_s": real, "ratios": ratios,
            "ratio": ratio, "data_wait_fraction": wait,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

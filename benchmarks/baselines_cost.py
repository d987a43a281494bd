"""What Table 1's supervised baselines cost beside the L3 run they are compared with.

``l3net eval baselines --model RUN`` trains each classifier on as many examples, and the fusion head
on as many AVC pairs, as RUN's model saw. This measures, in the same run and on the same shards,
preset, batch, precision and device, the wall time of:

- **l3net train**: :func:`l3net.train.train` for N steps (set-up, data loader, logging included);
- **baselines**: :func:`l3net.evaluate.baselines.training.train_supervised` with the budget of that
  run: N steps of each classifier and N steps of the head (set-up and loaders included), with the
  time of each stage.

Runs alternate (train, baselines, train, ..., train); each baselines run is compared with the mean of
the train runs around it (so a change of load on a shared machine hits both sides) and the median
ratio is reported: how many times an L3 run's training time the baselines take at its budget.

    python benchmarks/baselines_cost.py                      # small preset, CPU
    python benchmarks/baselines_cost.py --preset paper --batch-size 64 --device cuda --workers 8
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

from _machine import describe_machine  # benchmarks/ is on sys.path when run as a script
from train import make_shards  # benchmarks/train.py: the same synthetic shards


def train_seconds(args: argparse.Namespace, shards: Path, out: Path, workers: int) -> float:
    from l3net.train import TrainConfig, train

    config = TrainConfig(data=str(shards), out=str(out), preset=args.preset, batch_size=args.batch_size,
                         steps=args.steps, val_every=0, save_every=args.steps, log_every=args.steps,
                         precision=args.precision, workers=workers, device=args.device)
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # its summary is not the benchmark's output
        train(config, progress=False)
    return time.perf_counter() - start


def baselines_seconds(args: argparse.Namespace, shards: Path, workers: int) -> tuple[float, dict[str, float]]:
    from l3net.config import get_preset
    from l3net.data.sampler import AugmentConfig
    from l3net.data.shards import ShardSet
    from l3net.evaluate.baselines import training as supervised_train
    from l3net.runtime import resolve_device

    plan = supervised_train.TrainPlan(
        get_preset(args.preset), tuple(ShardSet(shards).classes), args.steps, args.steps, args.batch_size, 1e-4, 1e-3,
        1e-5, 0, args.precision, AugmentConfig(), workers, ShardSet(shards).fingerprint())
    stages: dict[str, float] = {}
    run_stage = supervised_train._run_stage

    def timed(name, **kwargs):  # the time of each stage, read around the library's own loop
        start = time.perf_counter()
        try:
            return run_stage(name, **kwargs)
        finally:
            stages[name] = time.perf_counter() - start

    supervised_train._run_stage = timed
    try:
        start = time.perf_counter()
        supervised_train.train_supervised(ShardSet(shards), plan, device=resolve_device(args.device), progress=False)
        return time.perf_counter() - start, stages
    finally:
        supervised_train._run_stage = run_stage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=30, help="steps of the L3 run (and of each baselines stage)")
    parser.add_argument("--rounds", type=int, default=2, help="baselines runs, each between two train runs")
    parser.add_argument("--workers", type=int, default=None, help="loader workers of both (default: l3net train's)")
    parser.add_argument("--data", help="existing shard directory (default: a small synthetic one, made here)")
    parser.add_argument("--videos", type=int, default=40, help="videos of the synthetic shards")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    from l3net.runtime import default_workers, resolve_device

    workers = args.workers if args.workers is not None else default_workers(resolve_device(args.device))
    print(describe_machine())
    with tempfile.TemporaryDirectory(prefix="l3net-bench-baselines-") as tmp:
        shards = Path(args.data) if args.data else make_shards(Path(tmp), args.videos)
        l3 = [train_seconds(args, shards, Path(tmp) / "run0", workers)]
        base, stages = [], []
        for r in range(args.rounds):
            seconds, per_stage = baselines_seconds(args, shards, workers)
            base.append(seconds)
            stages.append(per_stage)
            l3.append(train_seconds(args, shards, Path(tmp) / f"run{r + 1}", workers))
    ratios = [x / ((a + b) / 2) for x, a, b in zip(base, l3, l3[1:])]
    ratio = statistics.median(ratios)
    print(f"preset {args.preset}, batch {args.batch_size}, {args.precision}, device {args.device}, {workers} loader "
          f"worker(s), {args.steps} steps (L3 run) = {args.steps} steps per baselines stage, {args.rounds} rounds")
    print("l3net train:  " + ", ".join(f"{x:.1f}" for x in l3) + " s")
    print("baselines:    " + ", ".join(f"{x:.1f}" for x in base) + " s  (stages: " + "; ".join(
        ", ".join(f"{k} {v:.1f}" for k, v in s.items()) for s in stages) + " s)")
    print("ratios:       " + ", ".join(f"{x:.2f}" for x in ratios))
    print(f"ratio:        {ratio:.2f} x the L3 run's training time, at its budget (median)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": describe_machine(), "preset": args.preset, "batch_size": args.batch_size, "steps": args.steps,
            "precision": args.precision, "workers": workers, "train_s": l3, "baselines_s": base, "stages_s": stages,
            "ratios": ratios, "ratio": ratio,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

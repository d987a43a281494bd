"""``l3net demo``: synthesise, prepare, train, evaluate and localize, end to end, offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "The whole method in one command: a synthetic world, training, evaluation, localization"
DESCRIPTION = """Try L3-Net end to end, offline, in about 12 minutes on a 2-core laptop CPU (faster on a GPU):

  1. synthesise a world of videos whose classes pair a visual object with a sound
  2. prepare the videos into shards (frames + 48 kHz audio)
  3. train the small preset on audio-visual correspondence, without labels
  4. evaluate: AVC accuracy on the test split (chance 50 %), k-means NMI of the embeddings
  5. localize the sound in a test video (heatmaps)

Everything goes into one folder (--out, default l3net-demo/): world/, shards/, run/ (the trained
model, its log, eval/ results and report.html), localize/, localization.png and summary.json. A
summary is printed at the end. Interrupted? Run the same command again: it continues.

Examples:
  l3net demo
  l3net demo --out /tmp/demo --steps 1200        # train longer
  l3net embed --model l3net-demo/run some_video.mp4 --output-dir embeddings/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..demo import DemoConfig
    from ..train import LR_SCHEDULES

    d = DemoConfig()
    parser.add_argument("--out", default="l3net-demo", help="folder for everything the demo writes (default: l3net-demo)")
    parser.add_argument("--videos", type=int, default=d.videos, help=f"synthetic videos (default: {d.videos})")
    parser.add_argument("--classes", type=int, default=d.classes, help=f"classes of the world (default: {d.classes})")
    parser.add_argument("--seconds", type=float, default=d.seconds, help=f"length of each video in s (default: {d.seconds:g})")
    parser.add_argument("--steps", type=int, default=d.steps, help=f"training steps (default: {d.steps})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"pairs per step (default: {d.batch_size})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default: {d.lr:g})")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=d.lr_schedule,
                        help=f"learning rate over the run (default: {d.lr_schedule}, decaying to 0 at the last step)")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed of the world and the training (default: {d.seed})")
    parser.add_argument("--workers", type=int, default=d.workers, help=f"processes for synthesis and preparation (default: {d.workers})")
    parser.add_argument("--device", default=d.device, help="cpu, cuda or auto (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..demo import DemoConfig, run_demo
    from ..errors import InputError

    for name in ("videos", "classes", "steps", "batch_size", "workers"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    fields = {f.name for f in dataclasses.fields(DemoConfig)}
    config = DemoConfig(**{k: v for k, v in vars(args).items() if k in fields})
    result = run_demo(args.out, config, progress=not args.no_progress,
                      on_stage=lambda message: print(f"l3net demo: {message}", file=sys.stderr, flush=True))
    print_summary(result.summary)
    return 0


def _fmt_time(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def print_summary(s: dict[str, Any]) -> None:
    """The demo's headline numbers (its summary.json), for people."""
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f} %"  # noqa: E731
    v, tr, nmi = s["videos"], s["train"], s["nmi"]
    paper_avc = ", ".join(f"{100 * a:.0f} % on {name.replace('_', '-')}" for name, a in s["paper_avc_accuracy"].items())
    speed = f", {tr['pairs_per_s']:.1f} pairs/s" if tr["pairs_per_s"] else ""
    lines = [
        "",
        f"l3net demo: done in {_fmt_time(s['seconds']['total'])}; everything is in {s['out_dir']}",
        f"  data        {sum(v.values())} synthetic videos of {len(s['classes'] or [])} classes: "
        f"{v['train']} train / {v['val']} val / {v['test']} test",
        f"  training    {tr['steps']:,} steps, {tr['pairs']:,} pairs{speed}; best validation AVC accuracy "
        f"{pct(tr['best_val_accuracy'])} (step {tr['best_step']})",
        f"  AVC         test accuracy {pct(s['test_avc_accuracy'])} on {s['test_pairs']} pairs "
        f"(chance {pct(s['chance'])}; the paper: {paper_avc})",
        f"  clustering  NMI (k={s['cluster_k']}) vision {nmi['vision']['L3-Net']:.3f}, audio {nmi['audio']['L3-Net']:.3f}; "
        f"untrained network {nmi['vision']['L3 without training']:.3f} / {nmi['audio']['L3 without training']:.3f}; "
        f"random assignment {nmi['vision']['random assignment']:.3f}",
        f"  where       {s['localization_picture'] or 'n/a'} (heatmap of the sound source in a test frame)",
        f"  report      {s['report']}",
        f"  model       {Path(s['out_dir']) / 'run'}  (l3net embed --model {Path(s['out_dir']) / 'run'} FILES...)",
    ]
    print("\n".join(lines), flush=True)


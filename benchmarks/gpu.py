"""One-shot GPU benchmark (run by ``benchmarks/gpu.sh``): training and embedding on one GPU, < 8 minutes.

On a machine with an NVIDIA GPU, after ``make setup TORCH_INDEX=https://download.pytorch.org/whl/cu128``:

1. **data**: a synthetic world (``l3net synth``) prepared into shards on local disk (``l3net prepare``),
   frames at the preset's ``image_resize``;
2. **training**: ``l3net train``'s own loop (the real pair pipeline, ``--workers`` loader processes,
   bf16, channels_last, torch.compile) against a bare step on four in-memory batches, same preset,
   batch and settings (``benchmarks/train.py``'s two sides), pairs/s each; target >= 4,000 pairs/s
   for the paper preset on one H100/H200;
3. **embedding**: audio windows/s of the inference copy (``l3net.inference``) in fp32 and bf16,
   eager and compiled, on batches already on the GPU, with each compiled copy's first-call time;
4. peak GPU memory of each part, and achieved FLOP/s (exact forward FLOPs of the network,
   ``L3Net.flops_per_pair``, x3 for a training step) against the GPU's dense bf16 peak
   (:data:`PEAK_BF16`, by device name).

``--device cpu --smoke`` runs every step at toy sizes (small preset, 4 tiny videos, a few steps,
no compilation, fp32 where the CPU lacks bf16 instructions) so a test can check the script end to end.
``--json FILE`` also writes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine  # noqa: E402

#: Dense (no sparsity) bf16 tensor-core peaks, FLOP/s, from NVIDIA's data sheets; matched in order
#: against ``torch.cuda.get_device_name()`` (the first key contained in the name wins).
PEAK_BF16: dict[str, float] = {
    "GH200": 989e12,
    "H200": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,  # SXM
    "B200": 2250e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L40": 181e12,
    "L4": 121e12,
}


def peak_bf16(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU by its name, or None when it is not in :data:`PEAK_BF16`."""
    for key, value in PEAK_BF16.items():
        if key.lower() in device_name.lower():
            return value
    return None


def l3net_cli(*args: str) -> None:
    """Run an ``l3net`` command in a child process, as a user would (fails loudly)."""
    subprocess.run([sys.executable, "-m", "l3net", *args], check=True)


def make_shards(root: Path, *, videos: int, seconds: float, size: int, frame_size: int, workers: int) -> Path:
    world, shards = root / "world", root / "shards"
    l3net_cli("synth", str(world), "--videos", str(videos), "--classes", "4", "--seconds", f"{seconds:g}",
              "--size", str(size), "--workers", str(workers), "--quiet")
    l3net_cli("prepare", str(world / "videos"), "--labels", str(world / "labels.csv"), "--out", str(shards),
              "--seconds", f"{seconds:g}", "--frame-size", str(frame_size), "--split-ratios", "0.8", "0.1", "0.1",
              "--shard-size", str(max(1, videos // (2 * workers))), "--workers", str(workers), "--quiet")
    return shards


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def embedding_rates(args: argparse.Namespace, device: torch.device, precisions: list[str]) -> list[dict[str, Any]]:
    """Audio windows/s of the inference copy: each precision eager and (unless --no-compile) compiled."""
    from l3net.inference import InferenceModel
    from l3net.models import load_model

    model = load_model(args.preset, device=device)
    windows = (0.1 * torch.randn(args.embed_batch, model.config.clip_samples, generator=torch.Generator().manual_seed(0))).to(device)
    rows = []
    for precision in precisions:
        for compiled in ([False] if args.no_compile else [False, True]):
            reset_peak(device)
            start = time.perf_counter()
            fast = InferenceModel(model, precision=precision, compile=compiled)
            fast.embed("audio", windows)
            sync(device)
            first = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(args.embed_batches):
                fast.embed("audio", windows)
            sync(device)
            rate = args.embed_batches * args.embed_batch / (time.perf_counter() - start)
            rows.append({"precision": precision, "compiled": fast.use_compile, "windows_per_s": rate,
                         "first_call_s": first, "peak_gib": peak_gib(device),
                         "flop_per_s": rate * model.flops_per_pair()["audio"]})
            print(f"  embed {precision:<5} {'compiled' if fast.use_compile else 'eager':<9}"
                  f"{rate:12,.1f} windows/s   first call {first:6.1f} s", flush=True)
            del fast
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="toy sizes: checks the script end to end")
    parser.add_argument("--preset", default=None, help="default: paper (small with --smoke)")
    parser.add_argument("--batch-size", type=int, default=None, help="training pairs per step (default 256; 4 smoke)")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps (default 60; 2 smoke)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first, compilation included (default 15; 1 smoke)")
    parser.add_argument("--workers", type=int, default=None, help="loader processes (default: the CPU count, at most 16)")
    parser.add_argument("--videos", type=int, default=None, help="videos in the synthetic world (default 96; 4 smoke)")
    parser.add_argument("--precision", default=None, help="training precision (default bf16; fp32 for a smoke run "
                        "on a CPU without bf16 instructions)")
    parser.add_argument("--no-compile", action="store_true", help="no torch.compile (default: compile, except --smoke)")
    parser.add_argument("--embed-batch", type=int, default=None, help="windows per embedding batch (default 256; 4 smoke)")
    parser.add_argument("--embed-batches", type=int, default=None, help="timed embedding batches (default 20; 1 smoke)")
    parser.add_argument("--keep", metavar="DIR", help="build the shards here and keep them (default: a temporary folder)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args()

    from l3net.models import build_model
    from l3net.runtime import cpu_has_native_bf16, resolve_device

    device = resolve_device(args.device)
    smoke = args.smoke
    defaults = dict(preset="small" if smoke else "paper", batch_size=4 if smoke else 256, steps=2 if smoke else 60,
                    warmup=1 if smoke else 15, videos=4 if smoke else 96, embed_batch=4 if smoke else 256,
                    embed_batches=1 if smoke else 20,
                    workers=1 if smoke else max(1, min(16, len(os.sched_getaffinity(0)) - 1)))
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    slow_bf16 = device.type == "cpu" and not cpu_has_native_bf16()
    if args.precision is None:
        args.precision = "fp32" if slow_bf16 else "bf16"
    args.no_compile = args.no_compile or smoke
    if device.type != "cuda" and not smoke:
        print("warning: no GPU: this benchmark is meant for one (use --smoke to just check it runs)", file=sys.stderr)
    started = time.perf_counter()
    print(describe_machine())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    peak = peak_bf16(name) if device.type == "cuda" else None
    model = build_model(args.preset)
    flops = model.flops_per_pair()
    print(f"device {device} ({name}); dense bf16 peak: {f'{peak / 1e12:,.0f} TFLOP/s' if peak else 'unknown'}; "
          f"preset {args.preset} ({flops['total'] / 1e9:.2f} GFLOP forward per pair)")
    results: dict[str, Any] = {"machine": describe_machine(), "device": name, "peak_bf16_flop_per_s": peak,
                               "preset": args.preset, "smoke": smoke}

    import train as train_benchmark  # benchmarks/train.py: its bare step and its l3net-train run
    from l3net.config import get_preset
    from l3net.data.sampler import AVCPairs

    with tempfile.TemporaryDirectory(prefix="l3net-gpu-bench-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        start = time.perf_counter()
        config = get_preset(args.preset)
        seconds = 2.0 if smoke else 10.0
        shards = make_shards(root, videos=args.videos, seconds=seconds, size=max(64, config.image_resize) if smoke else 256,
                             frame_size=config.image_resize, workers=args.workers)
        results["data_seconds"] = time.perf_counter() - start
        print(f"data: {args.videos} synthetic videos of {seconds:g} s -> shards in {results['data_seconds']:.0f} s", flush=True)

        options = SimpleNamespace(
            device=str(device), preset=args.preset, batch_size=args.batch_size, precision=args.precision,
            steps=args.steps, warmup=args.warmup, workers=args.workers, compile=not args.no_compile,
            channels_last=True,
        )
        stream = iter(AVCPairs(shards, "train", config=config, batch_size=args.batch_size))
        batches = [next(stream) for _ in range(4)]
        reset_peak(device)
        bare = train_benchmark.bare_pairs_per_s(options, batches, args.steps)
        bare_peak = peak_gib(device)
        reset_peak(device)
        real, waiting = train_benchmark.train_pairs_per_s(options, shards, root / "run")
        real_peak = peak_gib(device)
        train_flops = 3 * flops["total"]  # forward + backward (about twice the forward)
        results["train"] = {
            "precision": args.precision, "batch_size": args.batch_size, "compile": options.compile,
            "channels_last": True, "workers": args.workers, "bare_pairs_per_s": bare, "train_pairs_per_s": real,
            "ratio": real / bare, "data_wait_fraction": waiting, "bare_peak_gib": bare_peak, "train_peak_gib": real_peak,
            "train_flop_per_s": real * train_flops, "bare_flop_per_s": bare * train_flops,
        }
        print(f"training ({args.precision}, channels_last, {'compiled' if options.compile else 'eager'}, batch "
              f"{args.batch_size}, {args.workers} loader workers):\n"
              f"  bare step    {bare:12,.1f} pairs/s\n"
              f"  l3net train  {real:12,.1f} pairs/s  ({real / bare:.2f} x bare; waiting for data "
              f"{100 * waiting:.0f} % of the time)   target >= 4,000 on one H100/H200", flush=True)

    print("embedding (audio windows, batches already on the device):")
    precisions = ["fp32"] if slow_bf16 else ["fp32", "bf16"]
    results["embed"] = embedding_rates(args, device, precisions)

    def flop_line(label: str, value: float) -> str:
        share = f" = {100 * value / peak:.1f} % of the dense bf16 peak" if peak else ""
        return f"  {label:<28}{value / 1e12:10.3f} TFLOP/s{share}"

    print("achieved FLOP/s (exact forward FLOPs; a training step counted as 3 forwards):")
    print(flop_line("l3net train", results["train"]["train_flop_per_s"]))
    print(flop_line("bare step", results["train"]["bare_flop_per_s"]))
    for row in results["embed"]:
        print(flop_line(f"embed {row['precision']} {'compiled' if row['compiled'] else 'eager'}", row["flop_per_s"]))
    if device.type == "cuda":
        print("peak GPU memory: bare step {:.1f} GiB, l3net train {:.1f} GiB, embedding {:.1f} GiB".format(
            results["train"]["bare_peak_gib"], results["train"]["train_peak_gib"],
            max(row["peak_gib"] for row in results["embed"])))
    results["total_seconds"] = time.perf_counter() - started
    print(f"total {results['total_seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

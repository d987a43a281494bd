"""Audio embeddings per second: ``l3net.get_audio_embedding`` against the bare network, same run.

- **bare**: ``model.embed("audio", windows)`` on batches of 1-second windows already at 48 kHz and
  already in memory (under inference mode and the same autocast): the most the network gives.
- **API**: ``get_audio_embedding(audio, 44100, ...)`` on an array at 44.1 kHz that it must resample,
  validate, frame (lazily, batch by batch) and batch into exactly the same number of full batches.

Both sides are timed alternately, ``--repeats`` times each, and the best time of each is kept, so a
change of load on a shared machine hits both. Target: API >= 0.9 x bare (framing, resampling and
batching cost almost nothing next to the network).

    python benchmarks/embed_audio.py                      # paper preset, CPU, fp32 and bf16
    python benchmarks/embed_audio.py --device cuda --batch-size 64 --batches 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine  # noqa: E402

from l3net import get_audio_embedding  # noqa: E402
from l3net.config import SAMPLE_RATE  # noqa: E402
from l3net.models import load_model  # noqa: E402
from l3net.runtime import autocast, resolve_device  # noqa: E402

SOURCE_RATE = 44_100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=2, help="full batches per timed run")
    parser.add_argument("--hop-size", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    print(describe_machine())
    device = resolve_device(args.device)
    model = load_model(args.preset, device=device)
    windows = args.batch_size * args.batches
    # center=False: 1 + ceil((seconds - 1) / hop) windows; choose the length that gives exactly `windows`.
    seconds = model.config.clip_seconds + (windows - 1) * args.hop_size
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(round(seconds * SOURCE_RATE))).astype(np.float32)
    bare_input = torch.from_numpy(
        (0.1 * rng.standard_normal((args.batch_size, model.config.clip_samples))).astype(np.float32)
    ).to(device)
    print(
        f"preset {args.preset}, device {device}, {windows} windows per run "
        f"({args.batches} batches of {args.batch_size}; API input {seconds:.1f} s at {SOURCE_RATE} Hz, hop {args.hop_size} s)"
    )

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def bare(precision: str) -> float:
        start = time.perf_counter()
        with torch.inference_mode(), autocast(precision, device):
            for _ in range(args.batches):
                model.embed("audio", bare_input).float().cpu()
        sync()
        return time.perf_counter() - start

    def api(precision: str) -> float:
        start = time.perf_counter()
        emb, _ = get_audio_embedding(
            audio, SOURCE_RATE, model, hop_size=args.hop_size, center=False, batch_size=args.batch_size,
            precision=precision,
        )
        sync()
        assert emb.shape[0] == windows, emb.shape
        return time.perf_counter() - start

    print(f"\n{'precision':<10}{'bare (win/s)':>14}{'API (win/s)':>14}{'API / bare':>12}   target >= 0.90")
    for precision in args.precision:
        with torch.inference_mode(), autocast(precision, device):
            model.embed("audio", bare_input[:2])  # warm-up: kernel selection, allocator
        bare_times, api_times = [], []
        for _ in range(args.repeats):
            bare_times.append(bare(precision))
            api_times.append(api(precision))
        bare_rate, api_rate = windows / min(bare_times), windows / min(api_times)
        print(f"{precision:<10}{bare_rate:>14.2f}{api_rate:>14.2f}{api_rate / bare_rate:>12.2f}", flush=True)
    print(f"\n(1 window = {model.config.clip_seconds:g} s of audio at {SAMPLE_RATE} Hz; best of {args.repeats} runs each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

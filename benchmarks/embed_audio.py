"""Audio embeddings per second: ``l3net.get_audio_embedding`` against the bare network, same run.

- **bare**: ``inference_model(model).embed("audio", windows)`` (the inference copy the API runs, see
  ``l3net.inference``) on batches of 1-second windows already at 48 kHz and already in memory (under
  inference mode and the same autocast): the most the network gives.
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
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine  # noqa: E402

from l3net import get_audio_embedding  # noqa: E402
from l3net.config import SAMPLE_RATE  # noqa: E402
from l3net.framing import batch_windows as _batches, iter_windows  # noqa: E402
from l3net.inference import inference_model  # noqa: E402
from l3net.media import prepare_audio_array  # noqa: E402
from l3net.models import load_model  # noqa: E402
from l3net.runtime import autocast, cpu_has_native_bf16, resolve_device  # noqa: E402

SOURCE_RATE = 44_100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=1, help="full batches per timed run")
    parser.add_argument("--hop-size", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--precision", nargs="+", default=["fp32", "bf16"],
        help="precisions to time; bf16 is skipped on CPUs without bf16 instructions unless --force-bf16",
    )
    parser.add_argument("--force-bf16", action="store_true", help="time bf16 even where it is emulated (very slow)")
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

    def bare(precision: str) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode(), autocast(precision, device):
            for _ in range(args.batches):
                inference_model(model, precision=precision).embed("audio", bare_input).float().cpu()
        sync()
        return time.perf_counter() - wall, time.process_time() - cpu

    def api(precision: str) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the slow-bf16 warning, when forced
            emb, _ = get_audio_embedding(
                audio, SOURCE_RATE, model, hop_size=args.hop_size, center=False, batch_size=args.batch_size,
                precision=precision,
            )
        sync()
        assert emb.shape[0] == windows, emb.shape
        return time.perf_counter() - wall, time.process_time() - cpu

    print(f"\n{'precision':<10}{'bare (win/s)':>14}{'API (win/s)':>14}{'API / bare':>12}{'(CPU time)':>12}   target >= 0.90")
    fp32_bare_rate = 0.0
    for precision in args.precision:
        if precision == "bf16" and device.type == "cpu" and cpu_has_native_bf16() is False and not args.force_bf16:
            print(f"{precision:<10}skipped: this CPU has no bf16 instructions (AVX512-BF16/AMX); PyTorch emulates "
                  "bf16 convolutions ~100x slower than fp32 (--force-bf16 to time it anyway)", flush=True)
            continue
        with torch.inference_mode(), autocast(precision, device):
            inference_model(model, precision=precision).embed("audio", bare_input[:2])  # warm-up: copy, kernels
        bare_times, api_times = [], []
        for _ in range(args.repeats):
            bare_times.append(bare(precision))
            api_times.append(api(precision))
        bare_rate, api_rate = windows / min(t[0] for t in bare_times), windows / min(t[0] for t in api_times)
        cpu_ratio = min(t[1] for t in bare_times) / min(t[1] for t in api_times)
        print(f"{precision:<10}{bare_rate:>14.2f}{api_rate:>14.2f}{api_rate / bare_rate:>12.2f}{cpu_ratio:>12.2f}", flush=True)
        if precision == "fp32":
            fp32_bare_rate = bare_rate
    # The API's own work (validation, resampling 44.1 -> 48 kHz, framing, batching) without the
    # network: what the ratio above loses, measured directly (robust to machine load).
    start = time.perf_counter()
    for _ in range(5):
        samples = prepare_audio_array(audio, SOURCE_RATE)
        for _batch in _batches(iter_windows([samples], args.hop_size, False, model.config.clip_samples),
                               args.batch_size, model.config.clip_samples):
            pass
    overhead = (time.perf_counter() - start) / 5
    print(f"\nAPI work outside the network: {overhead * 1000:.1f} ms per run of {windows} windows "
          f"(the fp32 bare forward of those windows: {windows / fp32_bare_rate:.2f} s)" if fp32_bare_rate else "")
    print(
        f"\n(1 window = {model.config.clip_seconds:g} s of audio at {SAMPLE_RATE} Hz; best of {args.repeats} runs each; "
        "'CPU time': the same ratio from this process's CPU seconds, less disturbed by other load)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Live audio latency: how long after its last sample arrives each window's embedding is ready.

A real recording (``../shared/data/audio/trumpet_44k_stereo.wav``, stereo 44.1 kHz, tiled to
``--seconds``) is pushed into :class:`l3net.AudioStream` as a sound card would deliver it, in chunks
of ``--chunks`` milliseconds (as fast as the stream takes them: the compute is what is timed). For
each push that completes windows, the push's wall time is the compute latency of those windows.
Printed per preset, hop and chunk size:

- ``push ms``: median and 95th percentile of pushes that returned windows (the compute part);
- ``windows/s`` and the real-time factor ``rtf`` (compute seconds per second of audio; < 1 keeps up
  with a live source, > 1 falls behind, so a longer hop or a GPU is needed);
- ``latency ms``: timestamp to embedding for a centred window: half a window + one chunk (the wait
  to fill it) + the resampler's delay (32 input samples at 44.1 kHz) + the median compute. A
  non-centred window adds the other half window.

    python benchmarks/stream_latency.py                               # small and paper presets
    python benchmarks/stream_latency.py --presets small --hops 0.1 --chunks 10 100
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine  # noqa: E402

from l3net import AudioStream  # noqa: E402
from l3net.config import SAMPLE_RATE  # noqa: E402
from l3net.media import load_audio  # noqa: E402
from l3net.models import build_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RATE = 44_100
#: FFmpeg's resampler (64-tap filters) delays its output by about half its length in input samples.
RESAMPLER_DELAY_SAMPLES = 32


def recording(data: Path, seconds: float) -> np.ndarray:
    """``seconds`` of a real stereo recording at 44.1 kHz, tiled, as (samples, 2) float32."""
    left = load_audio(data / "audio" / "trumpet_44k_stereo.wav", RATE)
    right = np.roll(left, RATE // 10)  # a second channel that differs from the first
    x = np.stack([left, right], axis=1)
    reps = int(np.ceil(seconds * RATE / len(x)))
    return np.tile(x, (reps, 1))[: int(seconds * RATE)]


def run(model, audio: np.ndarray, hop: float, chunk_ms: float) -> dict[str, float]:
    """Push ``audio`` in chunks; per-push compute times of the pushes that returned windows."""
    stream = AudioStream(model, RATE, hop_size=hop, center=True)
    size = max(1, round(chunk_ms / 1000 * RATE))
    times, windows, total = [], 0, 0.0
    for i in range(0, len(audio), size):
        start = time.perf_counter()
        emb, _ = stream.push(audio[i : i + size])
        elapsed = time.perf_counter() - start
        total += elapsed
        if len(emb):
            times.append(elapsed)
            windows += len(emb)
    median = float(np.median(times))
    window_s = stream.window_seconds
    return {
        "median_ms": 1000 * median,
        "p95_ms": 1000 * float(np.percentile(times, 95)),
        "windows_per_s": windows / total,
        "rtf": total / (len(audio) / RATE),
        "latency_ms": 1000 * (window_s / 2 + size / RATE + RESAMPLER_DELAY_SAMPLES / RATE + median),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small", "paper"])
    parser.add_argument("--hops", nargs="+", type=float, default=[0.1, 0.5], help="seconds")
    parser.add_argument("--chunks", nargs="+", type=float, default=[10, 100], help="milliseconds per push")
    parser.add_argument("--seconds", type=float, default=6.0, help="audio pushed per setting")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    print(describe_machine())
    audio = recording(args.data, args.seconds)
    print(f"input: {args.seconds:g} s of stereo 44.1 kHz audio, pushed in chunks; fp32, random weights\n")
    print(f"{'preset':8} {'hop s':>6} {'chunk ms':>8} {'push ms (median/p95)':>21} {'windows/s':>9} {'rtf':>6} {'latency ms':>10}")
    for preset in args.presets:
        model = build_model(preset, seed=0).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run(model, audio[: RATE * 2], args.hops[0], args.chunks[0])  # warm-up: the inference copy is built once
        for hop in args.hops:
            for chunk in args.chunks:
                r = run(model, audio, hop, chunk)
                print(
                    f"{preset:8} {hop:6.2f} {chunk:8g} {r['median_ms']:10.1f} / {r['p95_ms']:8.1f} "
                    f"{r['windows_per_s']:9.1f} {r['rtf']:6.2f} {r['latency_ms']:10.0f}"
                )


if __name__ == "__main__":
    main()

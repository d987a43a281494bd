"""Benchmark: `l3net eval sound` end to end on a full-size ESC-50 (2000 clips, 20,000 subclips).

Generates an ESC-50-layout set of synthetic 5 s clips (44.1 kHz mono 16-bit WAV like the real
one; 50 classes x 40 clips, 5 folds) in a temporary directory that is deleted afterwards, runs
the whole command (decoding, L3 features of the small preset, MFCC, 2 x 5 SVMs, outputs) and
reports the total time and subclips per second. As a baseline measured in the same run, the
L3 feature extraction of 1,000 subclips is timed clip by clip (batch size 1) and batched (the
command's batch size): their ratio is the speed-up from batching.

    python benchmarks/eval_sound.py                 # full size: 2000 clips
    python benchmarks/eval_sound.py --clips 200     # a quick check
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.io.wavfile

from _machine import describe_machine
from l3net.cli import main as l3net_main
from l3net.config import SAMPLE_RATE
from l3net.evaluate.features import audio_features
from l3net.models import build_model

ESC50_RATE = 44_100
SECONDS = 5.0
CLASSES = 50
FOLDS = 5


def synth_clip(label: int, index: int) -> np.ndarray:
    """A 5 s clip of class ``label``: two class-specific partials, a class-specific pulse rate,
    random phase, level and noise, so classes are learnable but not trivially identical."""
    rng = np.random.default_rng(label * 1000 + index)
    t = np.arange(round(SECONDS * ESC50_RATE)) / ESC50_RATE
    f0 = 110.0 * 2 ** (label / 12)  # one semitone apart
    tone = np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6.3)) + 0.5 * np.sin(2 * np.pi * 2.7 * f0 * t)
    pulse = 0.5 * (1 + np.sign(np.sin(2 * np.pi * (0.5 + label % 7) * t + rng.uniform(0, 6.3))))
    x = rng.uniform(0.1, 0.5) * tone * pulse + 0.05 * rng.standard_normal(t.size)
    return np.clip(x * 32767 * 0.5, -32768, 32767).astype(np.int16)


def make_esc50(root: Path, clips: int) -> int:
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    per_class = max(FOLDS, clips // CLASSES)
    rows = []
    for label in range(CLASSES):
        for i in range(per_class):
            fold = i % FOLDS + 1
            name = f"{fold}-{label:03d}{i:03d}-A-{label}.wav"
            scipy.io.wavfile.write(root / "audio" / name, ESC50_RATE, synth_clip(label, i))
            rows.append(f"{name},{fold},{label},class_{label:02d},False,{label:03d}{i:03d},A\n")
    (root / "meta" / "esc50.csv").write_text("filename,fold,target,category,esc10,src_file,take\n" + "".join(sorted(rows)))
    return len(rows)


def batching_ratio(batch_size: int, n: int = 1000) -> tuple[float, float]:
    """Subclips/s of the small preset's L3 features, clip by clip and batched, on the same clips."""
    model = build_model("small", seed=0).eval()
    clips = (0.1 * np.random.default_rng(0).standard_normal((n, SAMPLE_RATE))).astype(np.float32)
    rates = []
    for size in (1, batch_size):
        start = time.perf_counter()
        audio_features(model, clips, batch_size=size, progress=False)
        rates.append(n / (time.perf_counter() - start))
    return rates[0], rates[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=2000, help="clips to generate (default: 2000, ESC-50's size)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="random:small", help="--model for eval sound (default: random:small)")
    args = parser.parse_args()

    print(describe_machine())
    with tempfile.TemporaryDirectory(prefix="l3net-bench-esc50-") as tmp:
        data, out = Path(tmp) / "ESC-50", Path(tmp) / "out"
        start = time.perf_counter()
        n = make_esc50(data, args.clips)
        print(f"generated {n} synthetic 5 s clips in {time.perf_counter() - start:.0f} s")

        start = time.perf_counter()
        code = l3net_main(["eval", "sound", "--model", args.model, "--dataset", f"esc50:{data}", "--out", str(out),
                           "--batch-size", str(args.batch_size)])
        total = time.perf_counter() - start
        if code != 0:
            print("eval sound failed", file=sys.stderr)
            return code
        metrics = json.loads((out / "eval" / "sound.json").read_text())["metrics"]

    subclips = metrics["dataset"]["subclips"]
    timing = metrics["timing"]
    print(f"\neval sound, {n} clips = {subclips} subclips, small preset, batch {args.batch_size}:")
    print(f"  total (command, in-process)        {total:8.1f} s   {subclips / total:6.1f} subclips/s end to end")
    print(f"  decode + L3 + MFCC features        {timing['extract_seconds']:8.1f} s   "
          f"{timing['subclips_per_second']:6.1f} subclips/s")
    print(f"  SVMs (L3 + MFCC, {len(metrics['l3']['splits'])} folds each)      {timing['classify_seconds']:8.1f} s")
    print(f"  accuracy: L3 ({args.model}) {metrics['l3']['accuracy']:.1%}, MFCC {metrics['mfcc']['accuracy']:.1%}")

    one, batched = batching_ratio(args.batch_size)
    print(f"\nbaseline, same run: L3 features clip by clip {one:.1f} subclips/s, batched ({args.batch_size}) "
          f"{batched:.1f} subclips/s: batching x{batched / one:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

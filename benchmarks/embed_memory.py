"""Peak memory of embedding a 1-hour audio FILE with ``l3net.process_audio_file`` (paper preset, CPU).

The file (44.1 kHz stereo FLAC: a tone on each channel, generated with FFmpeg into a temporary folder) is
embedded in a fresh child process whose peak RSS (``ru_maxrss``) is reported, next to its RSS
before embedding (Python, torch and the model). A large hop (``--hop-size``, default 60 s) keeps
the network's work affordable on a CPU (61 windows) while the whole hour is still decoded,
resampled to 48 kHz and streamed through the framer; memory does not depend on the hop (only
``batch_size`` windows exist at a time). Target: peak RSS < 2 GB.

For scale: the hour's waveform alone is 0.69 GB as float32 at 48 kHz, and OpenL3's float64 frames
at a 0.1 s hop ~14 GB.

    python benchmarks/embed_memory.py                    # 1 hour, hop 60 s, batch 32
    python benchmarks/embed_memory.py --hours 0.25 --hop-size 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine  # noqa: E402

CHILD = r"""
import json, resource, sys, time
from l3net import process_audio_file
from l3net.models import load_model
path, out, preset, hop, batch = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
model = load_model(preset)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
written = process_audio_file(path, out, model, hop_size=hop, batch_size=batch)
elapsed = time.perf_counter() - start
import numpy as np
windows = len(np.load(written)["timestamps"])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rss_before_mb": before / 1024, "peak_rss_mb": peak / 1024, "seconds": elapsed, "windows": windows}))
"""


def make_file(path: Path, seconds: float) -> None:
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    # Two tones on two channels: it compresses well (~50 MB for an hour), and decoding, channel
    # mixing and resampling cost the same as for any other sound.
    graph = (
        f"sine=frequency=440:sample_rate=44100:duration={seconds}[a];"
        f"sine=frequency=1250:sample_rate=44100:duration={seconds}[b];"
        "[a][b]amerge=inputs=2"
    )
    subprocess.run(
        [ffmpeg, "-v", "error", "-y", "-filter_complex", graph, "-c:a", "flac", str(path)], check=True
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--hop-size", type=float, default=60.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--preset", default="paper")
    args = parser.parse_args()
    print(describe_machine())
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "hour.flac"
        start = time.perf_counter()
        make_file(audio, args.hours * 3600)
        print(f"generated {audio.name}: {args.hours * 3600:.0f} s, 44.1 kHz stereo FLAC, "
              f"{audio.stat().st_size / 2**20:.0f} MB ({time.perf_counter() - start:.0f} s)")
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(audio), tmp, args.preset, str(args.hop_size), str(args.batch_size)],
            capture_output=True, text=True, check=True,
        )
        stats = json.loads(result.stdout.strip().splitlines()[-1])
    print(
        f"preset {args.preset}, hop {args.hop_size} s, batch {args.batch_size}: {stats['windows']} windows in "
        f"{stats['seconds']:.0f} s\n"
        f"RSS before embedding: {stats['rss_before_mb']:.0f} MB; peak RSS while embedding the file: "
        f"{stats['peak_rss_mb']:.0f} MB (target < 2048 MB)"
    )
    return 0 if stats["peak_rss_mb"] < 2048 else 1


if __name__ == "__main__":
    raise SystemExit(main())

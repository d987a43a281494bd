"""Benchmark: `l3net prepare` on a long file reads only what it keeps.

Ten seconds are prepared (`--seconds 10`, frames at 4 fps, 64 px) from a one-minute and a one-hour
file (H.264 + AAC, 96 x 64 px, written here with PyAV into a temporary folder, MP4 and MPEG-TS: the
latter has no index), from the start and from near the end (`--start`). Each preparation runs in a
fresh process, into a fresh folder (the fastest of --repeats counts); its wall time and peak RSS are
reported, and the ratios of the one-hour file's to the one-minute file's, which the target bounds
(issue 10: time and memory independent of the file's length). Opening an MP4 parses its whole
index (the moov box), which does grow with the file; prepare opens each file three times (probe,
sound, picture).
Target: one hour / one minute <= 1.5x in time and <= 1.2x in peak RSS, at every start.

    python benchmarks/prepare_long.py [--hours 1.0] [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from _machine import describe_machine

FPS, WIDTH, HEIGHT, RATE = 25, 96, 64, 48_000

CHILD = """
import json, resource, sys, time
from l3net.data.prepare import PrepareConfig, prepare
path, out, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
began = time.perf_counter()
prepare([path], out, config=PrepareConfig(seconds=10.0, start=start, fps=4.0, frame_size=64, split_ratios=(1, 0, 0)), progress=False)
seconds = time.perf_counter() - began
line = json.loads(open(out + "/manifest-00000.jsonl").readline())
print(json.dumps({"seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "status": line["status"], "seek": [line.get("timing", {}).get(k) for k in ("audio_seek", "video_seek")]}))
"""


def write_long_video(path: Path, seconds: float, container_format: str | None = None) -> None:
    """A low-resolution H.264 (ultrafast, a keyframe every 10 s) + AAC file, written in one pass."""
    with av.open(str(path), "w", format=container_format) as out:
        video = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "g": str(10 * FPS)})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = out.add_stream("aac", rate=RATE, layout="mono")
        pictures = [av.VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), k * 37 % 256, np.uint8), format="rgb24") for k in range(7)]
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)).astype(np.float32)
        frames, samples = round(seconds * FPS), round(seconds * RATE)
        v = a = 0
        while v < frames or a < samples:  # one second of each at a time: interleaved like a real file
            for _ in range(FPS):
                if v < frames:
                    picture = pictures[v // FPS % len(pictures)]
                    picture.pts, picture.time_base = v, Fraction(1, FPS)
                    out.mux(video.encode(picture))
                    v += 1
            if a < samples:
                n = min(RATE, samples - a)
                sound = av.AudioFrame.from_ndarray(tone[None, :n].copy(), format="fltp", layout="mono")
                sound.sample_rate, sound.pts, sound.time_base = RATE, a, Fraction(1, RATE)
                out.mux(audio.encode(sound))
                a += n
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


def prepare_best(path: Path, start: float, scratch: Path, repeats: int) -> dict:
    """The fastest of ``repeats`` runs, each in a fresh process and a fresh output folder."""
    runs = []
    for repeat in range(repeats):
        out = scratch / f"out-{path.stem}-{path.suffix[1:]}-{start:g}-{repeat}"
        shutil.rmtree(out, ignore_errors=True)
        result = subprocess.run([sys.executable, "-c", CHILD, str(path), str(out), str(start)], capture_output=True, text=True, check=True)
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
        shutil.rmtree(out, ignore_errors=True)
    return min(runs, key=lambda run: run["seconds"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=1.0, help="length of the long file (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each preparation; the fastest counts (default 3)")
    parser.add_argument("--keep", metavar="DIR", help="write the files here and keep them (default: a temporary folder)")
    args = parser.parse_args()
    print(describe_machine())
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="l3net-prepare-long-"))
    folder.mkdir(parents=True, exist_ok=True)
    long_seconds = args.hours * 3600
    rows = []
    worst_time = worst_rss = 0.0
    for suffix, container_format in ((".mp4", None), (".ts", "mpegts")):
        short, long = folder / f"minute{suffix}", folder / f"long{suffix}"
        for path, seconds in ((short, 60.0), (long, long_seconds)):
            if not path.exists():
                print(f"writing {path.name} ({seconds / 60:g} min)...", flush=True)
                write_long_video(path, seconds, container_format)
        for where, short_start, long_start in (("start", 0.0, 0.0), ("near the end", 45.0, long_seconds - 15.0)):
            a = prepare_best(short, short_start, folder, args.repeats)
            b = prepare_best(long, long_start, folder, args.repeats)
            time_ratio, rss_ratio = b["seconds"] / a["seconds"], b["peak_rss_mib"] / a["peak_rss_mib"]
            worst_time, worst_rss = max(worst_time, time_ratio), max(worst_rss, rss_ratio)
            rows.append(
                f"{suffix[1:]:>4}  {where:<13} 1 min: {a['seconds']:5.2f} s {a['peak_rss_mib']:5.0f} MiB | "
                f"{args.hours:g} h: {b['seconds']:5.2f} s {b['peak_rss_mib']:5.0f} MiB (seek {b['seek'][0]}/{b['seek'][1]}) | "
                f"ratio {time_ratio:.2f}x time, {rss_ratio:.2f}x RSS"
            )
            print(rows[-1], flush=True)
    ok = worst_time <= 1.5 and worst_rss <= 1.2
    print(f"\nworst long/short ratio: {worst_time:.2f}x time (target <= 1.5x), {worst_rss:.2f}x peak RSS (target <= 1.2x): "
          f"{'met' if ok else 'NOT met'}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: videos/s of `l3net prepare` against the ffmpeg command line doing the same work.

The same files, the same run: the first 10 s of each video, frames at 4 fps scaled so the smaller
side is 256 px and written as JPEG, the audio mixed to mono and resampled to 48 kHz (with the same
resampler settings) and written as 16-bit WAV. ffmpeg runs as --workers parallel processes (one
per file at a time), l3net with --workers decoding processes. Wall time is reported, and CPU time
(user + system of every process involved), which a busy shared machine disturbs less.
Target (issue 3): l3net >= 1.0x ffmpeg's throughput.

The default of 48 videos (plus the 5 real ones) keeps the start-up of a run (the worker pool, the
first decode in each worker: ~0.2 s) from dominating what is a throughput figure; a few videos
measure start-up more (``--videos 12`` gives a somewhat lower ratio: see BENCHMARKS.md).

    python benchmarks/prepare.py [--videos 48] [--workers 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio_ffmpeg

from _machine import describe_machine
from l3net.data.prepare import PrepareConfig, prepare
from l3net.data.synth import WorldConfig, make_world
from l3net.media import RESAMPLER_OPTIONS

REAL_AV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_av"


def cpu_seconds() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def ffmpeg_one(exe: str, video: Path, out: Path, config: PrepareConfig) -> None:
    out.mkdir(parents=True, exist_ok=True)
    side = config.frame_size
    scale = f"scale='if(lt(iw,ih),{side},-2)':'if(lt(iw,ih),-2,{side})':flags=area"
    command = [
        exe, "-nostdin", "-v", "error", "-y", "-t", str(config.seconds), "-i", str(video),
        "-map", "0:v:0", "-vf", f"fps={config.fps},{scale}", "-q:v", "2", str(out / "%03d.jpg"),
        "-map", "0:a:0", "-af", f"aresample=48000:{RESAMPLER_OPTIONS}", "-ac", "1",
        "-c:a", "pcm_s16le", str(out / "audio.wav"),
    ]
    subprocess.run(command, check=True)


def run_ffmpeg(videos: list[Path], out: Path, config: PrepareConfig, workers: int) -> tuple[float, float]:
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    shutil.rmtree(out, ignore_errors=True)
    cpu, wall = cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda iv: ffmpeg_one(exe, iv[1], out / f"{iv[0]:04d}", config), enumerate(videos)))
    return time.perf_counter() - wall, cpu_seconds() - cpu


def run_l3net(videos: list[Path], out: Path, config: PrepareConfig, workers: int) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    cpu, wall = cpu_seconds(), time.perf_counter()
    summary = prepare(videos, out, config=config, workers=workers, progress=False)
    elapsed = time.perf_counter() - wall, cpu_seconds() - cpu
    assert sum(summary.kept.values()) == len(videos), summary.table()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=48, help="synthetic 10 s 256 px videos (plus the 5 real ones)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(describe_machine())
    config = PrepareConfig(seconds=10.0, fps=4.0, frame_size=256, split_ratios=(1, 0, 0), shard_size=1000)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cpu, wall = cpu_seconds(), time.perf_counter()
        world = make_world(tmp / "world", WorldConfig(videos=args.videos, seconds=10.0, size=256, seed=0), workers=args.workers)
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        print(f"l3net synth: {args.videos / wall:.2f} ten-second 256 px videos/s with {args.workers} workers "
              f"({args.videos / cpu:.2f} per CPU-second; target >= 2/s on 2 cores)")
        videos = sorted((world / "videos").glob("*.mp4"))
        if REAL_AV.is_dir():
            videos += sorted(REAL_AV.iterdir())
        print(f"{len(videos)} videos ({args.videos} synthetic 256x256 H.264/AAC 10 s, plus {len(videos) - args.videos} real, 3-8 s), "
              f"{args.workers} workers, best of {args.repeats}")
        best = {"ffmpeg": (float("inf"), 0.0), "l3net": (float("inf"), 0.0)}
        for _ in range(args.repeats):  # alternate, so a change of machine load hits both
            for name, fn in (("ffmpeg", run_ffmpeg), ("l3net", run_l3net)):
                wall, cpu = fn(videos, tmp / name, config, args.workers)
                print(f"  {name:<7} {wall:7.2f} s wall ({len(videos) / wall:6.2f} videos/s), {cpu:7.2f} s CPU ({len(videos) / cpu:6.2f} videos per CPU-second)")
                if wall < best[name][0]:
                    best[name] = (wall, cpu)
        (fw, fc), (lw, lc) = best["ffmpeg"], best["l3net"]
        print(f"l3net prepare / ffmpeg throughput: {fw / lw:.2f}x (wall), {fc / lc:.2f}x (CPU)   target >= 1.0x")


if __name__ == "__main__":
    sys.exit(main())

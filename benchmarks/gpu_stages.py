"""The stages of the one-shot GPU check: ``benchmarks/gpu.sh`` runs each in its own process under its own
time limit (``python benchmarks/gpu.py STAGE``). Each stage writes ``WORK/STAGE.json`` after every part
it finishes, so a stage stopped at its limit still leaves what it measured.

- **data**: synthetic videos rendered at 16:9 (640 x 360; toy sizes with ``--smoke``) and prepared by
  ``l3net prepare`` into shards whose frames are 256 x 455, real-size 16:9 frames;
- **train**: the bare step (benchmarks/train.py's: in-memory batches, bf16, channels_last, compiled,
  cuDNN autotuning and TF32 choice as l3net train's device set-up makes them, synchronised) against ``l3net train`` on the shards (60 timed steps at batch 256,
  the paper preset), pairs/s both ways, peak memory, achieved FLOP/s against the device's dense bf16
  peak, and a few eager steps of ``l3net train`` under ``torch.cuda.set_sync_debug_mode("warn")``
  listing where the host waits for the device;
- **loader**: pairs/s of ``l3net train``'s own DataLoader (the real pair pipeline) at 4, 8 and 15
  workers, nothing on the GPU;
- **numerics** (benchmarks/gpu_numerics.py): fp32 and bf16 embeddings on the device against the CPU's (max |difference| / max
  |value|), 20 fp16 training steps with a finite loss, then a compiled inference copy at batches 7, 32
  and 256 across 5 model instances with the graphs counted (ours and dynamo's; eager with ``--smoke``);
- **embed** (benchmarks/gpu_numerics.py): audio windows/s of the embedding API (fp32, bf16) against the bare network in the same run.

Every rate ends after the device has finished the work it counts: a synchronisation (or results
arriving on the host) comes before the clock is read.
"""

from __future__ import annotations

import dataclasses
import io
import json
import multiprocessing
import subprocess
import sys
import tarfile
import time
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

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
    """The dense bf16 peak (FLOP/s) of a GPU by its name, or None when it is not in :data:`PEAK_BF16`."""
    for key, value in PEAK_BF16.items():
        if key.lower() in device_name.lower():
            return value
    return None


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each stage is: the real check's sizes, or toy ones for ``--smoke``."""

    preset: str
    batch: int  # training pairs per step
    steps: int  # timed training steps
    warmup: int  # untimed steps first (compilation included)
    videos: int
    seconds: float  # per video
    video_height: int  # 16:9 videos of this height; prepare stores the preset's image_resize
    loader_workers: tuple[int, ...]
    loader_seconds: float  # timed loading per worker count
    instances: int  # model instances of the compilation check
    compile_batches: tuple[int, ...]
    fp16_steps: int
    fp16_batch: int
    sync_steps: int  # steps under the sync debug mode (two log intervals)
    embed_seconds: float  # audio given to the embedding API
    embed_batch: int

    @classmethod
    def choose(cls, smoke: bool) -> "Sizes":
        if smoke:
            return cls("small", 4, 2, 1, 8, 2.0, 112, (1, 2), 1.0, 2, (3, 5), 3, 4, 4, 2.0, 4)
        return cls("paper", 256, 60, 10, 64, 6.0, 360, (4, 8, 15), 6.0, 5, (7, 32, 256), 20, 64, 6, 120.0, 256)


class Results:
    """A stage's figures, written to its JSON file (atomically) every time a part is added."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}

    def put(self, key: str, value: Any) -> None:
        from l3net.fileio import write_json

        self.data[key] = value
        write_json(self.path, self.data)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|, both in fp32 on the CPU."""
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
def _wide_video(task: tuple[str, Any, Any, int]) -> str:
    """Render one synthetic video and stretch its square frames to 16:9 (``width`` x the height)."""
    from PIL import Image

    from l3net.data.synth import write_video, render_video

    out_dir, world, plan, width = task
    frames, audio, _ = render_video(world, plan)
    height = world.size
    wide = (np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BILINEAR)) for f in frames())
    path = Path(out_dir) / f"{plan.name}.mp4"
    write_video(path, wide, audio, fps=world.fps)
    return str(path)


def stage_data(work: Path, sizes: Sizes, workers: int, results: Results) -> None:
    from l3net.config import get_preset
    from l3net.data.synth import WorldConfig, plan_videos

    start = time.perf_counter()
    world = WorldConfig(videos=sizes.videos, classes=4, seconds=sizes.seconds, size=sizes.video_height)
    width = round(sizes.video_height * 16 / 9 / 2) * 2
    videos = work / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    tasks = [(str(videos), world, plan, width) for plan in plan_videos(world)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_wide_video, tasks))
    rendered = time.perf_counter() - start
    frame_size = get_preset(sizes.preset).image_resize
    shards = work / "shards"
    subprocess.run([sys.executable, "-m", "l3net", "prepare", str(videos), "--out", str(shards), "--seconds",
                    f"{sizes.seconds:g}", "--frame-size", str(frame_size), "--split-ratios", "0.8", "0.1", "0.1",
                    "--shard-size", str(max(2, sizes.videos // (2 * workers))), "--workers", str(workers), "--quiet"],
                   check=True)
    frame = first_frame_size(shards)
    results.put("data", {"videos": sizes.videos, "seconds_each": sizes.seconds, "video_size": [width, sizes.video_height],
                         "frame_size": frame, "render_s": rendered, "total_s": time.perf_counter() - start})
    print(f"data: {sizes.videos} videos of {sizes.seconds:g} s at {width} x {sizes.video_height} -> shards with "
          f"{frame[0]} x {frame[1]} frames in {time.perf_counter() - start:.0f} s", flush=True)


def first_frame_size(shards: Path) -> list[int]:
    """(width, height) of the first JPEG frame in the first train shard."""
    from PIL import Image

    shard = sorted(shards.glob("train-*.tar"))[0]
    with tarfile.open(shard) as tar:
        for member in tar:
            if member.name.endswith(".jpg"):
                return list(Image.open(io.BytesIO(tar.extractfile(member).read())).size)
    raise RuntimeError(f"{shard}: no JPEG frame")


# ------------------------------------------------------------------------------------------------
# training truth
# ------------------------------------------------------------------------------------------------
def train_config(work: Path, sizes: Sizes, device: torch.device, precision: str, name: str, **changes: Any) -> Any:
    from l3net.train import TrainConfig

    steps = sizes.warmup + sizes.steps
    settings = dict(data=str(work / "shards"), out=str(work / name), preset=sizes.preset, batch_size=sizes.batch,
                    steps=steps, val_every=0, val_pairs=sizes.batch, save_every=steps, log_every=sizes.warmup,
                    precision=precision, device=str(device), compile=device.type == "cuda", channels_last=True)
    settings.update(changes)
    return TrainConfig(**settings)


def log_rates(run: Path, batch: int) -> dict[str, float]:
    """``l3net train``'s own pairs/s over its log intervals after the first (the warm-up), and the same
    pairs over the log's clock (the ``time`` of the first and last of those records)."""
    from l3net.train import read_log

    records = [r for r in read_log(run) if r["event"] == "train"]
    timed = records[1:]
    pairs = (timed[-1]["step"] - records[0]["step"]) * batch
    seconds = sum(r["interval_s"] for r in timed)
    wait = sum(r["data_wait_s"] for r in timed)
    clock = timed[-1]["time"] - records[0]["time"]
    return {"pairs_per_s": pairs / seconds, "pairs_per_s_log_clock": pairs / clock if clock > 0 else float("nan"),
            "data_wait_fraction": wait / seconds, "timed_steps": pairs // batch}


def hidden_syncs(work: Path, sizes: Sizes, device: torch.device, precision: str) -> dict[str, Any]:
    """Eager ``l3net train`` steps (two log intervals) under the sync debug mode: where the host waited."""
    from l3net.train import train

    steps = sizes.sync_steps
    config = train_config(work, sizes, device, precision, "run-syncs", steps=steps, log_every=steps // 2,
                          save_every=steps, compile=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            train(config, progress=False)
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
    places = Counter(f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message))
    return {"steps": steps, "log_intervals": 2, "syncs": sum(places.values()), "by_place": dict(places.most_common(20)),
            "checked": device.type == "cuda"}


def run_workers(run: Path) -> int | None:
    """The loader workers a run used (its config.json: l3net train's default resolved), if written."""
    try:
        return int(json.loads((run / "config.json").read_text())["train"]["workers"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def stage_train(work: Path, sizes: Sizes, device: torch.device, precision: str, workers: int | None,
                results: Results) -> None:
    """``workers``: l3net train's loader processes (None: its own default, what users get)."""
    import train as train_benchmark  # benchmarks/train.py: its bare step

    from l3net.config import get_preset
    from l3net.data.sampler import AVCPairs
    from l3net.models import build_model
    from l3net.train import train

    config = get_preset(sizes.preset)
    step_flops = 3 * build_model(config).flops_per_pair()["total"]  # forward + backward (about twice the forward)
    peak = peak_bf16(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    stream = iter(AVCPairs(work / "shards", "train", config=config, batch_size=sizes.batch))
    batches = [next(stream) for _ in range(4)]
    options = SimpleNamespace(device=str(device), preset=sizes.preset, batch_size=sizes.batch, precision=precision,
                              warmup=sizes.warmup, compile=device.type == "cuda", channels_last=True)
    reset_peak(device)
    bare = train_benchmark.bare_pairs_per_s(options, batches, sizes.steps)  # synchronised before each clock reading
    results.put("bare", {"pairs_per_s": bare, "peak_gib": peak_gib(device), "flop_per_s": bare * step_flops,
                         "share_of_peak": bare * step_flops / peak if peak else None, "precision": precision,
                         "batch": sizes.batch, "compiled": options.compile, "channels_last": True})
    print(f"  bare step    {bare:12,.1f} pairs/s", flush=True)

    reset_peak(device)
    run = work / "run-train"
    train(train_config(work, sizes, device, precision, run.name, workers=workers), progress=False)
    rates = log_rates(run, sizes.batch)
    real = rates["pairs_per_s"]
    results.put("train", {**rates, "peak_gib": peak_gib(device), "flop_per_s": real * step_flops,
                          "share_of_peak": real * step_flops / peak if peak else None, "ratio_to_bare": real / bare,
                          "workers": run_workers(run), "precision": precision, "batch": sizes.batch})
    print(f"  l3net train  {real:12,.1f} pairs/s ({real / bare:.2f} x bare; {rates['pairs_per_s_log_clock']:,.1f} by "
          f"the log's clock; waiting for data {100 * rates['data_wait_fraction']:.0f} % of the time)", flush=True)

    syncs = hidden_syncs(work, sizes, device, precision)
    results.put("hidden_syncs", syncs)
    print(f"  syncs in {syncs['steps']} eager steps ({syncs['log_intervals']} log intervals): {syncs['syncs']}"
          + ("" if syncs["checked"] else " (not checked: no CUDA)"), flush=True)
    for place, count in syncs["by_place"].items():
        print(f"    {count:4d}  {place}")


# ------------------------------------------------------------------------------------------------
# loader alone
# ------------------------------------------------------------------------------------------------
def stage_loader(work: Path, sizes: Sizes, device: torch.device, results: Results) -> None:
    """``l3net train``'s own DataLoader (Trainer.setup builds it), timed after its first batches."""
    from l3net.train import Trainer

    rows = []
    for workers in sizes.loader_workers:
        trainer = Trainer(train_config(work, sizes, device, "fp32", f"run-loader-{workers}", workers=workers,
                                       compile=False), progress=False)
        try:
            trainer.setup()
            batches = iter(trainer.train_loader)
            for _ in range(max(1, workers)):  # every worker's first batch: start-up, not throughput
                next(batches)
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < sizes.loader_seconds:
                next(batches)
                count += 1
            rate = count * sizes.batch / (time.perf_counter() - start)
        finally:
            trainer.close()
        rows.append({"workers": workers, "pairs_per_s": rate, "batches": count})
        results.put("loader", rows)
        print(f"  {workers:3d} workers {rate:12,.1f} pairs/s", flush=True)

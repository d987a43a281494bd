"""Memory and speed of the streamed linear probe (``l3net eval probe --solver adam``, Table 3 at scale).

Generates ImageNet-laid-out folders of small JPEGs under a temporary directory (``train/<class>/``,
a flat ``val/`` with ``LOC_val_solution.csv``; never inside the repository), then runs the real
command in a child process, once on a folder of ``--small`` images and once on ``--images`` images,
and reports for each:

- peak memory of the whole process tree (the command and its DataLoader workers), sampled every
  0.1 s from /proc: the sum of RSS (counts pages the workers share with their parent once per
  process: an upper bound) and the sum of PSS (shared pages divided among their users: the real
  total). (``ru_maxrss`` is not used: Linux carries it across exec from this benchmark process.)
- training images per second (end to end: decode, augment, both rows' tower and linear layer);
- the ratio of the two runs' peaks: memory must not grow with the number of images (target: peak
  PSS < 3 GB and a ratio near 1).

A third, short measurement gives the DataLoader alone (decode + augmentation, no network) in
images per second per worker, the figure that sizes ``--workers`` on a GPU machine.

    python benchmarks/probe_stream.py                            # 20,000 and 5,000 images, small preset
    python benchmarks/probe_stream.py --images 50000 --preset paper --workers 8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine  # noqa: E402

CHILD = r"""
import argparse, json, sys, time
from l3net.cli.eval import probe  # the command's own module (parser + run), as `l3net eval probe` runs it
parser = argparse.ArgumentParser()
probe.add_arguments(parser)
start = time.perf_counter()
code = probe.run(parser.parse_args(sys.argv[1:]))
seconds = time.perf_counter() - start
print("BENCH " + json.dumps({"code": code, "seconds": seconds}))
"""


def make_tree(root: Path, images: int, classes: int, val_fraction: float = 0.1, seed: int = 0,
              size: tuple[int, int] = (64, 48)) -> Path:
    """ImageNet's layout with ``images`` JPEGs (``size``, a noisy colour per class; bigger ones smooth
    gradients plus noise, ~ImageNet's bytes per pixel)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    n_val = int(images * val_fraction)
    (root / "val").mkdir(parents=True)
    lines = ["ImageId,PredictionString"]
    for i in range(images):
        label = f"n{i % classes:08d}"
        colour = np.array([(i % classes) * 37 % 256, (i % classes) * 91 % 256, (i % classes) * 53 % 256])
        w, h = size
        ramp = np.linspace(0, 120, w)[None, :, None] + np.linspace(0, 60, h)[:, None, None]
        pixels = np.clip(colour + (ramp if w > 64 else 0) + rng.normal(0, 40 if w <= 64 else 12, (h, w, 3)),
                         0, 255).astype(np.uint8)
        if i < n_val:
            name = f"ILSVRC2012_val_{i:08d}"
            Image.fromarray(pixels).save(root / "val" / f"{name}.JPEG", quality=85)
            lines.append(f"{name},{label} 0 0 10 10")
        else:
            folder = root / "train" / label
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(folder / f"{label}_{i}.JPEG", quality=85)
    (root / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    return root


def _tree_pids(root: int) -> list[int]:
    pids, frontier = [root], [root]
    while frontier:
        pid = frontier.pop()
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                for child in map(int, children):
                    pids.append(child)
                    frontier.append(child)
        except OSError:
            continue
    return pids


def _memory(pids: list[int]) -> tuple[float, float]:
    """(sum of RSS, sum of PSS) in MB over ``pids``."""
    rss = pss = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) / 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) / 1024
        except OSError:
            continue
    return rss, pss


def run_probe(tree: Path, out: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, "-c", CHILD, "--model", f"random:{args.preset}", "--images", str(tree),
               "--out", str(out), "--solver", "adam", "--epochs", "1", "--random-seeds", "1",
               "--workers", str(args.workers), "--batch-size", str(args.batch_size), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(args.threads))}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = {"rss": 0.0, "pss": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss, pss = _memory(_tree_pids(process.pid))
            peak["rss"], peak["pss"] = max(peak["rss"], rss), max(peak["pss"], pss)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    done.set()
    sampler.join()
    line = next((l for l in stdout.splitlines() if l.startswith("BENCH ")), None)
    if process.returncode != 0 or line is None:
        raise SystemExit(f"the probe failed ({process.returncode}):\n{stderr[-3000:]}")
    stats = json.loads(line[6:])
    metrics = json.loads((out / "eval" / "probe.json").read_text())["metrics"]
    return {**stats, "peak_tree_rss_mb": peak["rss"], "peak_tree_pss_mb": peak["pss"],
            "train_images": metrics["dataset"]["train_images"], "val_images": metrics["dataset"]["val_images"],
            "train_seconds": metrics["timing"]["train_seconds"],
            "train_images_per_second": metrics["timing"]["train_images_per_second"]}


def loader_rate(tree: Path, preset_name: str, workers: int, batch_size: int, batches: int = 60) -> float:
    """Images per second of the DataLoader alone (decode + augmentation), ``workers`` workers."""
    from l3net.config import get_preset
    from l3net.evaluate.probe.data import read_probe_images
    from l3net.evaluate.probe.loader import EpochBatches, ProbeImageDataset, loader

    images = read_probe_images(tree)
    data = ProbeImageDataset(images.train, get_preset(preset_name), train=True)
    batches_ = EpochBatches(len(images.train), batch_size, seed=0, epochs=1)
    batches = min(batches, batches_.per_epoch - 3)
    count, start = 0, None
    for i, batch in enumerate(loader(data, batches_, workers=workers)):
        if i == 2:  # the workers have started
            start, count = time.perf_counter(), 0
        count += len(batch.labels)
        if i == batches + 2:
            break
    return count / (time.perf_counter() - start)


def tower_rate(batch_size: int, batches: int = 3) -> float:
    """Images per second of the paper preset's transfer feature (the frozen tower) on this CPU."""
    import torch

    from l3net.inference import inference_model
    from l3net.models import build_model

    fast = inference_model(build_model("paper", seed=0).eval(), precision="fp32")
    x = torch.randint(0, 256, (16, 3, 256, 256), dtype=torch.uint8)
    fast.transfer_features("vision", x)  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        fast.transfer_features("vision", x)
    return 16 * batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000, help="images of the large folder (default: 20000)")
    parser.add_argument("--small", type=int, default=5_000, help="images of the small folder (default: 5000)")
    parser.add_argument("--classes", type=int, default=100, help="classes (default: 100)")
    parser.add_argument("--preset", default="small", help="model preset (default: small; paper on a GPU)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (default: 2)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    parser.add_argument("--threads", type=int, default=1, help="OMP threads of the child when unset (default: 1)")
    args = parser.parse_args()
    print(describe_machine())
    with tempfile.TemporaryDirectory(prefix="l3net_probe_bench_") as tmp:
        tmp = Path(tmp)
        began = time.perf_counter()
        small = make_tree(tmp / "small", args.small, args.classes, seed=1)
        large = make_tree(tmp / "large", args.images, args.classes, seed=2)
        disk = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()) / 2**20
        print(f"generated {args.small:,} + {args.images:,} JPEGs (64 x 48, {disk:.0f} MB) in "
              f"{time.perf_counter() - began:.0f} s under {tmp}")
        rate = loader_rate(large, args.preset, args.workers, args.batch_size)
        print(f"DataLoader alone (decode + Inception augmentation to {args.preset}'s transfer size), "
              f"{args.workers} workers: {rate:.0f} images/s ({rate / max(args.workers, 1):.0f} per worker)")
        sized = make_tree(tmp / "imagenet_sized", 400, 4, seed=3, size=(500, 375))
        per_file = sum(p.stat().st_size for p in (sized / "train").rglob("*.JPEG")) / 360 / 1024
        one = loader_rate(sized, "paper", 1, 16, batches=18)
        print(f"ImageNet-sized JPEGs (500 x 375, {per_file:.0f} kB each) to the paper's 256 x 256, 1 worker: "
              f"{one:.1f} images/s per worker")
        tower = tower_rate(args.batch_size)
        print(f"paper preset vision tower, conv4_2 transfer feature at 256 x 256, fp32, this CPU "
              f"({os.environ.get('OMP_NUM_THREADS', 'all')} threads): {tower:.1f} images/s per row")
        results = {}
        for name, tree in (("small", small), ("large", large)):
            r = run_probe(tree, tmp / f"out_{name}", args)
            results[name] = r
            print(f"{r['train_images']:>7,} training images: peak tree PSS {r['peak_tree_pss_mb']:.0f} MB, "
                  f"peak tree RSS {r['peak_tree_rss_mb']:.0f} MB; {r['train_images_per_second']:.0f} training "
                  f"images/s (2 rows), {r['seconds']:.0f} s in all")
        ratio = results["large"]["peak_tree_pss_mb"] / results["small"]["peak_tree_pss_mb"]
        print(f"peak PSS, {args.images:,} vs {args.small:,} images: {ratio:.2f}x "
              f"({'bounded' if ratio < 1.25 else 'GROWS with the data'}); "
              f"target < 3 GB: {'met' if results['large']['peak_tree_pss_mb'] < 3072 else 'NOT met'}")


if __name__ == "__main__":
    main()

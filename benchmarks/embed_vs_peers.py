"""Embedding speed, l3net against openl3 0.4.2 (TensorFlow) and torchopenl3 1.0.1, in one run.

Same CPU, same input, same settings (hop 0.1 s, batch 32, centred windows), random weights for all:
l3net's ``paper`` preset against the peers' ``linear`` network (the paper's 257 x 199 linear
spectrogram and VGG towers), 512-D embeddings. The peers run in their own environments
(``../shared/tools/install-peers DIR``; see ``_peers.py``), started once and kept waiting while the
others run; every round times each system once, in a rotating order, and the best round counts.

- **audio**: one call of each library's ``get_audio_embedding`` on a real recording (tiled from
  ``../shared/data/audio``) of each ``--clips`` length;
- **mixed lengths**: l3net over ``--mixed`` clips of different lengths, one call each, after one
  warm-up call: windows/s against the single-clip figure (a recompilation per length would show);
- **images**: ``get_image_embedding`` of ``--images`` real photos (256 x 256, centre 224 crop),
  l3net's vision tower against openl3's image network;
- **first call**: the first call of each l3net variant, which builds its inference copy (and,
  compiled, compiles), on a 1 s clip.

l3net variants: ``fp32`` (the default: inference copy, BatchNorm folded, channels_last), ``auto``
(bf16 where the CPU has AMX/AVX512-BF16, else fp32: then not repeated), ``bf16`` (skipped on CPUs
without bf16 instructions, where PyTorch emulates it ~50x slower), ``fp32 compiled`` (``--compiled``)
and ``training model`` (the model itself in eager mode: what embedding ran before the inference copy).
Targets: fp32 >= 1.0x openl3; bf16 >= 3x openl3 on a CPU with AMX/AVX512-BF16; mixed >= 0.8x.

    python benchmarks/embed_vs_peers.py                         # 10 s and 60 s clips, 2 rounds
    python benchmarks/embed_vs_peers.py --clips 10 --repeats 1 --compiled
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine  # noqa: E402
from _peers import DEFAULT_PEERS, PeerWorker, find_peers  # noqa: E402

from l3net import get_audio_embedding, get_image_embedding  # noqa: E402
from l3net.config import SAMPLE_RATE  # noqa: E402
from l3net.config import get_preset  # noqa: E402
from l3net.inputs import prepare_image  # noqa: E402
from l3net.framing import batch_windows as _batches, iter_windows, window_count  # noqa: E402
from l3net.inference import InferenceModel, resolve_precision  # noqa: E402
from l3net.media import load_audio, load_image  # noqa: E402
from l3net.models import load_model  # noqa: E402
from l3net.runtime import cpu_has_native_bf16  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
Timer = Callable[[np.ndarray], tuple[float, float]]  # input -> (wall s, CPU s)


def real_audio(data: Path, seconds: float) -> np.ndarray:
    """``seconds`` of real recordings at 48 kHz mono: the files of data/audio one after another, repeated."""
    pieces = [load_audio(p) for p in sorted((data / "audio").iterdir()) if p.is_file()]
    joined = np.concatenate(pieces)
    n = round(seconds * SAMPLE_RATE)
    return np.resize(joined, n).astype(np.float32)  # np.resize repeats the sequence


def real_images(data: Path, count: int) -> np.ndarray:
    """``count`` real photos (repeated if needed) as uint8 ``(count, 256, 256, 3)``."""
    paths = sorted(p for p in (data / "photos").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    photos = [prepare_image(load_image(p), get_preset("paper"), transfer=True, name=str(p)) for p in paths]  # 256 x 256
    return np.stack([photos[i % len(photos)] for i in range(count)])


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds, all its threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _pair(reply: dict) -> tuple[float, float]:
    """A peer's reply -> (wall s, CPU s of the peer's process)."""
    return reply["seconds"], reply["cpu_seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", default=DEFAULT_PEERS, help=f"install-peers directory (default: {DEFAULT_PEERS})")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="the shared test media")
    parser.add_argument("--clips", type=float, nargs="+", default=[10.0, 60.0], help="clip lengths (s)")
    parser.add_argument("--mixed", type=float, nargs="+", default=[2.3, 7.9, 4.1, 0.6, 12.4, 5.2],
                        help="lengths (s) of the mixed-length clips")
    parser.add_argument("--images", type=int, default=64, help="photos per image run (0: no image rows)")
    parser.add_argument("--hop", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="rounds; the best of each system counts")
    parser.add_argument("--peer-names", nargs="+", default=["openl3", "torchopenl3"], help="peers to run")
    parser.add_argument("--compiled", action="store_true", help="add l3net fp32 with torch.compile (slow first call)")
    parser.add_argument("--no-training-model", action="store_true", help="leave out the eager training-model row")
    parser.add_argument("--force-bf16", action="store_true", help="time bf16 even where it is emulated (very slow)")
    args = parser.parse_args()

    print(describe_machine())
    data = Path(args.data)
    model = load_model("paper", device="cpu")
    native_bf16 = cpu_has_native_bf16()
    auto = resolve_precision("auto", "cpu")
    variants: dict[str, InferenceModel | None] = {"l3net fp32": InferenceModel(model, precision="fp32")}
    if auto != "fp32":
        variants["l3net auto"] = InferenceModel(model, precision="auto")
    if native_bf16 or args.force_bf16:
        variants["l3net bf16"] = InferenceModel(model, precision="bf16")
    if args.compiled:
        variants["l3net fp32 compiled"] = InferenceModel(model, precision="fp32", compile=True)
    if not args.no_training_model:
        variants["l3net training model"] = None  # the model itself, eager, NCHW, BatchNorm unfolded
    print(f"l3net 'auto' precision here: {auto}; bf16 instructions (AVX512-BF16/AMX): {native_bf16}"
          + ("" if native_bf16 or args.force_bf16 else " -> bf16 not timed (emulated: ~50x slower than fp32)"))
    compiles = {name: v.use_compile for name, v in variants.items() if v is not None}
    print(f"compiled: {compiles} (default compile rule: see l3net.inference.resolve_compile)")

    def l3net_audio(fast: InferenceModel | None) -> Timer:
        def run(samples: np.ndarray) -> tuple[float, float]:
            if fast is not None:
                return timed(lambda: get_audio_embedding(samples, SAMPLE_RATE, model=fast, hop_size=args.hop,
                                                         batch_size=args.batch_size))
            window = model.config.clip_samples

            def eager() -> None:  # the API's framing around the training model, as before l3net.inference
                with torch.inference_mode():
                    for batch in _batches(iter_windows([samples], args.hop, True, window), args.batch_size, window):
                        model.embed("audio", torch.from_numpy(batch))

            return timed(eager)

        return run

    def l3net_images(fast: InferenceModel | None) -> Timer:
        def run(images: np.ndarray) -> tuple[float, float]:
            if fast is not None:
                return timed(lambda: get_image_embedding(images, model=fast, batch_size=args.batch_size))

            def eager() -> None:
                with torch.inference_mode():
                    for start in range(0, len(images), args.batch_size):
                        crop = [prepare_image(im, model.config, transfer=False) for im in images[start : start + args.batch_size]]
                        model.embed("vision", torch.from_numpy(np.stack(crop)).permute(0, 3, 1, 2))

            return timed(eager)

        return run

    # -- first calls (each builds its copy; compiled ones compile) -----------------------------
    one_second = real_audio(data, 1.0)
    print("\nfirst call (1 s clip, includes building the inference copy / compiling):")
    for name, fast in variants.items():
        if fast is not None:
            fresh = InferenceModel(model, precision=fast.precision, compile=fast.use_compile)
            variants[name] = fresh
            seconds = l3net_audio(fresh)(one_second)[0]
            print(f"  {name:<24}{seconds:8.2f} s   (a second call: {l3net_audio(fresh)(one_second)[0]:.2f} s)", flush=True)

    peers = {name: python for name, python in find_peers(args.peers).items() if name in args.peer_names}
    if not peers:
        print(f"\nno peers under {args.peers} (build them with ../shared/tools/install-peers DIR): l3net only")
    workers: dict[str, PeerWorker] = {}
    for name, python in peers.items():
        start = time.perf_counter()
        workers[name] = PeerWorker(name, python, input_repr="linear", embedding_size=512)
        workers[name].audio(one_second, hop=args.hop, batch=args.batch_size)  # warm-up (graph building)
        print(f"  {name:<24}{time.perf_counter() - start:8.2f} s   (start, build, first call)", flush=True)

    systems: dict[str, Timer] = {name: l3net_audio(fast) for name, fast in variants.items()}
    for name, worker in workers.items():
        systems[name] = lambda samples, w=worker: _pair(w.audio(samples, hop=args.hop, batch=args.batch_size))

    def rounds(inputs: np.ndarray, timers: dict[str, Timer]) -> dict[str, tuple[float, float]]:
        best = {name: (float("inf"), float("inf")) for name in timers}
        names = list(timers)
        for r in range(args.repeats):
            order = names[r % len(names):] + names[: r % len(names)]  # rotate: nobody always runs first
            for name in order:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    wall, cpu = timers[name](inputs)
                    best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
        return best

    def report(title: str, count: int, unit: str, best: dict[str, tuple[float, float]]) -> dict[str, dict[str, float]]:
        """Rates from wall time, and from CPU time (steadier on a machine shared with other jobs)."""
        rates = {name: count / wall for name, (wall, _) in best.items()}
        cpu_rates = {name: count / cpu for name, (_, cpu) in best.items()}
        reference, cpu_reference = rates.get("openl3"), cpu_rates.get("openl3")
        print(f"\n{title}\n{'system':<26}{unit + '/s':>12}{'x openl3':>10}{unit + '/CPU-s':>16}{'x openl3':>10}")
        for name, rate in rates.items():
            ratio = f"{rate / reference:10.2f}" if reference else f"{'-':>10}"
            cpu_ratio = f"{cpu_rates[name] / cpu_reference:10.2f}" if cpu_reference else f"{'-':>10}"
            print(f"{name:<26}{rate:12.2f}{ratio}{cpu_rates[name]:16.2f}{cpu_ratio}", flush=True)
        return {"rates": rates, "cpu": cpu_rates}

    single_rates: dict[str, dict[str, float]] = {}
    try:
        for seconds in args.clips:
            clip = real_audio(data, seconds)
            windows = window_count(len(clip), args.hop, True, model.config.clip_samples)
            best = rounds(clip, systems)
            rates = report(f"audio, {seconds:g} s clip ({windows} windows, hop {args.hop} s, batch {args.batch_size}, "
                           f"best of {args.repeats})", windows, "windows", best)
            single_rates = single_rates or rates  # the first clip length is the mixed-length reference

        if args.mixed:
            # different recordings' parts: each clip starts 0.37 s later in the tiled audio
            clips = [real_audio(data, s + i * 0.37)[round(i * 0.37 * SAMPLE_RATE):] for i, s in enumerate(args.mixed)]
            counts = [window_count(len(c), args.hop, True, model.config.clip_samples) for c in clips]
            print(f"\nmixed lengths: {len(clips)} clips of {', '.join(f'{s:g}' for s in args.mixed)} s "
                  f"({sum(counts)} windows), after one warm-up call; against the {args.clips[0]:g} s clip")
            print(f"{'system':<26}{'windows/s':>12}{'x single':>10}{'(CPU time)':>12}   target >= 0.80")
            for name, fast in variants.items():
                if fast is None:
                    continue
                l3net_audio(fast)(clips[0])  # the warm-up call
                best_wall = best_cpu = float("inf")
                for _ in range(args.repeats):
                    times = [l3net_audio(fast)(c) for c in clips]
                    best_wall = min(best_wall, sum(t[0] for t in times))
                    best_cpu = min(best_cpu, sum(t[1] for t in times))
                rate, cpu_rate = sum(counts) / best_wall, sum(counts) / best_cpu
                print(f"{name:<26}{rate:12.2f}{rate / single_rates['rates'][name]:10.2f}"
                      f"{cpu_rate / single_rates['cpu'][name]:12.2f}", flush=True)

        if args.images:
            images = real_images(data, args.images)
            image_systems: dict[str, Timer] = {
                name: l3net_images(fast) for name, fast in variants.items()
            }
            for fast in variants.values():  # warm-up (a compiled copy compiles its vision graph here)
                l3net_images(fast)(images[: args.batch_size])
            if "openl3" in workers:
                workers["openl3"].images(images[:4], batch=args.batch_size)  # warm-up (image model built)
                image_systems["openl3"] = lambda x: _pair(workers["openl3"].images(x, batch=args.batch_size))
            report(f"images: {args.images} photos 256 x 256 (centre 224 crop), batch {args.batch_size}, "
                   f"best of {args.repeats}", args.images, "images", rounds(images, image_systems))
    finally:
        for worker in workers.values():
            worker.close()
    print(f"\n(load average at the end: {os.getloadavg()[0]:.1f}; 1 window = 1 s of audio; all random weights)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

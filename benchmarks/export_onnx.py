"""onnxruntime (CPU) against l3net on the same windows and images, side by side in one run.

A preset is exported with ``l3net.export.export_model`` (ONNX, BatchNorm folded) into a temporary
directory; then, in rounds that alternate the two systems (best round counts):

- **audio, l3net**: the inference copy (``l3net.inference``: BatchNorm folded, channels_last, fp32,
  eager) on batches of 1 s windows, front end included (torch.fft): what ``get_audio_embedding``
  runs per batch;
- **audio, onnxruntime**: the exported NumPy front end (``frontend.py``) then the ONNX graph, and
  the graph alone (the spectrograms given);
  and the graph with onnxruntime's graph optimisations off (no fusions, no blocked layouts);
- **images**: 224 x 224 uint8 crops through l3net's inference copy and the ONNX graph.

Both use every usable core (torch's threads; onnxruntime's intra-op threads). Windows are real
recordings (``../shared/data/audio``), images real photos (``../shared/data/photos``).

    python benchmarks/export_onnx.py                     # paper preset, batch 32, 3 rounds
    python benchmarks/export_onnx.py --preset small --rounds 5
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine, usable_cores  # noqa: E402

from l3net.export import export_model  # noqa: E402
from l3net.framing import iter_windows  # noqa: E402
from l3net.inference import inference_model  # noqa: E402
from l3net.inputs import image_batch, prepare_image  # noqa: E402
from l3net.layers import layer_features  # noqa: E402
from l3net.media import load_audio, load_image  # noqa: E402
from l3net.models import build_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def windows(data: Path, count: int) -> np.ndarray:
    audio = np.concatenate([load_audio(p) for p in sorted((data / "audio").iterdir()) if p.is_file()])
    cut = [w.copy() for _, w in zip(range(count), iter_windows([audio], 0.5, center=False))]
    return np.stack(cut)


def images(data: Path, config, count: int) -> np.ndarray:
    paths = sorted(p for p in (data / "photos").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    prepared = [prepare_image(load_image(paths[i % len(paths)]), config, transfer=False) for i in range(count)]
    return image_batch(prepared).numpy()


def best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    import onnxruntime as ort

    print(describe_machine())
    print(f"onnxruntime {ort.__version__}; preset {args.preset}, batch {args.batch}, fp32, best of {args.rounds} rounds\n")
    model = build_model(args.preset, seed=0).eval()
    fast = inference_model(model, precision="fp32", compile=False)
    waves, pics = windows(args.data, args.batch), images(args.data, model.config, args.batch)
    options = ort.SessionOptions()
    options.intra_op_num_threads = usable_cores()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_model(model, tmp, "onnx")
        audio = ort.InferenceSession(f"{tmp}/audio.onnx", options, providers=["CPUExecutionProvider"])
        image = ort.InferenceSession(f"{tmp}/image.onnx", options, providers=["CPUExecutionProvider"])
        plain = ort.SessionOptions()  # no graph rewrites (fusions, blocked layouts): where the gain comes from
        plain.intra_op_num_threads = usable_cores()
        plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        audio_plain = ort.InferenceSession(f"{tmp}/audio.onnx", plain, providers=["CPUExecutionProvider"])
        spec = importlib.util.spec_from_file_location("frontend", f"{tmp}/frontend.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        frontend = module.Frontend.load(tmp)

    spectrograms = frontend(waves)
    with torch.inference_mode():
        spectrograms_torch = model.frontend(torch.from_numpy(waves)).numpy()
    runs = {
        "audio  l3net (front end + tower)": (lambda: layer_features(fast, "audio", torch.from_numpy(waves), "pool4"), len(waves)),
        "audio  onnxruntime, NumPy front end + graph": (lambda: audio.run(None, {"spectrogram": frontend(waves)}), len(waves)),
        "audio  onnxruntime graph only": (lambda: audio.run(None, {"spectrogram": spectrograms}), len(waves)),
        "audio  onnxruntime graph, optimisations off": (lambda: audio_plain.run(None, {"spectrogram": spectrograms}), len(waves)),
        "audio  NumPy front end only": (lambda: frontend(waves), len(waves)),
        "audio  l3net front end only (torch.fft)": (lambda: model.frontend(torch.from_numpy(waves)), len(waves)),
        "images l3net": (lambda: layer_features(fast, "vision", torch.from_numpy(pics), "pool4"), len(pics)),
        "images onnxruntime": (lambda: image.run(None, {"image": pics}), len(pics)),
    }
    with torch.inference_mode():
        for fn, _ in runs.values():  # warm-up: first calls pay for allocation and kernel choice
            fn()
        timings = {name: [] for name in runs}
        for _ in range(args.rounds):  # interleaved, so a burst of load on the shared machine hits all
            for name, (fn, _) in runs.items():
                timings[name].append(best(fn, 1))
    print(f"{'':46} {'windows or images/s':>20}")
    for name, (_, count) in runs.items():
        print(f"{name:46} {count / min(timings[name]):20.1f}")
    diff = float(np.abs(spectrograms - spectrograms_torch).max())
    print(f"\nNumPy vs torch front end: max |difference| {diff:.2e} (log units)")


if __name__ == "__main__":
    main()

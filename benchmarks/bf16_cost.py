"""What bf16 costs in accuracy: bf16 against fp32 embeddings on real audio and photos, and ``eval sound``.

For each ``--presets`` model (random weights, seed 0), in one run:

- cosine similarity between the fp32 and bf16 embeddings (the inference copy, ``precision="fp32"`` /
  ``"bf16"``) of every window of the real recordings in ``../shared/data/audio`` (hop ``--hop``) and of
  every photo in ``../shared/data/photos``, for the embedding (pool4) and the transfer feature
  (conv4_2): mean, 1st percentile and minimum;
- ``eval sound`` (Table 2's protocol: conv4_2 features, linear SVM, 5-fold grouped CV) on
  ``../shared/data/labelled_audio`` with fp32 and with bf16 features: accuracy of each, same splits.

On a CPU without AVX512-BF16/AMX PyTorch emulates bf16 (~50x slower than fp32): use the small
preset and few windows there (``--max-windows``); the numbers are the same as with native bf16
instructions up to accumulation order.

    python benchmarks/bf16_cost.py --presets small paper --max-windows 8
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

from l3net import get_audio_embedding, get_image_embedding  # noqa: E402
from l3net.config import SAMPLE_RATE  # noqa: E402
from l3net.evaluate.datasets import load_audio_dataset  # noqa: E402
from l3net.evaluate.sound import SoundConfig, evaluate_sound  # noqa: E402
from l3net.inference import InferenceModel  # noqa: E402
from l3net.media import load_audio, load_image  # noqa: E402
from l3net.models import load_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def describe(values: np.ndarray) -> str:
    return f"mean {values.mean():.5f}, 1st pct {np.percentile(values, 1):.5f}, min {values.min():.5f} ({len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small"])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--hop", type=float, default=1.0, help="seconds between audio windows")
    parser.add_argument("--max-windows", type=int, default=None, help="at most this many windows per recording")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--no-sound-eval", action="store_true")
    args = parser.parse_args()

    print(describe_machine())
    data = Path(args.data)
    recordings = [load_audio(p) for p in sorted((data / "audio").iterdir()) if p.is_file()]
    if args.max_windows:
        limit = round(((args.max_windows - 1) * args.hop) * SAMPLE_RATE)
        recordings = [r[: max(limit, 1)] for r in recordings]
    photos = [load_image(p) for p in sorted((data / "photos").rglob("*.jpg"))][: args.max_images]
    warnings.simplefilter("ignore")  # the "bf16 is slow on this CPU" warning: known, and the point here
    for preset in args.presets:
        model = load_model(preset)
        print(f"\npreset {preset} (random weights, seed 0)")
        for layer_name, layer in (("embedding (pool4)", model.audio.embedding_layer), ("transfer (conv4_2)", model.audio.last_conv)):
            rows = {}
            for precision in ("fp32", "bf16"):
                fast = InferenceModel(model, precision=precision, compile=False)
                start = time.perf_counter()
                audio = np.concatenate(get_audio_embedding(recordings, SAMPLE_RATE, model=fast, hop_size=args.hop,
                                                           layer=layer)[0])
                images = get_image_embedding(photos, model=fast, layer=layer)
                rows[precision] = (audio, images, time.perf_counter() - start)
            print(f"  {layer_name:<19} audio  {describe(cosines(rows['bf16'][0], rows['fp32'][0]))}")
            print(f"  {'':<19} images {describe(cosines(rows['bf16'][1], rows['fp32'][1]))}"
                  f"   (fp32 {rows['fp32'][2]:.1f} s, bf16 {rows['bf16'][2]:.1f} s)", flush=True)
        if not args.no_sound_eval:
            dataset = load_audio_dataset(f"folder:{data / 'labelled_audio'}")
            results = {p: evaluate_sound(dataset, model, SoundConfig(feature_sets=("l3",), precision=p, progress=False),
                                         untrained=True).results["l3"]
                       for p in ("fp32", "bf16")}
            same = np.mean(results["fp32"].predictions == results["bf16"].predictions)
            print(f"  eval sound, labelled_audio ({len(dataset.classes)} classes, {len(dataset.examples)} recordings, "
                  "same splits): " + ", ".join(f"{p} {r.accuracy:.1%} +- {r.std:.1%}" for p, r in results.items())
                  + f"; same predicted class for {same:.1%} of the recordings", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

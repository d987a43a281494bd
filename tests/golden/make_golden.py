"""Regenerate tests/golden/<preset>_seed0.npz: a fixed-seed model's features of a fixed input.

Run ``python tests/golden/make_golden.py [PRESET ...]`` only when a change of features is intended
(a new spectrogram, framing or preprocessing), and say so in the commit. ``test_embed.test_golden_regression``
compares :func:`compute` with the stored small-preset file; ``test_golden.py`` does the same for
every other preset of :data:`PRESETS` (the paper's and OpenL3's).

The small preset stores whole outputs. The larger presets store a compact subset, to keep the files
a few tens of KB and the test quick: pool4 of a shorter input (1 s: 3 centred windows), every 4th
conv4_2 transfer feature of the audio (before ReLU, its one uncentred window), every 8th conv4_2
feature of the images, and every 8th bin and frame of the spectrogram. A changed layer, front end,
framing or preprocessing moves all of them.

Everything is generated from code: the model is ``build_model(preset, seed=0)``; the audio is a
tone, a chirp and uniform noise from PCG64's raw bit stream (stable across NumPy versions), at
48 kHz so no resampler is involved; the images are integer gradients and blocks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "small_seed0.npz"
#: Every preset with a golden file (the small one is :data:`OUTPUT`).
PRESETS = ("small", "paper", "openl3-linear", "openl3-mel128", "openl3-mel256")


def output_path(preset: str) -> Path:
    return HERE / f"{preset}_seed0.npz"


def _uniform_noise(n: int, seed: int) -> np.ndarray:
    raw = np.random.PCG64(seed).random_raw(n)
    return ((raw >> np.uint64(11)).astype(np.float64) * 2.0**-53 * 2.0 - 1.0).astype(np.float32)


def golden_audio() -> np.ndarray:
    """3.2 s at 48 kHz: a 440 Hz tone, a 100 Hz -> 7 kHz chirp in the middle, and noise throughout."""
    sr, n = 48_000, 153_600
    t = np.arange(n) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    mid = (t > 1.0) & (t < 2.2)
    tc = t[mid] - 1.0
    x[mid] += 0.4 * np.sin(2 * np.pi * (100 * tc + (7000 - 100) * tc**2 / (2 * 1.2)))
    return (x + 0.05 * _uniform_noise(n, 7)).astype(np.float32)


def golden_images() -> np.ndarray:
    """Two 150 x 200 RGB uint8 images of gradients and flat blocks."""
    y, x = np.mgrid[0:150, 0:200]
    first = np.stack([x * 255 // 199, y * 255 // 149, (x * 3 + y * 5) % 256], axis=2).astype(np.uint8)
    second = first[::-1, ::-1].copy()
    second[40:90, 60:140] = (200, 30, 90)
    first[10:60, 120:180] = (20, 220, 160)
    return np.stack([first, second])


def compute(preset: str = "small") -> dict[str, np.ndarray]:
    """The features stored for ``preset`` (``build_model(preset, seed=0)``); see the module doc."""
    from l3net.embed import get_audio_embedding, get_image_embedding
    from l3net.models import build_model

    model = build_model(preset, seed=0)
    audio, images = golden_audio(), golden_images()
    out: dict[str, np.ndarray] = {}
    if preset == "small":
        out["audio_pool4"], out["audio_pool4_timestamps"] = get_audio_embedding(audio, 48_000, model, hop_size=0.25)
        out["audio_conv4_2"], _ = get_audio_embedding(audio, 48_000, model, hop_size=1.0, center=False, layer="conv4_2")
        out["image_pool4"] = get_image_embedding(images, model)
        out["image_conv4_2"] = get_image_embedding(images, model, layer="conv4_2")
        with torch.inference_mode():
            out["spectrogram"] = model.frontend(torch.from_numpy(audio[None, 48_000:96_000]))[0, 0].numpy()
        return out
    short = audio[36_000:84_000]  # 1 s, across the chirp's start
    out["audio_pool4"], out["audio_pool4_timestamps"] = get_audio_embedding(short, 48_000, model, hop_size=0.5)
    conv, _ = get_audio_embedding(short, 48_000, model, hop_size=1.0, center=False, layer="conv4_2")
    out["audio_conv4_2"] = conv[:, ::4]
    out["image_pool4"] = get_image_embedding(images, model)
    out["image_conv4_2"] = get_image_embedding(images, model, layer="conv4_2")[:, ::8]
    with torch.inference_mode():
        out["spectrogram"] = model.frontend(torch.from_numpy(audio[None, 48_000:96_000]))[0, 0, ::8, ::8].numpy()
    return out


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    presets = (argv if argv is not None else sys.argv[1:]) or list(PRESETS)
    for preset in presets:
        arrays = compute(preset)
        path = output_path(preset)
        np.savez_compressed(path, **arrays)
        size = path.stat().st_size
        print(f"wrote {path} ({size / 1024:.0f} KB): " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

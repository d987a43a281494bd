"""l3net runs OpenL3's networks as openl3 0.4.2 does: every reference key of
../shared/data/openl3/reference.npz (openl3's own outputs, random weights in the published layout).

Images and audio match to 1e-4 of the largest reference value (measured: images 2e-6, audio
~3e-6 for every front end). For audio that needs TensorFlow's own STFT, not just the same formula:
kapre takes 10 log10 of STFT magnitudes and keeps 80 dB below each clip's maximum, so its bottom
20-30 dB are float32 FFT round-off, which random BatchNorm weights amplify. l3net's openl3 presets
use TensorFlow's float32 Hann window (shipped) and, on the CPU, pocketfft's rfft through SciPy,
bit-identical to ``tf.signal.stft`` (with torch's window and FFT: 1e-3..1e-2). The end-to-end rows
(``*_native``: l3net's downmix and resampler instead of resampy's) have their own tolerance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import l3net
from l3net.framing import window_count
from l3net.openl3 import convert

FRONT_ENDS = ("linear", "mel128", "mel256")
#: Largest |diff| / max|ref| on every 48 kHz row (the issue's bar; reached: 1.6e-6 to 3e-6).
AUDIO_TOLERANCE = 1e-4
#: ... and on the *_native rows, where the resamplers differ (reached: linear 8.1e-2,
#: mel128 3.4e-2, mel256 8.0e-2): what is reached, with a margin.
NATIVE_TOLERANCE = {"linear": 0.12, "mel128": 0.06, "mel256": 0.12}
IMAGE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference(data_dir: Path) -> dict[str, np.ndarray]:
    with np.load(data_dir / "openl3" / "reference.npz") as data:
        return {key: data[key] for key in data.files}


class _Converted(dict):
    """Front end -> the converted fixture model, converted on first use (mel256 with the image network)."""

    def __init__(self, root: Path, out: Path) -> None:
        super().__init__()
        self.root, self.out = root, out

    def __missing__(self, front_end: str) -> l3net.L3Net:
        files = [self.root / f"openl3_audio_{front_end}_random.h5"]
        if front_end == "mel256":
            files.append(self.root / "openl3_image_random.h5")
        self[front_end] = l3net.load_model(convert(files, self.out / front_end))
        return self[front_end]


@pytest.fixture(scope="module")
def models(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, l3net.L3Net]:
    return _Converted(data_dir / "openl3", tmp_path_factory.mktemp("parity"))


def _relative(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    scale = float(np.abs(ref).max())
    diff = np.abs(ours.astype(np.float64) - ref)
    return float(diff.max()) / scale, float(diff.mean()) / scale


def _check(key: str, ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape, key
    worst, _ = _relative(ours, ref)
    assert worst <= AUDIO_TOLERANCE, f"{key}: max |diff| = {worst:.2e} of max |ref|"


# OpenL3's networks cost ~10-20 GFLOPs a window, so most rows are checked on a prefix of the
# recording: a window that lies inside the prefix sees the same samples as in the full recording,
# so its row must be the reference's. The last hop 0.5 rows run on the end of the recording (the
# last windows, padded with zeros); the counts and timestamps of every row are checked on the whole
# length. linear and mel128 are marked slow; mel256 (OpenL3's default) always runs.
PARAMS = [pytest.param(fe, marks=pytest.mark.slow) if fe != "mel256" else fe for fe in FRONT_ENDS]
PREFIX_SECONDS = 1.5  # centred windows 0..10 at hop 0.1 lie inside it


def _embed(model, audio, sr=48_000, **kwargs):
    return l3net.get_audio_embedding(audio, sr, model=model, batch_size=16, **kwargs)


@pytest.mark.parametrize("front_end", PARAMS)
def test_hop_05_centred_to_the_end(reference, models, front_end):
    key = f"audio_{front_end}_6144_hop0.5_c"
    audio = reference["audio_48k"]
    full = window_count(len(audio), 0.5, True, 48_000, framing="openl3")
    assert np.array_equal(np.arange(full) * 0.5, reference[key + "_ts"])  # openl3's count and times
    # The recording from 3.5 s (window 7's centre) on: its windows 1.. are windows 8.. of the whole
    # recording (its window 0 sees zeros before the cut), the last ones zero-padded at the end.
    emb, ts = _embed(models[front_end], audio[7 * 24_000 :], hop_size=0.5, embedding_size=6144)
    assert len(ts) == full - 7
    _check(key, emb[1:], reference[key][8:])


@pytest.mark.parametrize("front_end", PARAMS)
def test_hop_01_centred_6144_and_512(reference, models, front_end):
    prefix = reference["audio_48k"][: round(PREFIX_SECONDS * 48_000)]
    emb, ts = _embed(models[front_end], prefix, hop_size=0.1, embedding_size=6144)
    rows = len(ts)
    assert rows == 11 and np.array_equal(ts, reference[f"audio_{front_end}_6144_hop0.1_c_ts"][:rows])
    _check(f"audio_{front_end}_6144_hop0.1_c", emb, reference[f"audio_{front_end}_6144_hop0.1_c"][:rows])
    # 512 = the max over all positions of conv4_2 = the max over the 4 x 3 grid of the 6144-D feature
    pooled = emb.reshape(rows, 4, 3, 512).max(axis=(1, 2))
    _check(f"audio_{front_end}_512_hop0.1_c", pooled, reference[f"audio_{front_end}_512_hop0.1_c"][:rows])
    # and the whole recording has openl3's number of windows at openl3's times
    full = window_count(len(reference["audio_48k"]), 0.1, True, 48_000, framing="openl3")
    for size in (512, 6144):
        assert np.array_equal(np.arange(full) * 0.1, reference[f"audio_{front_end}_{size}_hop0.1_c_ts"])


@pytest.mark.parametrize("front_end", PARAMS)
def test_hop_025_not_centred_512(reference, models, front_end):
    key = f"audio_{front_end}_512_hop0.25_nc"
    prefix = reference["audio_48k"][: 2 * 48_000]  # non-centred windows 0..4 lie inside it
    emb, ts = _embed(models[front_end], prefix, hop_size=0.25, center=False, embedding_size=512)
    assert len(ts) == 5 and np.array_equal(ts, reference[key + "_ts"][:5])
    _check(key, emb, reference[key][:5])
    full = window_count(len(reference["audio_48k"]), 0.25, False, 48_000, framing="openl3")
    assert np.array_equal(np.arange(full) * 0.25, reference[key + "_ts"])


@pytest.mark.parametrize("front_end", PARAMS)
def test_native_rate_end_to_end(reference, models, front_end):
    key = f"audio_{front_end}_512_native"
    sr = int(reference["audio_native_sr"])
    prefix = reference["audio_native"][: round(1.2 * sr)]  # 44.1 kHz stereo: l3net's downmix and resampler
    emb, _ = _embed(models[front_end], prefix, sr=sr, hop_size=0.1, embedding_size=512)
    rows = 6  # windows ending 0.2 s or more before the cut: the resampler's edge does not reach them
    worst, _ = _relative(emb[:rows], reference[key][:rows])
    assert worst <= NATIVE_TOLERANCE[front_end], f"{key}: max |diff| = {worst:.2e} of max |ref|"


@pytest.mark.parametrize("size", [512, 8192])
def test_image_rows_match_openl3(reference, models, size):
    emb = l3net.get_image_embedding(reference["images_224"], model=models["mel256"], embedding_size=size)
    ref = reference[f"image_{size}"]
    assert emb.shape == ref.shape
    worst, _ = _relative(emb, ref)
    assert worst <= IMAGE_TOLERANCE, f"image_{size}: max |diff| = {worst:.2e} of max |ref|"


def test_every_reference_key_is_covered(reference):
    cases = ("512_hop0.1_c", "6144_hop0.1_c", "512_hop0.25_nc", "6144_hop0.5_c")
    covered = {f"audio_{fe}_{case}{ts}" for fe in FRONT_ENDS for case in cases for ts in ("", "_ts")}
    covered |= {f"audio_{fe}_512_native" for fe in FRONT_ENDS} | {"image_512", "image_8192"}
    covered |= {"audio_48k", "audio_native", "audio_native_sr", "images_224"}  # the inputs
    assert set(reference) == covered

"""The training pairs' augmentation is the paper's (PAPER_SPEC 2.2): its defaults, and what a few
hundred pairs of l3net train's own pipeline actually show in their pixels and samples.

Each augmented pair is read against the same pair drawn without augmentation (same seed: the same
frames, clips and crops; the sampler draws the augmentation whatever it is set to): the crop is
found in the stored frame, the flip by which orientation of the plain crop the augmented one
matches, brightness and saturation from the luma and chroma ratios, the gain from the samples.
"""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO
from l3net.config import PRESETS
from l3net.data.sampler import NO_AUGMENT, AugmentConfig, AVCPairs, batch_waveforms
from l3net.data.shards import ShardSet
from l3net.train import Trainer, TrainConfig

PAPER_SPEC = REPO.parent / "shared" / "PAPER_SPEC.md"
LUMA = np.array([0.299, 0.587, 0.114])
#: Training pairs read per seed: "a few hundred".
PAIRS = 256


def test_augmentation_defaults_are_the_papers() -> None:
    # PAPER_SPEC 2.2: smaller side scaled to 256, random 224 x 224 crop, random horizontal flip,
    # brightness and saturation jitter of moderate size, one gain in [0.9, 1.1] per clip.
    paper = PRESETS["paper"]
    assert (paper.image_resize, paper.image_size) == (256, 224)
    augment = AugmentConfig()
    assert augment.flip == 0.5
    assert augment.gain == (0.9, 1.1)
    assert 0.1 <= augment.brightness <= 0.3 and 0.1 <= augment.saturation <= 0.3  # moderate: +-10 to 30 %
    assert TrainConfig(data="d", out="o").augment is None  # l3net train's default is AugmentConfig()


def test_defaults_match_the_text_of_paper_spec() -> None:
    if not PAPER_SPEC.is_file():
        pytest.skip(f"{PAPER_SPEC} is not here")
    text = PAPER_SPEC.read_text(encoding="utf-8")
    section = text[text.index("### 2.2 Augmentation"):text.index("### 2.3")]
    side = int(re.search(r"smaller side is (\d+)", section).group(1))
    crop = re.search(r"random (\d+) x (\d+) crop", section)
    gain = re.search(r"random gain in \[([\d.]+), ([\d.]+)\]", section)
    paper = PRESETS["paper"]
    assert (side, int(crop.group(1)), int(crop.group(2))) == (paper.image_resize, paper.image_size, paper.image_size)
    assert (float(gain.group(1)), float(gain.group(2))) == AugmentConfig().gain
    assert "random horizontal flip" in section and "brightness and saturation jitter" in section


def _trainer_pairs(shards: Path, tmp_path: Path, seed: int) -> AVCPairs:
    """The train split's pair stream exactly as l3net train builds it (its defaults, its seed)."""
    trainer = Trainer(TrainConfig(data=str(shards), out=str(tmp_path / "run"), preset="small", batch_size=32,
                                  steps=1, seed=seed, workers=0, val_pairs=8))
    try:
        trainer.setup()
        return trainer.train_loader.dataset
    finally:
        trainer.close()


@dataclasses.dataclass
class Drawn:
    """What the pixels and samples of augmented pairs show, one entry per pair."""

    flip: list[bool] = dataclasses.field(default_factory=list)  # mirror-symmetric crops left out
    crop: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (x, y) in the scaled frame
    brightness: list[float] = dataclasses.field(default_factory=list)
    saturation: list[float] = dataclasses.field(default_factory=list)
    gain: list[float] = dataclasses.field(default_factory=list)
    pairs: int = 0


def _find_crop(frame: np.ndarray, crop: np.ndarray) -> tuple[int, int]:
    size = crop.shape[0]
    for y in range(frame.shape[0] - size + 1):
        for x in range(frame.shape[1] - size + 1):
            if np.array_equal(frame[y:y + size, x:x + size], crop):
                return x, y
    raise AssertionError("the plain crop is nowhere in its stored frame")


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def draw(pairs: AVCPairs, n: int = PAIRS) -> Drawn:
    """Read the augmentation of the first ``n`` pairs of ``pairs`` from their pixels and samples."""
    plain = AVCPairs(pairs.shards.root, "train", config=pairs.config, batch_size=pairs.batch_size, seed=pairs.seed,
                     augment=NO_AUGMENT, pcm=True)
    shards = ShardSet(pairs.shards.root)
    videos = {v.key: v for v in shards.videos("train")}
    out = Drawn()
    cpu = torch.device("cpu")
    for augmented, reference in zip(iter(pairs), iter(plain)):
        assert augmented["image_key"] == reference["image_key"]  # the same pairs, only augmented
        images = augmented["image"].permute(0, 2, 3, 1).numpy().astype(np.float64)
        plains = reference["image"].permute(0, 2, 3, 1).numpy()
        audio, stored_audio = batch_waveforms(augmented, cpu).numpy(), batch_waveforms(reference, cpu).numpy()
        for i in range(len(images)):
            video = videos[augmented["image_key"][i]]
            index = video.frame_times.index(float(augmented["frame_time"][i]))
            frame = np.asarray(Image.open(io.BytesIO(shards.read_frame_bytes(video, index))).convert("RGB"))
            out.crop.append(_find_crop(frame, plains[i]))
            p = plains[i].astype(np.float64)
            luma, plain_luma, mirrored_luma = images[i] @ LUMA, p @ LUMA, p[:, ::-1] @ LUMA
            flipped = _correlation(luma, mirrored_luma) > _correlation(luma, plain_luma)
            if _correlation(plain_luma, mirrored_luma) < 0.9:  # a mirror-symmetric crop shows no flip
                out.flip.append(flipped)
            unclipped = (images[i].max(axis=2) < 250) & (p.max(axis=2) < 210)  # x 1.2 stays below 255
            oriented = p[:, ::-1] if flipped else p
            brightness = float(luma[unclipped].mean() / plain_luma[unclipped].mean())
            out.brightness.append(brightness)
            chroma = np.abs(images[i] - luma[..., None])[unclipped].mean()
            plain_chroma = np.abs(oriented - (oriented @ LUMA)[..., None])[unclipped].mean()
            if plain_chroma > 10:  # grey crops show no saturation
                out.saturation.append(float(chroma / plain_chroma / brightness))
            loud = np.abs(stored_audio[i]) > 0.05
            out.gain.append(float(np.median(audio[i][loud] / stored_audio[i][loud])))
            out.pairs += 1
        if out.pairs >= n:
            return out
    raise AssertionError("the training stream ended")


# Bounds below: the readings of seeds 0-19 (256 pairs each, the synth_shards fixture, AVCPairs with
# the defaults) were flip rate 0.434-0.555, crop offset means 7.24-8.79 of 0..16 with every offset
# seen, x == y in 2-10 % of pairs, brightness read as 0.764-1.213 and saturation 0.771-1.263 at the
# extremes (the reading adds rounding and clipping to the drawn 0.8-1.2), gains 0.9000-0.9016 to
# 1.0988-1.1000 with means 0.992-1.007.


@pytest.mark.parametrize("seed", [0, 1])
def test_drawn_augmentation_of_training_pairs(synth_shards: Path, tmp_path: Path, seed: int) -> None:
    pairs = _trainer_pairs(synth_shards, tmp_path, seed)
    assert pairs.train and pairs.augment == AugmentConfig() and pairs.pcm
    d = draw(pairs)
    span = pairs.config.image_resize - pairs.config.image_size  # crop offsets 0..span (the fixture's frames are square)
    # Flip with probability 1/2: 0.5 +- 0.1 is 3 standard deviations of 256 pairs (a few mirror-symmetric
    # crops left out).
    assert len(d.flip) >= 0.8 * d.pairs
    assert 0.4 <= np.mean(d.flip) <= 0.6
    # Random crops: offsets uniform over 0..span in x and in y (mean within ~4 standard deviations of
    # span / 2), nearly every offset seen, x and y drawn apart.
    x, y = np.array(d.crop).T
    for offsets in (x, y):
        assert offsets.min() == 0 and offsets.max() == span
        assert abs(offsets.mean() - span / 2) <= 0.075 * span
        assert len(set(offsets.tolist())) >= span
    assert np.mean(x == y) < 0.15
    # Brightness and saturation: factors spread over 1 +- 0.2 and centred on 1; none far beyond.
    for factors in (d.brightness, d.saturation):
        assert min(factors) < 0.85 and max(factors) > 1.15
        assert 0.72 <= min(factors) and max(factors) <= 1.3
        assert abs(np.median(factors) - 1.0) < 0.05
    # Audio gain: one factor per clip, over [0.9, 1.1] (mean within ~3.3 standard deviations of 1).
    assert 0.9 - 1e-3 <= min(d.gain) < 0.92 and 1.08 < max(d.gain) <= 1.1 + 1e-3
    assert abs(np.mean(d.gain) - 1.0) < 0.012


def test_the_reading_sees_a_pipeline_that_does_not_augment(synth_shards: Path) -> None:
    """The checks above can fail: a pipeline that never flips nor jitters reads as such."""
    still = AugmentConfig(flip=0.0, brightness=0.0, saturation=0.0, gain=(1.0, 1.0))
    d = draw(AVCPairs(synth_shards, "train", config=PRESETS["small"], batch_size=32, seed=0, augment=still, pcm=True),
             n=64)
    assert len(d.flip) >= 0.8 * d.pairs and not any(d.flip)
    assert max(abs(b - 1) for b in d.brightness) < 0.02 and max(abs(g - 1) for g in d.gain) < 1e-3
    flipping = draw(AVCPairs(synth_shards, "train", config=PRESETS["small"], batch_size=32, seed=0,
                             augment=dataclasses.replace(still, flip=1.0), pcm=True), n=64)
    assert len(flipping.flip) >= 0.8 * flipping.pairs and all(flipping.flip)

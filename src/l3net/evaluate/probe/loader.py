"""The streamed probe's DataLoader: decoding, augmentation and batches (:mod:`l3net.evaluate.probe.stream`).

Transforms (run in the workers, one seeded generator per image so results do not depend on the
number of workers and a resumed run sees the same pixels):

- training (:func:`train_crop`): Inception's random-size crop, 8 % to 100 % of the image area with
  an aspect ratio in [3/4, 4/3] (Szegedy et al. 2015, "Going deeper with convolutions", section 6;
  kept by Inception-v3, Szegedy et al. 2016), scaled to ``transfer_image_size`` (256 for the paper
  preset), a horizontal flip with probability 1/2, and the colour distortion of TensorFlow's
  Inception preprocessing (``inception_preprocessing.distort_color``): brightness +- 32/255,
  saturation x [0.5, 1.5], hue +- 0.2 of the hue circle, contrast x [0.5, 1.5], in one of four
  random orders, clipped to [0, 1] (:func:`distort_color`);
- validation (:func:`val_crop`): the probe's centre crop (``features.prepare_image``: smaller side
  scaled to ``transfer_image_size``, centre square), exactly what ``--solver lbfgs`` sees.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ...config import ModelConfig
from ...errors import MediaError
from ...media import load_image
from ..features import prepare_image
from .data import ImageList

#: Inception's random-size crop: fraction of the image area and aspect-ratio range (GoogLeNet, section 6).
CROP_AREA = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
#: TensorFlow Inception preprocessing's colour distortion: brightness delta, saturation and contrast
#: factor ranges, hue delta (fraction of the hue circle).
BRIGHTNESS_DELTA = 32 / 255
SATURATION_RANGE = (0.5, 1.5)
HUE_DELTA = 0.2
CONTRAST_RANGE = (0.5, 1.5)


# ------------------------------------------------------------------------------------------------
# transforms
# ------------------------------------------------------------------------------------------------
def crop_box(width: int, height: int, rng: np.random.Generator,
             area: tuple[float, float] = CROP_AREA, ratio: tuple[float, float] = CROP_RATIO,
             attempts: int = 10) -> tuple[int, int, int, int]:
    """Inception's random-size crop ``(left, top, width, height)`` in pixels: area uniform in
    ``area`` x the image's, aspect ratio log-uniform in ``ratio``; after ``attempts`` misses the
    centre square crop of the whole image (as TensorFlow's distorted bounding box falls back to it)."""
    total = width * height
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(attempts):
        target = total * rng.uniform(area[0], area[1])
        aspect = math.exp(rng.uniform(log_low, log_high))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side, side


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB in [0, 1] -> HSV, hue in [0, 1) (as ``colorsys``: on ties the first channel wins)."""
    r, g, b = x[0], x[1], x[2]
    maxc = torch.maximum(torch.maximum(r, g), b)  # elementwise: a reduction over dim 0 is several times slower
    delta = maxc - torch.minimum(torch.minimum(r, g), b)
    s = delta / maxc.clamp_min(1e-12)
    d = delta.clamp_min(1e-12)
    h = torch.where(r == maxc, ((g - b) / d) % 6.0, torch.where(g == maxc, (b - r) / d + 2.0, (r - g) / d + 4.0))
    return torch.stack([torch.where(delta > 0, h / 6.0, torch.zeros_like(h)), s, maxc])


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(3, H, W) HSV (hue in [0, 1)) -> RGB in [0, 1]: channel n = v - v s clamp(min(k, 4 - k), 0, 1)
    with k = (n' + 6 h) mod 6, n' = 5, 3, 1 for R, G, B (the closed form of the six hue sectors)."""
    h, s, v = x[0], x[1], x[2]
    k = (torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype).view(3, 1, 1) + h * 6.0) % 6.0
    return v - v * s * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)


def distort_color(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """TensorFlow Inception preprocessing's ``distort_color`` on a (3, H, W) float image in [0, 1]:
    brightness, saturation, hue and contrast with the ranges above, in one of its four orders,
    clipped to [0, 1]. Saturation and hue are changed in HSV, contrast around each channel's mean."""
    brightness = rng.uniform(-BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)
    saturation = rng.uniform(*SATURATION_RANGE)
    hue = rng.uniform(-HUE_DELTA, HUE_DELTA)
    contrast = rng.uniform(*CONTRAST_RANGE)

    def adjust_brightness(y: torch.Tensor) -> torch.Tensor:
        return y + brightness

    def adjust_saturation(y: torch.Tensor) -> torch.Tensor:
        hsv = rgb_to_hsv(y.clamp(0, 1))
        hsv[1] = (hsv[1] * saturation).clamp(0, 1)
        return hsv_to_rgb(hsv)

    def adjust_hue(y: torch.Tensor) -> torch.Tensor:
        hsv = rgb_to_hsv(y.clamp(0, 1))
        hsv[0] = (hsv[0] + hue) % 1.0
        return hsv_to_rgb(hsv)

    def adjust_contrast(y: torch.Tensor) -> torch.Tensor:
        mean = y.mean(dim=(1, 2), keepdim=True)
        return (y - mean) * contrast + mean

    orders = (
        (adjust_brightness, adjust_saturation, adjust_hue, adjust_contrast),
        (adjust_saturation, adjust_brightness, adjust_contrast, adjust_hue),
        (adjust_contrast, adjust_hue, adjust_brightness, adjust_saturation),
        (adjust_hue, adjust_saturation, adjust_contrast, adjust_brightness),
    )
    for op in orders[int(rng.integers(0, 4))]:
        x = op(x)
    return x.clamp(0.0, 1.0)


def train_crop(image: np.ndarray, size: int, rng: np.random.Generator, *, color: bool = True) -> np.ndarray:
    """Training augmentation of one H x W x 3 uint8 image -> ``size`` x ``size`` x 3 uint8: random-size
    crop (bilinear), horizontal flip with probability 1/2, colour distortion."""
    from PIL import Image

    height, width = image.shape[:2]
    left, top, w, h = crop_box(width, height, rng)
    crop = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    out = np.array(crop)  # a writable copy (torch.from_numpy wants one)
    if rng.random() < 0.5:
        out = np.ascontiguousarray(out[:, ::-1])
    if not color:
        return out
    x = torch.from_numpy(out).permute(2, 0, 1).float() / 255.0
    x = distort_color(x, rng)
    return (x * 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def val_crop(image: np.ndarray, config: ModelConfig) -> np.ndarray:
    """The probe's centre crop (``features.prepare_image``, transfer size)."""
    return prepare_image(image, config, transfer=True)


# ------------------------------------------------------------------------------------------------
# the DataLoader's dataset, batches and collation
# ------------------------------------------------------------------------------------------------
@dataclass
class Decoded:
    """One item a worker returns: the prepared image (None when it could not be read), its label,
    its index in the list, and why it failed or what was odd about it."""

    image: np.ndarray | None
    label: int
    index: int
    error: str | None = None
    warnings: tuple[str, ...] = ()


class ProbeImageDataset(torch.utils.data.Dataset):
    """Items are ``(epoch, index)`` pairs (from :class:`EpochBatches`): the image ``index`` of
    ``images``, augmented with a generator seeded by ``(seed, epoch, index)`` when ``train``, else
    centre-cropped. Unreadable files come back as :class:`Decoded` with an ``error``."""

    def __init__(self, images: ImageList, config: ModelConfig, *, train: bool, seed: int = 0) -> None:
        self.images, self.config, self.train, self.seed = images, config, train, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: tuple[int, int]) -> Decoded:
        epoch, index = item
        label = int(self.images.labels[index])
        path = self.images.path(index)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                image = load_image(path)
                if self.train:
                    rng = np.random.default_rng([self.seed, epoch, index])
                    prepared = train_crop(image, self.config.transfer_image_size, rng)
                else:
                    prepared = val_crop(image, self.config)
            except MediaError as exc:
                return Decoded(None, label, index, exc.reason)
            except Exception as exc:  # noqa: BLE001 - one odd file must not end an hours-long run
                return Decoded(None, label, index, f"could not be prepared ({type(exc).__name__}: {exc})")
        return Decoded(prepared, label, index, None, tuple(str(w.message) for w in caught))


@dataclass
class Batch:
    """Collated items: ``images`` (B, 3, S, S) uint8 (None when none could be read), ``labels`` (B,),
    and the ``(index, reason)`` failures and warnings of this batch."""

    images: torch.Tensor | None
    labels: torch.Tensor
    failures: list[tuple[int, str]]
    warnings: list[str]

    def pin_memory(self) -> "Batch":
        if self.images is not None:
            self.images = self.images.pin_memory()
        self.labels = self.labels.pin_memory()
        return self


def collate(items: Sequence[Decoded]) -> Batch:
    good = [d for d in items if d.image is not None]
    failures = [(d.index, d.error or "unreadable") for d in items if d.image is None]
    found = [w for d in items for w in d.warnings]
    if not good:
        return Batch(None, torch.zeros(0, dtype=torch.long), failures, found)
    images = torch.from_numpy(np.stack([d.image for d in good])).permute(0, 3, 1, 2)
    return Batch(images, torch.tensor([d.label for d in good], dtype=torch.long), failures, found)


class EpochBatches(torch.utils.data.Sampler):
    """Batches of ``(epoch, index)`` pairs: each epoch a permutation of ``n`` from ``(seed, epoch)``
    cut into batches of ``batch_size`` (the last one shorter), from epoch ``start // per_epoch``,
    batch ``start % per_epoch`` to the end of epoch ``epochs - 1``. Without ``shuffle``: one pass
    in order (validation). A run resumed at batch ``start`` sees exactly the batches it would have."""

    def __init__(self, n: int, batch_size: int, *, seed: int = 0, epochs: int = 1, start: int = 0,
                 shuffle: bool = True) -> None:
        self.n, self.batch_size, self.seed, self.epochs, self.start, self.shuffle = n, batch_size, seed, epochs, start, shuffle

    @property
    def per_epoch(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __len__(self) -> int:
        return max(0, self.per_epoch * self.epochs - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        first_epoch, first_batch = divmod(self.start, self.per_epoch)
        for epoch in range(first_epoch, self.epochs):
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
            for b in range(first_batch if epoch == first_epoch else 0, self.per_epoch):
                yield [(epoch, int(i)) for i in order[b * self.batch_size:(b + 1) * self.batch_size]]


def loader(dataset: ProbeImageDataset, batches: EpochBatches, *, workers: int, pin_memory: bool = False,
           ) -> torch.utils.data.DataLoader:
    """A DataLoader over ``batches`` with ``workers`` processes (0: in this process)."""
    extra: dict[str, Any] = {"prefetch_factor": 2, "persistent_workers": False} if workers > 0 else {}
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate,
                                       pin_memory=pin_memory, **extra)

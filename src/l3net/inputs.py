"""What the networks are given: images and centred clips, prepared one way for every caller.

The embedding API (:mod:`l3net.embed`, :mod:`l3net.embed_files`), every evaluation's feature path
(:mod:`l3net.evaluate.features`, :mod:`l3net.evaluate.inputs`: probe, cluster, units, baselines),
localisation (:mod:`l3net.heatmaps`, :mod:`l3net.localize`, the pointing game) and HEAR take their
network inputs from here, so an evaluation measures the very pixels and samples the API embeds
(``tests/test_one_input.py`` checks it for every preset).

Images (any layout :func:`~l3net.media.to_rgb_uint8` accepts: greyscale, RGBA, float in [0, 1]):

1. colour and layout: H x W x 3 uint8 RGB;
2. scale so the smaller side is ``resize`` px (bilinear, antialiased), except that a model whose
   config says ``image_upscale=False`` (OpenL3's rule) keeps an image whose smaller side already
   lies in ``[crop, resize]`` as it is;
3. keep the centre ``crop`` x ``crop`` square.

Which ``(resize, crop)``: the embedding (pool4) and AVC see ``image_resize`` / ``image_size``
(256 / 224, paper 2.2); the transfer feature and every other pooled layer see the
``transfer_image_size`` square (256, paper 5.3) (:func:`image_sizes`). Heatmaps see the whole
frame after step 2 with the embedding's sizes (:func:`full_frame`): uncropped, so every place gets
a score, and its centre crop is exactly the embedding's input.

Centred clips: the ``clip_samples``-long clip centred on a time, moved to lie inside the audio,
zero-padded at the end when the audio is shorter (:func:`clip_start`, :func:`centred_clip`).
"""

from __future__ import annotations

import numpy as np
import torch

from .config import SAMPLE_RATE, ModelConfig
from .errors import InputError
from .media import center_crop, resize_smaller_side, to_rgb_uint8


def image_sizes(config: ModelConfig, *, transfer: bool) -> tuple[int, int]:
    """``(smaller side after scaling, square crop)`` in px for a model's images: the
    ``transfer_image_size`` square when ``transfer``, else ``image_resize`` / ``image_size``."""
    if transfer:
        return config.transfer_image_size, config.transfer_image_size
    return config.image_resize, config.image_size


def scaled_side(config: ModelConfig, side: int, resize: int, crop: int) -> int:
    """The smaller side (px) an image whose smaller side is ``side`` has after the scaling step:
    ``resize``, or ``side`` itself under OpenL3's rule (``image_upscale=False``, side in ``[crop, resize]``)."""
    if not config.image_upscale and crop <= side <= resize:
        return side
    return resize


def scale_image(image: np.ndarray, config: ModelConfig, resize: int, crop: int, name: str = "image") -> np.ndarray:
    """Steps 1 and 2 of the module docstring: H x W x 3 uint8, smaller side :func:`scaled_side`."""
    image = to_rgb_uint8(image, name)
    side = min(image.shape[:2])
    return resize_smaller_side(image, scaled_side(config, side, resize, crop))


def prepare_image(image: np.ndarray, config: ModelConfig, *, transfer: bool, name: str = "image") -> np.ndarray:
    """One image -> the square ``(S, S, 3)`` uint8 the vision tower sees (steps 1-3 of the module
    docstring, with :func:`image_sizes` ``(config, transfer=transfer)``)."""
    resize, crop = image_sizes(config, transfer=transfer)
    return center_crop(scale_image(image, config, resize, crop, name), crop)


def full_frame(image: np.ndarray, config: ModelConfig, name: str = "image") -> np.ndarray:
    """One image scaled as for the embedding but not cropped: ``(H', W', 3)`` uint8 (heatmaps)."""
    resize, crop = image_sizes(config, transfer=False)
    return scale_image(image, config, resize, crop, name)


def image_batch(images: list[np.ndarray]) -> torch.Tensor:
    """Prepared H x W x 3 uint8 images of one size -> the ``(N, 3, H, W)`` uint8 tensor the towers take."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)


def clip_start(centre: float, num_samples: int, clip_samples: int) -> int:
    """First sample of the ``clip_samples``-long clip centred on ``centre`` s (at :data:`SAMPLE_RATE`),
    moved to lie inside ``num_samples`` samples (0 when the audio is shorter than a clip)."""
    start = round(centre * SAMPLE_RATE) - clip_samples // 2
    return int(max(0, min(start, num_samples - clip_samples)))


def centred_clip(audio: np.ndarray, centre: float, clip_samples: int) -> np.ndarray:
    """The ``clip_samples``-long clip of ``audio`` (1-D, at :data:`SAMPLE_RATE`) centred on ``centre`` s,
    moved inside the audio near its ends (:func:`clip_start`), zero-padded when the audio is shorter."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise InputError(f"audio: expected a 1-D waveform, got shape {audio.shape}")
    start = clip_start(centre, audio.size, clip_samples)
    clip = audio[start : start + clip_samples]
    return np.pad(clip, (0, clip_samples - clip.size)) if clip.size < clip_samples else clip

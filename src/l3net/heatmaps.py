"""Where in the picture is the sound? Heatmaps from the fusion head: the library API beside
:mod:`l3net.embed`.

The heatmap of a frame for an audio clip is the network's own correspondence score, location by
location: the vision tower runs over the *whole* frame (smaller side scaled to the model's
``image_resize``, the scale it was trained at, not cropped, so every part of the picture gets a
score), and at each location of its last conv map (``conv4_2``, after ReLU) the fusion head scores
that location's vector against the clip's pool4 audio embedding:
``softmax(model.fuse(v[:, y, x], a))[1]``. Frames and clips are prepared by :mod:`l3net.inputs`, as
for the embedding API: :func:`~l3net.inputs.full_frame` (whose centre crop is exactly what
:func:`l3net.get_image_embedding` embeds) and :func:`~l3net.inputs.centred_clip`.

Why the conv4_2 vector at a location is the right thing to give the head: pool4, the vector the
head was trained on, is the channel-wise *maximum* of conv4_2 over all locations. The conv4_2
vector at one location is exactly the pool4 vector the tower would produce for a picture in which
that location alone were active (every other location contributing nothing to the maximum). So
the head reads it in the units it was trained on (no rescaling, no learned layer), and its score
says "does this sound belong to what is *here*". The map (one score per conv4_2 cell, 1/8 of the
tower input's resolution) is bilinearly upsampled to the frame; scores stay in [0, 1].

Used by ``l3net localize`` (:mod:`l3net.localize`, a video's frames) and the pointing game
(:mod:`l3net.evaluate.localize`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.nn import functional as F

from .config import SAMPLE_RATE
from .errors import InputError
from .inference import inference_model
from .inputs import full_frame, image_batch
from .media import to_rgb_uint8
from .models import L3Net
from .runtime import evaluation

#: Colour map of the overlays, and how much of the colour covers the frame.
COLORMAP = "jet"
OVERLAY_ALPHA = 0.45


def _as_frames(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Frames as one (N, H, W, 3) uint8 array (greyscale, RGBA and floats converted)."""
    if isinstance(frames, np.ndarray) and frames.ndim == 4 and frames.dtype == np.uint8 and frames.shape[-1] == 3:
        if 0 in frames.shape:
            raise InputError(f"frames: empty array of shape {frames.shape}")
        return frames
    if isinstance(frames, np.ndarray) and frames.ndim in (2, 3) and (frames.ndim == 2 or frames.shape[-1] in (1, 3, 4)):
        frames = [frames]  # one frame
    converted = [to_rgb_uint8(f, name=f"frame {i}") for i, f in enumerate(frames)]
    if not converted:
        raise InputError("frames: no frames given")
    sizes = {f.shape[:2] for f in converted}
    if len(sizes) > 1:
        raise InputError(f"frames: all frames must have the same size, got {sorted(sizes)}")
    return np.stack(converted)


def _as_clips(audio_clips: np.ndarray | torch.Tensor, count: int, clip_samples: int) -> torch.Tensor:
    """Audio clips as (count, clip_samples) float32: one clip is shared, short clips are zero-padded."""
    clips = torch.as_tensor(np.asarray(audio_clips) if not torch.is_tensor(audio_clips) else audio_clips)
    if not (clips.is_floating_point()):
        raise InputError(f"audio clips must be float waveforms at {SAMPLE_RATE} Hz, got dtype {clips.dtype}")
    clips = clips.float()
    if clips.dim() == 1:
        clips = clips.unsqueeze(0)
    if clips.dim() != 2 or clips.shape[1] == 0:
        raise InputError(f"audio clips must be (N, samples) or (samples,), got shape {tuple(clips.shape)}")
    if clips.shape[0] == 1 and count > 1:
        clips = clips.expand(count, -1)
    if clips.shape[0] != count:
        raise InputError(f"{count} frames but {clips.shape[0]} audio clips: give one clip per frame, or one for all")
    if not torch.isfinite(clips).all():
        raise InputError("audio clips contain NaN or infinite samples")
    if clips.shape[1] > clip_samples:
        raise InputError(
            f"audio clips are {clips.shape[1]} samples; the model takes {clip_samples} "
            f"({clip_samples / SAMPLE_RATE:g} s at {SAMPLE_RATE} Hz)"
        )
    if clips.shape[1] < clip_samples:
        clips = F.pad(clips, (0, clip_samples - clips.shape[1]))
    return clips


def tower_input_frames(model: L3Net, frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 frames -> (N, 3, h, w) uint8 tensor: each :func:`l3net.inputs.full_frame`
    (smaller side ``image_resize``, the model's ``image_upscale`` rule, uncropped)."""
    return image_batch([full_frame(f, model.config, name=f"frame {i}") for i, f in enumerate(frames)]).contiguous()


@torch.no_grad()
def score_maps(model: L3Net, images: torch.Tensor, audio_embeddings: torch.Tensor) -> torch.Tensor:
    """Correspondence probability at every last-conv location: ``(N, h, w)`` in [0, 1].

    ``images`` are tower inputs ``(N, 3, H, W)`` (any size: the vision tower is convolutional up to
    its last conv), ``audio_embeddings`` pool4 vectors ``(N, C)``. The head sees each location's
    conv4_2 vector (after ReLU) in place of the pool4 vector (see the module docstring).
    """
    layer = model.vision.last_conv
    conv = model.forward_features("vision", images, [layer])[layer]  # (N, C, h, w)
    local = conv.permute(0, 2, 3, 1)  # (N, h, w, C)
    audio = audio_embeddings[:, None, None, :].expand(-1, local.shape[1], local.shape[2], -1)
    logits = model.fuse(local, audio.to(local.dtype))
    return torch.softmax(logits.float(), dim=-1)[..., 1]


def low_res_heatmaps(
    model: L3Net,
    frames: np.ndarray | Sequence[np.ndarray],
    audio_clips: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 16,
    precision: str = "fp32",
) -> np.ndarray:
    """The score maps at the last conv's resolution, ``(N, h, w)`` float32 in [0, 1] (see :func:`heatmaps`).

    The model runs in eval mode (BatchNorm with its running statistics, restored afterwards), without
    autograd, in ``precision``."""
    frames = _as_frames(frames)
    clips = _as_clips(audio_clips, len(frames), model.config.clip_samples)
    if batch_size <= 0:
        raise InputError(f"batch_size must be positive, got {batch_size}")
    out = []
    fast = inference_model(model, precision=precision)  # folded, channels_last, compiled (l3net.inference)
    with evaluation(model, fast.precision) as device:
        for start in range(0, len(frames), batch_size):
            images = tower_input_frames(model, frames[start : start + batch_size]).to(device)
            audio = fast.embed("audio", clips[start : start + batch_size].to(device))
            out.append(score_maps(fast, images, audio).float().cpu())
    return torch.cat(out).numpy()


def upsample(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of ``(N, h, w)`` maps to ``(N, height, width)`` (cell centres aligned)."""
    tensor = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[:, None]
    return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)[:, 0].numpy()


def heatmaps(
    model: L3Net,
    frames: np.ndarray | Sequence[np.ndarray],
    audio_clips: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 16,
    precision: str = "fp32",
) -> np.ndarray:
    """Where is the sound in each frame? ``(N, H, W)`` float32 in [0, 1], at the frames' size.

    ``frames``: ``(N, H, W, 3)`` uint8 RGB (or a list of same-size images: greyscale, RGBA, float in
    [0, 1] are converted). ``audio_clips``: ``(N, samples)`` float waveforms at 48 kHz
    (:data:`~l3net.config.SAMPLE_RATE`), one per frame, or ``(samples,)`` shared by all frames;
    at most ``model.config.clip_samples`` long (shorter clips are zero-padded). Each value is the
    head's probability that the sound corresponds to the picture at that place.
    """
    frames = _as_frames(frames)
    maps = low_res_heatmaps(model, frames, audio_clips, batch_size=batch_size, precision=precision)
    return upsample(maps, frames.shape[1], frames.shape[2])


def peak_location(heatmap: np.ndarray) -> tuple[float, float]:
    """``(x, y)`` in pixels of a 2-D map's maximum: the centre of the peak pixel (pixel c spans [c, c+1))."""
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return float(col) + 0.5, float(row) + 0.5


def _colormap_lut() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def overlay(
    frame: np.ndarray,
    heatmap: np.ndarray,
    *,
    scale: str = "frame",
    peak: tuple[float, float] | None = None,
    caption: str | None = None,
    lut: np.ndarray | None = None,
) -> np.ndarray:
    """The heatmap drawn over an H x W x 3 uint8 frame (same H x W), with the peak marked.

    ``scale="frame"`` stretches each map's own [min, max] over the colour map (where, in this
    frame); ``"absolute"`` maps probabilities 0..1 (how sure, comparable across frames).
    """
    if scale not in ("frame", "absolute"):
        raise InputError(f"scale must be 'frame' or 'absolute', got {scale!r}")
    values = heatmap.astype(np.float32)
    if scale == "frame":
        low, high = float(values.min()), float(values.max())
        values = (values - low) / (high - low) if high - low > 1e-12 else np.zeros_like(values)
    lut = _colormap_lut() if lut is None else lut
    colour = lut[np.clip((values * 255).round(), 0, 255).astype(np.uint8)]
    blended = (frame.astype(np.float32) * (1 - OVERLAY_ALPHA) + colour.astype(np.float32) * OVERLAY_ALPHA).round()
    image = Image.fromarray(blended.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if peak is not None:
        radius = max(3, min(frame.shape[:2]) // 24)
        x, y = peak
        for width, colour_ in ((3, (0, 0, 0)), (1, (255, 255, 255))):
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=colour_, width=width)
    if caption:
        box = draw.textbbox((4, 4), caption)
        draw.rectangle([box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2], fill=(0, 0, 0))
        draw.text((4, 4), caption, fill=(255, 255, 255))
    return np.asarray(image)

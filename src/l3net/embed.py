"""The embedding API: audio, images and videos -> L3-Net embeddings (OpenL3's shape, not its pains).

Five plain functions::

    emb, ts = l3net.get_audio_embedding(audio, sr, model="runs/my_run")   # (T, 512), (T,) seconds
    emb = l3net.get_image_embedding(image, model="runs/my_run")           # (1, 512)
    l3net.process_audio_file("a.wav")          # -> a.npz
    l3net.process_image_file("photo.jpg")      # -> photo.npz
    l3net.process_video_file("clip.mp4")       # -> clip_audio.npz, clip_image.npz (same timestamps)

Framing (:mod:`l3net.framing`): window ``k`` of ``hop_size`` s has timestamp ``k * hop_size``;
``center=True`` centres windows on their timestamps, from 0 to the duration; ``center=False`` starts
the first with the sound and adds windows until the end is covered. Audio shorter than a window is
zero-padded, never dropped.

Layers (``layer=``, :mod:`l3net.layers`): ``pool4`` (the embedding), ``conv4_2`` (the paper's transfer
feature), or any other ``tower.feature_names`` entry max-pooled to the transfer grid. Images are
prepared by :mod:`l3net.inputs` (colour, scaling with the model's ``image_upscale`` rule, centre
crop), as every evaluation prepares them. The file functions are :mod:`l3net.embed_files`'.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .config import SAMPLE_RATE
from .embed_core import (  # noqa: F401 - the defaults and the model cache of this API, importable from here
    DEFAULT_BATCH_SIZE,
    DEFAULT_HOP_SIZE,
    MODEL_CACHE,
    check_batch_size,
    embed_audio_stream,
    embed_images,
    embedding_model,
)
from .errors import InputError
from .framing import (  # noqa: F401 - the framing of this API, importable from here too
    batch_windows,
    check_hop,
    iter_windows,
    window_count,
    window_start,
    window_timestamps,
)
from .inputs import prepare_image
from .layers import embedding_size, resolve_layer, transfer_input  # noqa: F401 - embedding_size is part of this API
from .media import prepare_audio_array
from .modelspec import ModelSpec
from .models import L3Net, choose_layer


# ------------------------------------------------------------------------------------------------
# audio
# ------------------------------------------------------------------------------------------------
def _as_array(x: Any) -> Any:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x


def _is_list_of_signals(audio: Any) -> bool:
    return isinstance(audio, (list, tuple)) and all(
        isinstance(a, (np.ndarray, torch.Tensor, list, tuple)) for a in audio
    ) and len(audio) > 0


def get_audio_embedding(
    audio: np.ndarray | torch.Tensor | Sequence[np.ndarray],
    sr: float | Sequence[float],
    model: ModelSpec | None = None,
    hop_size: float = DEFAULT_HOP_SIZE,
    center: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    layer: str = "pool4",
    *,
    embedding_size: int | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    verbose: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[list[np.ndarray], list[np.ndarray]]:
    """Embeddings of audio, one per window: ``(embeddings float32 [T, D], timestamps float64 [T] s)``.

    ``audio``: samples at ``sr`` Hz, any dtype (integers are scaled to [-1, 1]), shaped
    ``(samples,)``, ``(samples, channels)`` or ``(channels, samples)``; channels are averaged and
    the rate converted to 48 kHz. A list of arrays (with one ``sr`` or a list of them) gives lists.
    ``model``: an :class:`L3Net`, a preset name or a model directory (``None``: the paper
    architecture with random weights). ``hop_size``: seconds between windows. See the module
    docstring for the exact framing and the ``layer`` choices; ``embedding_size`` is OpenL3's way
    to say the same (512: ``pool4``, 6144: ``conv4_2``). ``precision``: "fp32" (the default;
    results do not change between runs) or "bf16" (autocast).
    """
    hop_size = check_hop(hop_size)
    batch_size = check_batch_size(batch_size)
    net = embedding_model(model, device)
    layer = resolve_layer(net.audio, choose_layer(net, "audio", layer, embedding_size))
    if _is_list_of_signals(audio):
        n = len(audio)
        rates = list(sr) if isinstance(sr, (list, tuple, np.ndarray)) else [sr] * n
        if len(rates) != n:
            raise InputError(f"got {n} audio arrays but {len(rates)} sample rates")
        results = [
            _embed_array(net, _as_array(a), r, f"audio[{i}]", hop_size, center, batch_size, layer, precision, verbose)
            for i, (a, r) in enumerate(zip(audio, rates))
        ]
        return [e for e, _ in results], [t for _, t in results]
    if isinstance(sr, (list, tuple, np.ndarray)):
        raise InputError("a list of sample rates needs a list of audio arrays")
    return _embed_array(net, _as_array(audio), sr, "audio", hop_size, center, batch_size, layer, precision, verbose)


def _embed_array(
    model: L3Net, audio: Any, sr: float, name: str, hop_size: float, center: bool, batch_size: int,
    layer: str, precision: str, verbose: bool,
) -> tuple[np.ndarray, np.ndarray]:
    samples = prepare_audio_array(audio, sr, SAMPLE_RATE, name=name)
    total = window_count(samples.size, hop_size, center, model.config.clip_samples, framing=model.config.framing)
    return embed_audio_stream(
        model, [samples], hop_size=hop_size, center=center, batch_size=batch_size, layer=layer,
        precision=precision, total=total, verbose=verbose, desc=name,
    )


# ------------------------------------------------------------------------------------------------
# images
# ------------------------------------------------------------------------------------------------
def _split_images(images: Any) -> list[Any]:
    if isinstance(images, (list, tuple)):
        if not images:
            raise InputError("images: empty list")
        return [_as_array(im) for im in images]
    x = np.asarray(_as_array(images))
    if x.ndim == 2 or (x.ndim == 3 and x.shape[2] in (1, 3, 4)):
        return [x]
    if x.ndim == 4:
        if x.shape[0] == 0:
            raise InputError("images: empty batch")
        return list(x)
    raise InputError(
        f"images: expected H x W (x 1/3/4), a batch N x H x W x 3 or a list of images, got shape {x.shape}"
    )


def get_image_embedding(
    images: np.ndarray | torch.Tensor | Sequence[np.ndarray],
    model: ModelSpec | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    layer: str = "pool4",
    *,
    embedding_size: int | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    verbose: bool = False,
) -> np.ndarray:
    """Embeddings of images: ``float32 (N, D)`` (``(1, D)`` for one image).

    ``images``: one image (H x W x 3 RGB; greyscale H x W, RGBA, float in [0, 1] or uint8 also
    accepted), a batch ``(N, H, W, 3)``, or a list of images of any sizes. Each is scaled and
    centre-cropped for ``layer`` (see the module docstring; ``embedding_size``, OpenL3's way to name
    it: 512 ``pool4``, 8192 ``conv4_2``) and batched ``batch_size`` at a time.
    """
    batch_size = check_batch_size(batch_size)
    net = embedding_model(model, device)
    layer = resolve_layer(net.vision, choose_layer(net, "vision", layer, embedding_size))
    items = _split_images(images)
    transfer = transfer_input(net.vision, layer)
    names = ["image"] if len(items) == 1 else [f"images[{i}]" for i in range(len(items))]
    prepared = (prepare_image(im, net.config, transfer=transfer, name=name) for im, name in zip(items, names))
    return embed_images(net, prepared, layer, batch_size, precision, len(items), verbose)

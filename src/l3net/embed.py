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
feature), or any other ``tower.feature_names`` entry max-pooled to the transfer grid.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import SAMPLE_RATE
from .errors import InputError
from .framing import (  # noqa: F401 - the framing of this API, importable from here too
    batch_windows,
    check_hop,
    iter_windows,
    window_count,
    window_start,
    window_timestamps,
)
from .inference import InferenceModel, inference_model
from .layers import check_layer, embedding_size, layer_features  # noqa: F401 - embedding_size is part of this API
from .media import center_crop, prepare_audio_array, resize_smaller_side, to_rgb_uint8
from .modelspec import ModelCache
from .models import L3Net, choose_layer
from .runtime import evaluation, resolve_device

ModelSpec = L3Net | InferenceModel | str | os.PathLike[str] | None

#: Hop (s) between audio windows when none is given (as OpenL3).
DEFAULT_HOP_SIZE = 0.1
#: Windows or images per forward pass when none is given.
DEFAULT_BATCH_SIZE = 32
#: The preset used when no model is given (random weights: l3net ships no trained weights).
DEFAULT_PRESET = "paper"
#: Models named by a path or preset are loaded once, here (``MODEL_CACHE.clear()`` empties it; pass a
#: loaded model to bypass it).
MODEL_CACHE = ModelCache(max_models=4)


def resolve_model(model: ModelSpec = None, device: str | torch.device | None = None) -> L3Net:
    """An :class:`L3Net` from ``model``: an L3Net (used as is), a preset name, a model directory or any
    spec :func:`l3net.modelspec.resolve_model` takes.

    ``None`` means the :data:`DEFAULT_PRESET` architecture with random weights (with a warning).
    Specs are loaded once per device (:data:`MODEL_CACHE`). An L3Net is moved to ``device`` when one
    is given, else used where it is.
    """
    if isinstance(model, L3Net):
        return model if device is None else model.to(resolve_device(device))
    if isinstance(model, InferenceModel):  # l3net.inference: runs on its device, precision and compile setting
        return model  # type: ignore[return-value]
    if model is None:
        warnings.warn(
            f"no model given: using the '{DEFAULT_PRESET}' architecture with random weights; "
            "pass model= a trained model directory for meaningful embeddings",
            stacklevel=3,
        )
        model = DEFAULT_PRESET
    elif not isinstance(model, (str, os.PathLike)):
        raise InputError(f"model must be an L3Net, a preset name or a model directory, got {type(model).__name__}")
    return MODEL_CACHE.get(model, device=device).model


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _embed_audio_stream(
    model: L3Net,
    chunks: Iterable[np.ndarray],
    *,
    hop_size: float,
    center: bool,
    batch_size: int,
    layer: str,
    precision: str,
    total: int | None,
    verbose: bool,
    desc: str,
) -> tuple[np.ndarray, np.ndarray]:
    window = model.config.clip_samples
    dim = embedding_size(model, layer, "audio")
    outputs: list[np.ndarray] = []
    fast = inference_model(model, precision=precision)  # l3net.inference: folded, channels_last, compiled
    with evaluation(model, fast.precision) as device, tqdm(
        total=total, unit="win", desc=desc, disable=not verbose, leave=False
    ) as bar:
        windows = iter_windows(chunks, hop_size, center, window, framing=model.config.framing)
        for batch in batch_windows(windows, batch_size, window):
            x = torch.from_numpy(batch).to(device)
            outputs.append(layer_features(fast, "audio", x, layer).float().cpu().numpy())
            bar.update(len(batch))
    embedding = np.concatenate(outputs) if outputs else np.zeros((0, dim), np.float32)
    return np.ascontiguousarray(embedding, dtype=np.float32), window_timestamps(len(embedding), hop_size)


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
    model: ModelSpec = None,
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
    batch_size = _check_batch_size(batch_size)
    net = resolve_model(model, device)
    layer = choose_layer(net, "audio", layer, embedding_size)
    check_layer(net.audio, layer)
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
    return _embed_audio_stream(
        model, [samples], hop_size=hop_size, center=center, batch_size=batch_size, layer=layer,
        precision=precision, total=total, verbose=verbose, desc=name,
    )


# ------------------------------------------------------------------------------------------------
# images
# ------------------------------------------------------------------------------------------------
def _image_sizes(model: L3Net, layer: str) -> tuple[int, int]:
    """(smaller side after scaling, square crop) for a layer: 256/224 for pool4, 256/256 otherwise."""
    c = model.config
    if layer == model.vision.embedding_layer:
        return c.image_resize, c.image_size
    return c.transfer_image_size, c.transfer_image_size


def prepare_image(image: np.ndarray, resize: int, crop: int, name: str = "image", upscale: bool = True) -> np.ndarray:
    """Any image array -> ``crop x crop x 3`` uint8: smaller side scaled to ``resize``, centre crop.

    ``upscale=False`` (a config's ``image_upscale``, OpenL3): a smaller side from ``crop`` to
    ``resize`` is kept as it is, only cropped.
    """
    image = to_rgb_uint8(image, name)
    side = min(image.shape[:2])
    if upscale or not crop <= side <= resize:
        image = resize_smaller_side(image, resize)
    return center_crop(image, crop)


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
    model: ModelSpec = None,
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
    batch_size = _check_batch_size(batch_size)
    net = resolve_model(model, device)
    layer = choose_layer(net, "vision", layer, embedding_size)
    check_layer(net.vision, layer)
    items = _split_images(images)
    resize, crop = _image_sizes(net, layer)
    names = ["image"] if len(items) == 1 else [f"images[{i}]" for i in range(len(items))]
    prepared = (prepare_image(im, resize, crop, name, net.config.image_upscale) for im, name in zip(items, names))
    return _embed_images(net, prepared, layer, batch_size, precision, len(items), verbose)


def _embed_images(
    model: L3Net, frames: Iterable[np.ndarray], layer: str, batch_size: int, precision: str,
    total: int | None, verbose: bool,
) -> np.ndarray:
    outputs: list[np.ndarray] = []
    fast = inference_model(model, precision=precision)  # l3net.inference: folded, channels_last, compiled
    with evaluation(model, fast.precision) as device, tqdm(
        total=total, unit="img", desc="images", disable=not verbose, leave=False
    ) as bar:
        batch: list[np.ndarray] = []

        def flush() -> None:
            x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).to(device)
            outputs.append(layer_features(fast, "vision", x, layer).float().cpu().numpy())
            bar.update(len(batch))
            batch.clear()

        for frame in frames:
            batch.append(frame)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    if not outputs:
        return np.zeros((0, embedding_size(model, layer, "vision")), np.float32)
    return np.ascontiguousarray(np.concatenate(outputs), dtype=np.float32)




_FILE_FUNCTIONS = ("process_audio_file", "process_image_file", "process_video_file", "output_path", "save_embedding")


def __getattr__(name: str) -> Any:
    """The file functions (``process_*_file``) live in :mod:`l3net.embed_files`; still reachable from here."""
    if name in _FILE_FUNCTIONS:
        from . import embed_files

        return getattr(embed_files, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
